"""Baselines for information gain and negatives for shuffled AUC.

IG needs a baseline density: a centre bias fitted on *training* fixations
(:func:`center_bias_from_fixations`), one loaded from a file (:func:`load_center_bias`,
e.g. DeepGaze's ``centerbias_mit1003.npy`` log-density), or the uniform density
(``"uniform"``, a separate, labelled variant). Every baseline carries a ``source`` string
that evaluation summaries report.

Shuffled AUC needs the fixations of other images in the frame of the scored image:
:func:`other_image_fixations` builds them per preset (MIT: M random other images;
pysaliency: all other images; SALICON: per-pixel count of other images fixating it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdnas.utils.errors import DataError

from .blur import gaussian_blur
from .core import fixation_map, rescale_fixations
from .presets import MetricPreset, get_preset
from .resize import resize_prediction


@dataclass
class CenterBias:
    """A strictly positive baseline density (sums to 1) with a description of its origin."""

    density: torch.Tensor
    source: str

    def describe(self) -> str:
        return self.source


def center_bias_from_fixations(fixations: Sequence[Any], sizes: Sequence[tuple[int, int]], size: tuple[int, int], *,
                               sigma: float | None = None, uniform_mix: float = 0.01,
                               dtype: torch.dtype = torch.float64) -> CenterBias:
    """Centre bias from training fixations: pooled, rescaled fixations, blurred, mixed with uniform.

    Each image's 0-based ``(x, y)`` fixations are rescaled from its own size to ``size``
    (``x * W / W_i``), pooled into one count map, blurred with a Gaussian of ``sigma`` px
    (default: 5% of the larger side) with zero padding, normalised, and mixed with
    ``uniform_mix`` of the uniform density so the baseline is strictly positive.
    Fit it on the training split only; scoring images must not contribute.
    """
    if len(fixations) != len(sizes) or not len(fixations):
        raise ValueError("center_bias_from_fixations: need one size per fixation array and at least one image")
    if not 0 < uniform_mix <= 1:
        raise ValueError(f"center_bias_from_fixations: uniform_mix must be in (0, 1], got {uniform_mix}")
    h, w = int(size[0]), int(size[1])
    pooled = np.concatenate([rescale_fixations(f, s, (h, w)) for f, s in zip(fixations, sizes, strict=True)])
    pooled[:, 0] = np.clip(pooled[:, 0], 0, w - 1)
    pooled[:, 1] = np.clip(pooled[:, 1], 0, h - 1)
    counts = fixation_map([pooled], (h, w), rounding="floor", dtype=dtype)
    sigma = 0.05 * max(h, w) if sigma is None else float(sigma)
    blurred = gaussian_blur(counts, sigma, mode="constant", dtype=dtype)[0].clamp_(min=0)
    total = float(blurred.sum())
    dens = blurred / total if total > 0 else torch.full((h, w), 1.0 / (h * w), dtype=dtype)
    dens = (1 - uniform_mix) * dens + uniform_mix / (h * w)
    src = (f"centre bias from {len(fixations)} training images ({len(pooled)} fixations) at {h}x{w}, "
           f"gaussian sigma {sigma:g} px (zero padding), uniform mix {uniform_mix:g}")
    return CenterBias(dens, src)


def load_center_bias(path: str | Path, size: tuple[int, int] | None = None, *, log_density: bool = False,
                     interpolation: str = "bilinear_zoom", dtype: torch.dtype = torch.float64) -> CenterBias:
    """Load a centre-bias map from ``.npy`` (no pickles) and resize it to ``size``.

    ``log_density=True`` for log-densities such as DeepGaze's ``centerbias_mit1003.npy``
    (exponentiated after resizing, then normalised). Raises :class:`DataError` naming the file
    for a missing, unreadable, non-2-D, non-finite or negative map.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found", expected="a 2-D .npy centre-bias map")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # corrupt or pickled files
        raise DataError(path, f"cannot read as .npy ({exc})",
                        expected="a 2-D float array saved with numpy.save") from exc
    if arr.ndim != 2:
        raise DataError(path, f"array has shape {arr.shape}", expected="a 2-D H x W map")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise DataError(path, "map contains NaN or infinite values", expected="finite values")
    if not log_density and (arr < 0).any():
        raise DataError(path, "map has negative values", expected="a non-negative density (or log_density=True)")
    t = torch.from_numpy(arr).to(dtype)
    if size is not None and tuple(t.shape) != tuple(size):
        t = resize_prediction(t, size, interpolation, dtype=dtype)[0]
    else:
        t = t.clone()
    if log_density:
        t = torch.exp(t - torch.logsumexp(t.flatten(), 0))
    t = t.clamp(min=0)
    total = float(t.sum())
    if total <= 0:
        raise DataError(path, "map sums to zero", expected="a map with positive mass")
    src = f"centre bias from file {path.name}" + (" (log-density)" if log_density else "")
    if size is not None:
        src += f", resized to {size[0]}x{size[1]} ({interpolation})"
    return CenterBias(t / total, src)


