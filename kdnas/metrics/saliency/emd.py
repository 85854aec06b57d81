"""Earth mover's distance between a prediction and the ground-truth density.

The MIT code's ``EMD.m`` cannot run at HEAD (unresolved merge-conflict markers, and it
needs the compiled FastEMD mex). kdnas solves the same transport problem exactly with POT
(``ot.emd2``, network simplex), with the MIT pre-processing:

1. the ground truth is downsampled with ``imresize(gt, 1/downsample)`` (MATLAB bicubic
   semantics, antialiased; ``downsample=32`` as MIT), giving ``ceil(H/32) x ceil(W/32)``
   cells; the prediction is resized to that grid with the same interpolation;
2. negative values (bicubic ringing) are clipped to 0 — transport needs non-negative mass;
3. optionally (``hist_match=True``, MIT's ``histMatchMaps``) the prediction's histogram is
   matched to the ground truth's: kdnas uses exact rank matching (the prediction's cells,
   sorted by value, receive the ground truth's sorted values; ties by cell index), because
   MIT's ``histoMatch`` is not part of the released code;
4. both maps are normalised to unit mass; the ground distance is the Euclidean distance
   between cell centres in cells (MIT ``D(i, j) = sqrt(dr^2 + dc^2)``). With equal masses
   FastEMD's ``emd_hat`` (extra-mass penalty 0) equals this EMD.

The value is in downsampled cells; multiply by ``downsample`` for an approximate pixel
distance. A map with no positive mass after clipping scores NaN; a constant prediction is
not histogram-matched (it has no ranking) and stays uniform.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .core import as_maps, check_finite, check_same_shape
from .resize import imresize_scale, resize_prediction


def _rank_match(values: np.ndarray, target: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    out = np.empty_like(values)
    out[order] = np.sort(target, kind="stable")
    return out


def grid_distances(height: int, width: int) -> np.ndarray:
    """Euclidean distances between the cells of a ``height x width`` grid (row-major order)."""
    rr, cc = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    pts = np.stack([rr.ravel(), cc.ravel()], axis=1)
    diff = pts[:, None, :] - pts[None, :, :]
    return np.sqrt((diff ** 2).sum(axis=-1))


def emd(pred: Any, gt: Any, *, downsample: int = 32, hist_match: bool = True,
        interpolation: str = "bicubic_matlab", num_iter_max: int = 1_000_000,
        dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Exact EMD per image (``(B,)``), MIT pre-processing, POT solver (see module docstring).

    ``downsample=1`` skips resizing (the maps are used as given, which makes hand-checkable
    cases easy: a unit mass moved by ``d`` cells costs ``d``).
    """
    import ot

    p = as_maps(pred, name="emd: prediction", dtype=dtype)
    g = as_maps(gt, name="emd: ground truth", dtype=dtype, device=p.device)
    check_same_shape(p, g, metric="emd", names=("prediction", "ground truth"))
    check_finite(p, metric="emd", name="prediction")
    check_finite(g, metric="emd", name="ground truth")
    if downsample < 1:
        raise ValueError(f"emd: downsample must be >= 1, got {downsample}")
    if downsample > 1:
        if interpolation in ("bicubic_matlab", "bicubic_octave"):
            g = imresize_scale(g, 1.0 / downsample, normalize=(interpolation == "bicubic_matlab"), dtype=dtype)
        else:
            size = (-(-g.shape[1] // downsample), -(-g.shape[2] // downsample))
            g = resize_prediction(g, size, interpolation, dtype=dtype)
        p = resize_prediction(p, tuple(g.shape[1:]), interpolation, dtype=dtype)
    h, w = g.shape[1:]
    dist = grid_distances(h, w)
    out = []
    for b in range(p.shape[0]):
        gm = np.clip(g[b].detach().cpu().numpy().astype(np.float64).ravel(), 0, None)
        pm = np.clip(p[b].detach().cpu().numpy().astype(np.float64).ravel(), 0, None)
        if gm.sum() <= 0 or pm.sum() <= 0:
            out.append(float("nan"))
            continue
        if hist_match and np.ptp(pm) > 0:  # a constant map has no ranks to match: it stays uniform
            pm = _rank_match(pm, gm)
        out.append(float(ot.emd2(pm / pm.sum(), gm / gm.sum(), dist, numItermax=num_iter_max)))
    return torch.tensor(out, dtype=dtype, device=p.device)
