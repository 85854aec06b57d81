"""Teacher-student heatmap agreement (cxr-kd.md §8.5, a kdnas addition).

Both maps of an (image, class) pair are brought to a common size (the larger of the two, bilinear,
``cv2.resize``), then compared by Spearman rank correlation (primary), Pearson correlation, IoU of
their top-k% regions and the distance between their maxima. A constant map has no ranking: its
correlations are NaN and the pair is left out of the correlation means (and counted).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.stats import pearsonr, spearmanr

from kdnas.explain.localization import binarize, iou, maxima
from kdnas.utils.errors import KdnasError


def to_common_size(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resize the smaller map to the larger one's size (bilinear); equal sizes pass through."""
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    if a.ndim != 2 or b.ndim != 2:
        raise KdnasError(f"agreement compares H x W maps, got shapes {a.shape} and {b.shape}")
    if a.shape == b.shape:
        return a, b
    if a.size >= b.size:
        return a, cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(a, (b.shape[1], b.shape[0]), interpolation=cv2.INTER_LINEAR), b


def _peak(cam: np.ndarray) -> np.ndarray:
    """(row, col) centroid of the maximal pixels."""
    return np.argwhere(maxima(cam)).mean(axis=0)


def agreement_keys(topk: float = 0.2) -> tuple[str, ...]:
    """The metric names :func:`map_agreement` returns, in order."""
    return ("spearman", "pearson", f"top{round(topk * 100):d}%_iou", "peak_distance", "peak_distance_rel")


def map_agreement(a: np.ndarray, b: np.ndarray, topk: float = 0.2) -> dict[str, float]:
    """``spearman``, ``pearson``, ``top<k>%_iou`` and ``peak_distance`` (pixels of the common size,
    divided by the image diagonal in ``peak_distance_rel``) of two heatmaps."""
    a, b = to_common_size(a, b)
    fa, fb = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    constant = fa.min() == fa.max() or fb.min() == fb.max()
    rho = float("nan") if constant else float(spearmanr(fa, fb).statistic)
    r = float("nan") if constant else float(pearsonr(fa, fb).statistic)
    dist = float(np.hypot(*(_peak(a) - _peak(b))))
    values = (rho, r, iou(binarize(a, "topk", topk), binarize(b, "topk", topk)), dist,
              dist / float(np.hypot(*a.shape)))
    return dict(zip(agreement_keys(topk), values, strict=True))
