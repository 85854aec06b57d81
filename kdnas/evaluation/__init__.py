"""Evaluation of trained runs: chest X-ray (``cxr``) and saliency protocols."""
