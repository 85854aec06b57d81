"""kdnas: neural architecture search and knowledge distillation for compact vision models."""

__version__ = "0.1.0"
