"""Localisation of heatmaps against ground-truth boxes (cxr-kd.md §8.4).

Conventions (part of every reported protocol):

* A map is ``H x W``; pixel ``(row i, column j)`` has its centre at ``(x, y) = (j + 0.5, i + 0.5)`` in
  the frame of the boxes (``Box(label, x, y, w, h)``, top-left corner and size in pixels of the same
  image). A pixel belongs to a box when its centre lies in ``[x, x + w] x [y, y + h]``, or within
  ``tolerance`` pixels (Euclidean) of it. A box too small to contain any pixel centre still claims
  the pixel that holds its centre, so tiny boxes stay scoreable after downsizing.
* The class mask is the union of that class's boxes.
* Ties: when several pixels share the map's maximum, the pointing-game hit is the fraction of them
  inside the mask (the expected hit under a uniformly random choice among the maxima). A constant
  map therefore scores the mask's area fraction, the chance level, instead of a free hit.
* A map with no positive mass (all zero) is treated as uniform by the energy-based pointing game.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kdnas.data.types import Box
from kdnas.utils.errors import KdnasError

IOU_HIT_THRESHOLDS = (0.1, 0.25, 0.5)


def box_mask(boxes: Sequence[Box], shape: tuple[int, int], tolerance: float = 0.0) -> np.ndarray:
    """Boolean ``H x W`` union mask of ``boxes`` (see the module docstring for the pixel rule)."""
    h, w = int(shape[0]), int(shape[1])
    mask = np.zeros((h, w), dtype=bool)
    cy = np.arange(h, dtype=np.float64)[:, None] + 0.5
    cx = np.arange(w, dtype=np.float64)[None, :] + 0.5
    for b in boxes:
        dx = np.maximum(np.maximum(b.x - cx, cx - (b.x + b.w)), 0.0)
        dy = np.maximum(np.maximum(b.y - cy, cy - (b.y + b.h)), 0.0)
        inside = (dx ** 2 + dy ** 2) <= float(tolerance) ** 2
        if not inside.any():  # sub-pixel box: the pixel holding its centre
            col = int(np.clip(np.floor(b.x + b.w / 2), 0, w - 1))
            row = int(np.clip(np.floor(b.y + b.h / 2), 0, h - 1))
            if 0 <= b.x + b.w / 2 <= w and 0 <= b.y + b.h / 2 <= h:
                inside = np.zeros((h, w), dtype=bool)
                inside[row, col] = True
        mask |= inside
    return mask


def _check(cam: np.ndarray) -> np.ndarray:
    cam = np.asarray(cam, dtype=np.float64)
    if cam.ndim != 2 or cam.size == 0:
        raise KdnasError(f"a heatmap must be a non-empty H x W array, got shape {cam.shape}")
    if not np.isfinite(cam).all():
        raise KdnasError("heatmap contains NaN or infinite values")
    return cam


def maxima(cam: np.ndarray) -> np.ndarray:
    """Boolean mask of the pixels holding the map's maximum."""
    cam = _check(cam)
    return cam == cam.max()


def pointing_game(cam: np.ndarray, mask: np.ndarray) -> float:
    """Hit (1) if the map's maximum lies in ``mask``; ties give the fraction of maxima inside."""
    top = maxima(cam)
    return float((top & mask).sum() / top.sum())


def energy_pointing_game(cam: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's positive mass inside ``mask`` (Score-CAM's energy-based pointing game)."""
    cam = np.clip(_check(cam), 0.0, None)
    total = cam.sum()
    if total <= 0:
        return float(mask.mean())  # no mass: as uniform
    return float(cam[mask].sum() / total)


def binarize(cam: np.ndarray, mode: str = "fraction", value: float = 0.5) -> np.ndarray:
    """Heatmap -> region: ``fraction``: pixels >= ``value`` x max; ``topk``: the top ``value`` share of
    pixels (ties at the cut-off are all kept)."""
    cam = _check(cam)
    if mode == "fraction":
        if not 0.0 <= value <= 1.0:
            raise KdnasError(f"fraction threshold must be in [0, 1], got {value}")
        return cam >= value * cam.max()
    if mode == "topk":
        if not 0.0 < value <= 1.0:
            raise KdnasError(f"top-k share must be in (0, 1], got {value}")
        k = max(1, int(round(value * cam.size)))
        cut = np.partition(cam.ravel(), cam.size - k)[cam.size - k]
        return cam >= cut
    raise KdnasError(f"binarize mode must be 'fraction' or 'topk', got {mode!r}")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def threshold_spec(spec: str) -> tuple[str, float]:
    """``"0.5max"`` -> (fraction, 0.5); ``"top10%"`` -> (topk, 0.10)."""
    s = str(spec).strip().lower()
    try:
        if s.endswith("max"):
            return "fraction", float(s[:-3])
        if s.startswith("top") and s.endswith("%"):
            return "topk", float(s[3:-1]) / 100.0
    except ValueError:
        pass
    raise KdnasError(f"threshold {spec!r}: expected '<f>max' (e.g. 0.5max) or 'top<p>%' (e.g. top10%)")


def localization_scores(cam: np.ndarray, boxes: Sequence[Box], tolerance: float = 0.0,
                        thresholds: Sequence[str] = ("0.5max",),
                        hit_ious: Sequence[float] = IOU_HIT_THRESHOLDS) -> dict[str, float]:
    """Every localisation metric of one (image, class) map against that class's boxes.

    Keys: ``pointing_game``, ``pointing_game_tol<t>px`` (when ``tolerance > 0``), ``energy_pointing``,
    and per binarisation threshold ``T``: ``iou@T`` and ``hit<t>@T`` for each IoU threshold ``t``.
    """
    if not boxes:
        raise KdnasError("localisation needs at least one ground-truth box")
    cam = _check(cam)
    mask = box_mask(boxes, cam.shape)
    out = {"pointing_game": pointing_game(cam, mask)}
    if tolerance > 0:
        out[f"pointing_game_tol{tolerance:g}px"] = pointing_game(cam, box_mask(boxes, cam.shape, tolerance))
    out["energy_pointing"] = energy_pointing_game(cam, mask)
    for spec in thresholds:
        mode, value = threshold_spec(spec)
        score = iou(binarize(cam, mode, value), mask)
        out[f"iou@{spec}"] = score
        for t in hit_ious:
            out[f"hit{t:g}@{spec}"] = float(score >= t)
    return out


def centre_baseline(shape: tuple[int, int], sigma: float = 0.25) -> np.ndarray:
    """A Gaussian bump at the image centre (``sigma`` as a fraction of each side): the "always point
    at the middle" baseline."""
    h, w = int(shape[0]), int(shape[1])
    y = (np.arange(h) + 0.5 - h / 2) / (sigma * h)
    x = (np.arange(w) + 0.5 - w / 2) / (sigma * w)
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2)).astype(np.float32)


def uniform_baseline(shape: tuple[int, int]) -> np.ndarray:
    """A constant map: its pointing game is the expected hit of a uniformly random point."""
    return np.ones((int(shape[0]), int(shape[1])), dtype=np.float32)


BASELINES = {"centre": centre_baseline, "uniform": uniform_baseline}
