"""The fused batch engine (``batch_metrics``) against the single-metric functions, edge cases included.

The engine folds normalisations into per-image scalars, takes moments and the exact AUC from
one histogram for integer-valued maps, and hands images its formulas do not cover (zero,
constant, shifted or offset maps) to the single-metric code. Every path must give the values
of the individual metric functions (independently tested against MIT/pysaliency references).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import kdnas.metrics.saliency.fast as fast
from kdnas.metrics.saliency import (
    auc_exact,
    auc_judd,
    batch_metrics,
    cc,
    fixation_map,
    gaussian_blur,
    kld,
    nss,
    sim,
)

NAMES = ("CC", "KLD", "SIM", "NSS", "AUC", "AUC_Judd")
H, W = 18, 22


def _edge_batch(seed: int = 0):
    """Rows that take every path of the engine (continuous, integer, fallbacks)."""
    rng = np.random.default_rng(seed)
    smooth = gaussian_blur(torch.from_numpy(rng.random((1, H, W))), 1.5).numpy()[0]
    pred = np.stack([
        smooth,                                          # continuous
        rng.integers(0, 256, (H, W)).astype(np.float64),  # 8-bit levels: histogram path
        np.zeros((H, W)),                                # all zero: zero-sum fallbacks
        np.full((H, W), 3.0),                            # constant
        smooth - 0.4,                                    # negative values: pysaliency shifts them
        rng.integers(-3, 4, (H, W)).astype(np.float64),  # integers below zero: generic counting
        1e6 + smooth,                                    # large offset: raw moments would lose digits
        np.round(smooth * 4) / 4,                        # many ties at non-integer levels
    ])
    gt = gaussian_blur(torch.from_numpy(rng.random((len(pred), H, W))), 2.0).numpy()
    gt[1] -= gt[1].min() + 1e-17                         # tiny negative minimum (FFT blur ringing)
    gt[2] = np.zeros((H, W))                             # all-zero ground truth
    gt[3] = np.full((H, W), 0.5)                         # constant ground truth
    fix = [np.stack([rng.integers(0, W, n), rng.integers(0, H, n)], 1).astype(np.float64) + rng.random((n, 2))
           for n in rng.integers(3, 30, len(pred))]
    fix[0][1] = fix[0][0]                                # a duplicate
    return pred, gt, fix


def _reference(pred, gt, fix, preset):
    return {"CC": cc(pred, gt, preset), "KLD": kld(pred, gt, preset), "SIM": sim(pred, gt, preset),
            "NSS": nss(pred, fix, preset), "AUC": auc_exact(pred, fix, preset=preset, method="search"),
            "AUC_Judd": auc_judd(pred, fix, preset, seed=1)}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("preset", ["mit", "pysaliency", "salicon"])
@pytest.mark.parametrize("chunk", [None, 1])
def test_every_path_equals_the_single_metric_functions(preset: str, chunk, monkeypatch) -> None:
    """``chunk=1`` runs one image per chunk (the 480 x 640 layout) on small maps."""
    pred, gt, fix = _edge_batch()
    if chunk is not None:
        monkeypatch.setattr(fast, "_CHUNK_VALUES", H * W * chunk)
    got = batch_metrics(pred, gt, fix, NAMES, preset, seed=1)
    ref = _reference(pred, gt, fix, preset)
    for name in NAMES:
        torch.testing.assert_close(got[name], ref[name], rtol=0, atol=1e-12, equal_nan=True, msg=name)
    # the fallbacks really ran: the degenerate rows have their documented values
    assert torch.isnan(got["CC"][3]) and float(got["AUC"][3]) == 0.5


def test_integer_maps_in_one_chunk_of_several_rows() -> None:
    """Small 8-bit maps share one histogram with row offsets; moments come from it exactly."""
    rng = np.random.default_rng(3)
    pred = rng.integers(0, 256, (6, H, W)).astype(np.float64)
    pred[2] = rng.integers(0, 3, (H, W))                 # few levels
    gt = gaussian_blur(torch.from_numpy(rng.random((6, H, W))), 2.0).numpy()
    fix = [np.stack([rng.integers(0, W, 15), rng.integers(0, H, 15)], 1).astype(np.float64) for _ in range(6)]
    for preset in ("mit", "pysaliency"):
        got = batch_metrics(pred, gt, fix, NAMES, preset, seed=1)
        ref = _reference(pred, gt, fix, preset)
        for name in NAMES:
            torch.testing.assert_close(got[name], ref[name], rtol=0, atol=1e-12, msg=name)
        # uint8 input (the maps as stored) gives the same numbers as their float64 cast
        as_u8 = batch_metrics(pred.astype(np.uint8), gt, fix, NAMES, preset, seed=1)
        for name in NAMES:
            torch.testing.assert_close(as_u8[name], got[name], rtol=0, atol=0, msg=name)


def test_real_maps_histogram_and_lut_paths_equal_binary_search(shared_data: Path) -> None:
    """Two real 480 x 640 SALICON maps: as stored (histogram path, one image per chunk) and blurred
    (continuous values clustered near the 8-bit levels: LUT path) against torch.searchsorted."""
    root = shared_data / "saliency/reference/inputs"
    maps = np.stack([np.asarray(Image.open(root / f"sal_{i}.png"), dtype=np.float64) for i in (123067, 123855)])
    fix_maps = [np.asarray(Image.open(root / f"fix_{i}.png")) > 0 for i in (123067, 123855)]
    fix = [np.stack(np.nonzero(f)[::-1], 1).astype(np.float64) for f in fix_maps]
    gt = gaussian_blur(fixation_map(fix, (480, 640)), 19.0).numpy()
    blurred = gaussian_blur(torch.from_numpy(maps), 2.0).numpy()
    for m in (maps, blurred):
        got = batch_metrics(m, gt, fix, ("CC", "KLD", "SIM", "NSS", "AUC"), "pysaliency")
        torch.testing.assert_close(got["AUC"], auc_exact(m, fix, method="search"), rtol=0, atol=1e-13)
        torch.testing.assert_close(got["NSS"], nss(m, fix, "pysaliency"), rtol=0, atol=1e-12)
        torch.testing.assert_close(got["KLD"], kld(m, gt, "pysaliency"), rtol=0, atol=1e-12)
        torch.testing.assert_close(got["SIM"], sim(m, gt, "pysaliency"), rtol=0, atol=1e-12)


def test_nan_and_inf_are_named_with_the_image_index() -> None:
    pred, gt, fix = _edge_batch()
    bad = pred.copy()
    bad[5, 2, 2] = np.nan
    with pytest.raises(ValueError, match="batch_metrics: prediction of image 5 contains NaN"):
        batch_metrics(bad, gt, fix, NAMES, "mit")
    bad_gt = gt.copy()
    bad_gt[6, 0, 0] = -np.inf
    with pytest.raises(ValueError, match="batch_metrics: density of image 6 contains infinite values"):
        batch_metrics(pred, bad_gt, fix, NAMES, "mit")


@pytest.mark.parametrize("weighted", [False, True])
def test_single_image_thresholds_equal_the_batched_sort(weighted: bool) -> None:
    """One CPU image takes a NumPy sort; the result equals the padded batched construction."""
    from kdnas.metrics.saliency.ranking import build_thresholds

    rng = np.random.default_rng(4)
    for _ in range(20):
        k = int(rng.integers(1, 40))
        vals = torch.from_numpy(np.round(rng.random(k) * 5, 1) + 0.05)  # non-integers with ties
        w = torch.from_numpy(rng.integers(1, 4, k).astype(np.float64) if weighted else np.ones(k))
        single = build_thresholds(vals, torch.zeros(k, dtype=torch.long), w, 1)
        both = build_thresholds(vals, torch.zeros(k, dtype=torch.long), w, 2)  # image 1 empty: padded path
        m = int(both.count[0])
        assert int(single.count[0]) == m and int(single.entry_count[0]) == k
        assert torch.equal(single.values[0], both.values[0, :m]) and torch.equal(single.weight[0], both.weight[0, :m])
        assert torch.equal(single.entry_index[0], both.entry_index[0, :k])
