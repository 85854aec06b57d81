"""Faithfulness of heatmaps without ground truth: pytorch-grad-cam's ROAD and confidence metrics.

All scores are changes of the **logit** of class k (``ClassifierOutputTarget(k)``, the CAM target)
when the model sees a perturbed input:

* ``road_morf`` / ``road_lerf``: ROAD (Rong et al. 2022) most/least relevant first, averaged over
  ``percentiles`` (pytorch-grad-cam ``ROADMostRelevantFirstAverage`` / ``ROADLeastRelevantFirstAverage``,
  noisy linear imputation); ``road_combined = (lerf - morf) / 2`` exactly as ``ROADCombined`` (which
  only returns the combination; higher is better);
* ``confidence_drop``: ``DropInConfidence`` (input multiplied by the map; the drop, floored at 0);
* ``confidence_change``: ``CamMultImageConfidenceChange`` (the signed change).

The perturbations apply to the tensor the model takes (for kdnas CXR models the grey [0, 1] image,
before the adapter normalises). ROAD's imputation noise is drawn under a fixed seed on a forked RNG,
so scores are reproducible and the caller's random state is untouched.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange, DropInConfidence
from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirstAverage, ROADMostRelevantFirstAverage
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

ROAD_PERCENTILES = (20, 40, 60, 80)


def faithfulness_scores(model: nn.Module, inputs: torch.Tensor, cams: np.ndarray, classes: Sequence[int],
                        road_percentiles: Sequence[int] | None = ROAD_PERCENTILES, seed: int = 0,
                        max_rows: int = 32) -> dict[str, np.ndarray]:
    """Per-row faithfulness scores for rows ``(inputs[r], cams[r], class classes[r])``.

    ``inputs`` is ``R x C x H x W`` (the model's input), ``cams`` ``R x H x W`` in [0, 1].
    ``road_percentiles=None`` skips ROAD (its noisy linear imputation solves one sparse system per
    row and percentile, the slow part). Returns arrays of length R.
    """
    inputs = torch.as_tensor(inputs).float()
    cams = np.asarray(cams, dtype=np.float32)
    if inputs.shape[0] != cams.shape[0] or cams.shape[0] != len(classes):
        raise ValueError(f"rows differ: {inputs.shape[0]} inputs, {cams.shape[0]} maps, {len(classes)} classes")
    if tuple(inputs.shape[-2:]) != cams.shape[-2:]:
        raise ValueError(f"maps {cams.shape[-2:]} must match the input size {tuple(inputs.shape[-2:])}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: dict[str, list[np.ndarray]] = {"confidence_drop": [], "confidence_change": []}
    if road_percentiles:
        out.update(road_morf=[], road_lerf=[], road_combined=[])
        morf = ROADMostRelevantFirstAverage(percentiles=list(road_percentiles))
        lerf = ROADLeastRelevantFirstAverage(percentiles=list(road_percentiles))
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), warnings.catch_warnings():
            # NoisyLinearImputer calls np.argwhere on torch tensors (NumPy 2 deprecation inside the library)
            warnings.filterwarnings("ignore", message="__array_wrap__", category=DeprecationWarning)
            torch.manual_seed(seed)
            for s in range(0, len(classes), max_rows):
                x = inputs[s:s + max_rows].to(device)
                m = cams[s:s + max_rows]
                targets = [ClassifierOutputTarget(int(k)) for k in classes[s:s + max_rows]]
                out["confidence_drop"].append(np.asarray(DropInConfidence()(x, m, targets, model), np.float64))
                out["confidence_change"].append(
                    np.asarray(CamMultImageConfidenceChange()(x, m, targets, model), np.float64))
                if road_percentiles:
                    # same order as ROADCombined (LeRF, then MoRF) so the noise draws match it exactly
                    lo = np.asarray(lerf(x, m, targets, model), np.float64)
                    mo = np.asarray(morf(x, m, targets, model), np.float64)
                    out["road_lerf"].append(lo)
                    out["road_morf"].append(mo)
                    out["road_combined"].append((lo - mo) / 2)
    finally:
        model.train(was_training)
    return {k: np.concatenate(v).reshape(-1) for k, v in out.items()}