def uniform_baseline(size: tuple[int, int], dtype: torch.dtype = torch.float64) -> CenterBias:
    """The uniform density (IG against it is the 'uniform baseline' variant)."""
    h, w = int(size[0]), int(size[1])
    return CenterBias(torch.full((h, w), 1.0 / (h * w), dtype=dtype), "uniform density")


def other_image_fixations(fixations: Sequence[Any], sizes: Sequence[tuple[int, int]], index: int,
                          size: tuple[int, int] | None = None, *, preset: str | MetricPreset = "mit",
                          seed: int | None = None, n_other: int | None = None) -> tuple[Any, str]:
    """Negatives for shuffled AUC of image ``index``, in the frame ``size`` (default: its own).

    Returns ``(other, description)``: ``other`` is an ``N x 2`` coordinate array (``mit``,
    ``pysaliency``) or an ``H x W`` count map (``salicon``), ready for ``auc_shuffled``.

    ``mit``: fixations of ``n_other`` (preset: 10) other images drawn at random (seeded with
    ``seed + index``); the metric collapses them to a binary map. ``pysaliency``: all other
    images' fixations (``n_other=0`` means all), rescaled by ``x * W / W_other``.
    ``salicon``: for each pixel, the number of other images fixating it.
    """
    p = get_preset(preset)
    n = len(fixations)
    if len(sizes) != n:
        raise ValueError("other_image_fixations: need one size per image")
    if not 0 <= index < n:
        raise ValueError(f"other_image_fixations: index {index} outside 0..{n - 1}")
    size = tuple(sizes[index]) if size is None else (int(size[0]), int(size[1]))
    others = [j for j in range(n) if j != index]
    m = p.sauc_other_images if n_other is None else int(n_other)
    if m and m < len(others):
        rng = np.random.default_rng((p.seed if seed is None else int(seed)) + index)
        others = sorted(rng.choice(others, size=m, replace=False).tolist())
    scaled = []
    for j in others:
        xy = rescale_fixations(fixations[j], sizes[j], size)
        # keep rescaled points inside the frame whatever the pixel rounding (floor or round)
        xy[:, 0] = np.clip(xy[:, 0], 0, size[1] - 1)
        xy[:, 1] = np.clip(xy[:, 1], 0, size[0] - 1)
        scaled.append(xy)
    desc = (f"fixations of {len(others)} other images"
            + (f" (random, seed {p.seed if seed is None else seed}+{index})" if m and m <= len(others) else " (all)")
            + f", rescaled to {size[0]}x{size[1]}")
    if p.sauc_mode == "count_weighted":
        count = torch.zeros(size, dtype=torch.float64)
        for xy in scaled:
            count += fixation_map([xy], size, rounding="floor", binary=True)[0]
        return count, desc + ", counted once per image and pixel"
    if not scaled:
        return np.zeros((0, 2)), desc
    return np.concatenate(scaled), desc + (", binary union" if p.sauc_mode == "sampled" else ", duplicates kept")
