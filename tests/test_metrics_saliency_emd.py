"""EMD: hand-checkable transports, an independent POT call, and the MIT pre-processing path."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
from scipy.spatial.distance import cdist

from kdnas.metrics.saliency import emd, gaussian_blur, imresize_scale, resize_prediction


def _point_map(h: int, w: int, points: dict[tuple[int, int], float]) -> np.ndarray:
    m = np.zeros((h, w))
    for (r, c), v in points.items():
        m[r, c] = v
    return m


def test_unit_mass_moved_by_a_known_distance() -> None:
    pred = _point_map(5, 5, {(0, 0): 1.0})
    gt = _point_map(5, 5, {(3, 4): 1.0})
    assert float(emd(pred, gt, downsample=1, hist_match=False)[0]) == pytest.approx(5.0, abs=1e-9)
    # rank matching gives the prediction's mass the ground truth's values: same transport
    assert float(emd(pred, gt, downsample=1)[0]) == pytest.approx(5.0, abs=1e-9)


def test_split_mass_and_scale_invariance() -> None:
    pred = _point_map(3, 3, {(0, 0): 0.5, (0, 2): 0.5})
    gt = _point_map(3, 3, {(0, 1): 7.0})  # total mass is normalised away
    assert float(emd(pred, gt, downsample=1, hist_match=False)[0]) == pytest.approx(1.0, abs=1e-9)
    assert float(emd(pred * 3, gt, downsample=1, hist_match=False)[0]) == pytest.approx(1.0, abs=1e-9)


def test_equals_pot_with_an_independent_cost_matrix() -> None:
    rng = np.random.default_rng(0)
    h, w = 6, 7
    rows, cols = np.mgrid[0:h, 0:w]
    cost = cdist(np.stack([rows.ravel(), cols.ravel()], 1), np.stack([rows.ravel(), cols.ravel()], 1))
    for _ in range(5):
        a, b = rng.random((h, w)), rng.random((h, w)) ** 3
        ref = ot.emd2(a.ravel() / a.sum(), b.ravel() / b.sum(), cost)
        assert float(emd(a, b, downsample=1, hist_match=False)[0]) == pytest.approx(ref, abs=1e-9)
        assert float(emd(b, a, downsample=1, hist_match=False)[0]) == pytest.approx(ref, abs=1e-9)


def test_mit_preprocessing_on_a_full_size_map() -> None:
    rng = np.random.default_rng(1)
    gt = gaussian_blur(rng.random((480, 640)) ** 8, 15.0)[0].numpy()
    pred = gaussian_blur(rng.random((2, 240, 320)) ** 8, 8.0).numpy()
    pred_full = resize_prediction(pred, (480, 640)).numpy()
    vals = emd(pred_full, np.stack([gt, gt]))
    assert vals.shape == (2,) and bool((vals > 0).all()) and bool(vals.isfinite().all())
    # the same prediction as the ground truth costs nothing
    assert float(emd(gt, gt)[0]) == pytest.approx(0.0, abs=1e-9)
    # by hand: 1/32 downsampling gives a 15 x 20 grid, then the transport on that grid
    small_gt = np.clip(imresize_scale(gt, 1 / 32)[0].numpy(), 0, None)
    small_pred = np.clip(resize_prediction(pred_full[0], (15, 20))[0].numpy(), 0, None)
    order = np.argsort(small_pred.ravel(), kind="stable")
    matched = np.empty(300)
    matched[order] = np.sort(small_gt.ravel(), kind="stable")
    rows, cols = np.mgrid[0:15, 0:20]
    pts = np.stack([rows.ravel(), cols.ravel()], 1)
    ref = ot.emd2(matched / matched.sum(), small_gt.ravel() / small_gt.sum(), cdist(pts, pts))
    assert float(vals[0]) == pytest.approx(ref, abs=1e-9)


def test_zero_mass_gives_nan_and_shapes_are_checked() -> None:
    assert math.isnan(float(emd(np.zeros((4, 4)), np.ones((4, 4)), downsample=1)[0]))
    with pytest.raises(ValueError, match="shape"):
        emd(np.ones((4, 4)), np.ones((5, 4)))
    with pytest.raises(ValueError, match="downsample must be >= 1"):
        emd(np.ones((4, 4)), np.ones((4, 4)), downsample=0)
