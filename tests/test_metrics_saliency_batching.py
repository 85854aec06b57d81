"""Batching, dtypes, input forms and invariants of the metric engine.

Batched values equal per-image values (no "first image of the batch" defect, salnas.md D1);
float32 agrees with float64; coordinate lists equal count maps; the exact AUC equals an
independent Mann-Whitney reference (scikit-learn) and is invariant to monotone transforms.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from kdnas.metrics.saliency import (
    auc_borji,
    auc_exact,
    auc_judd,
    auc_shuffled,
    batch_metrics,
    cc,
    center_bias_from_fixations,
    fixation_map,
    gaussian_blur,
    info_gain,
    kld,
    nss,
    sim,
)
from kdnas.metrics.saliency.ranking import build_thresholds, threshold_counts

B, H, W = 5, 30, 40


def _data(seed: int = 0, batch: int = B, h: int = H, w: int = W):
    rng = np.random.default_rng(seed)
    pred = gaussian_blur(torch.from_numpy(rng.random((batch, h, w))), 1.5).numpy()
    fix = [np.stack([rng.integers(0, w, n), rng.integers(0, h, n)], 1).astype(np.float64) + rng.random((n, 2))
           for n in rng.integers(5, 40, batch)]
    for f in fix:  # a few exact duplicates
        f[1] = f[0]
    gt = gaussian_blur(fixation_map(fix, (h, w)), 3.0).numpy() + 1e-3
    other = [np.concatenate([f for j, f in enumerate(fix) if j != i]) for i in range(batch)]
    return pred, gt, fix, other


@pytest.mark.parametrize("preset", ["mit", "pysaliency", "salicon"])
def test_batched_equals_per_image(preset: str) -> None:
    pred, gt, fix, other = _data()
    cb = center_bias_from_fixations(fix, [(H, W)] * B, (H, W))
    batched = {
        "CC": cc(pred, gt, preset), "KLD": kld(pred, gt, preset), "SIM": sim(pred, gt, preset),
        "NSS": nss(pred, fix, preset), "AUC": auc_exact(pred, fix, preset=preset),
        "AUC_Judd": auc_judd(pred, fix, preset, jitter=False), "AUC_Borji": auc_borji(pred, fix, preset, seed=3),
        "sAUC": auc_shuffled(pred, fix, other, preset, seed=3), "IG": info_gain(pred, fix, cb, preset),
    }
    if preset != "pysaliency":  # pysaliency's jitter is one numpy stream over the batch, by design
        batched["AUC_Judd_jitter"] = auc_judd(pred, fix, preset, jitter=True, seed=5)
    for i in range(B):
        single = {
            "CC": cc(pred[i], gt[i], preset), "KLD": kld(pred[i], gt[i], preset), "SIM": sim(pred[i], gt[i], preset),
            "NSS": nss(pred[i], [fix[i]], preset), "AUC": auc_exact(pred[i], [fix[i]], preset=preset),
            "AUC_Judd": auc_judd(pred[i], [fix[i]], preset, jitter=False),
            "AUC_Borji": auc_borji(pred[i], [fix[i]], preset, seed=3),
            "sAUC": auc_shuffled(pred[i], [fix[i]], [other[i]], preset, seed=3),
            "IG": info_gain(pred[i], [fix[i]], cb, preset),
            "AUC_Judd_jitter": auc_judd(pred[i], [fix[i]], preset, jitter=True, seed=5),
        }
        for name, vals in batched.items():
            assert float(vals[i]) == pytest.approx(float(single[name][0]), abs=1e-12), (name, i)


@pytest.mark.parametrize("preset", ["mit", "pysaliency"])
def test_batch_metrics_equals_individual_functions(preset: str) -> None:
    pred, gt, fix, other = _data(1, batch=7)
    names = ("CC", "KLD", "SIM", "NSS", "AUC_Judd", "AUC", "AUC_Borji", "sAUC", "IG")
    got = batch_metrics(pred, gt, fix, names, preset, seed=2, baseline="uniform", other_fixations=other)
    assert list(got) == list(names)
    ref = {"CC": cc(pred, gt, preset), "KLD": kld(pred, gt, preset), "SIM": sim(pred, gt, preset),
           "NSS": nss(pred, fix, preset), "AUC_Judd": auc_judd(pred, fix, preset, seed=2),  # the preset's jitter
           "AUC": auc_exact(pred, fix, preset=preset), "AUC_Borji": auc_borji(pred, fix, preset, seed=2),
           "sAUC": auc_shuffled(pred, fix, other, preset, seed=2), "IG": info_gain(pred, fix, "uniform", preset)}
    for name in names:
        torch.testing.assert_close(got[name], ref[name], rtol=0, atol=1e-12)


def test_batch_metrics_chunks_do_not_change_values(monkeypatch) -> None:
    import kdnas.metrics.saliency.fast as fast

    pred, gt, fix, _ = _data(2, batch=6)
    whole = batch_metrics(pred, gt, fix, ("CC", "KLD", "SIM", "NSS", "AUC", "AUC_Judd"), "mit")
    monkeypatch.setattr(fast, "_CHUNK_VALUES", H * W * 2)  # 3 chunks of 2 images
    chunked = batch_metrics(pred, gt, fix, ("CC", "KLD", "SIM", "NSS", "AUC", "AUC_Judd"), "mit")
    for name in whole:
        torch.testing.assert_close(whole[name], chunked[name], rtol=0, atol=1e-12)


def test_float32_agrees_with_float64() -> None:
    pred, gt, fix, _ = _data(3)
    names = ("CC", "KLD", "SIM", "NSS", "AUC_Judd", "AUC")
    for preset in ("mit", "pysaliency"):
        f64 = batch_metrics(pred, gt, fix, names, preset)
        f32 = batch_metrics(pred.astype(np.float32), gt.astype(np.float32), fix, names, preset, dtype=torch.float32)
        for name in names:
            assert f32[name].dtype == torch.float32
            np.testing.assert_allclose(f32[name].numpy(), f64[name].numpy(), atol=2e-5, err_msg=name)


def test_count_map_equals_coordinates() -> None:
    pred, gt, fix, _ = _data(4)
    counts = fixation_map(fix, (H, W), rounding="floor")
    for preset in ("pysaliency", "salicon"):  # floor rounding: the count map is the same rasterisation
        for fn in (nss, auc_exact):
            torch.testing.assert_close(fn(pred, counts, preset=preset) if fn is auc_exact else fn(pred, counts, preset),
                                       fn(pred, fix, preset=preset) if fn is auc_exact else fn(pred, fix, preset),
                                       rtol=0, atol=1e-12)
    # a count of 2 weighs a pixel twice when duplicates are kept, once when they collapse
    single = np.zeros((1, H, W))
    single[0, 3, 4] = 2
    single[0, 10, 20] = 1
    keep = nss(pred[:1], single, "pysaliency")
    z = (pred[0] - pred[0].mean()) / pred[0].std()
    assert float(keep[0]) == pytest.approx((2 * z[3, 4] + z[10, 20]) / 3, abs=1e-12)
    z1 = (pred[0] - pred[0].mean()) / pred[0].std(ddof=1)
    assert float(nss(pred[:1], single, "mit")[0]) == pytest.approx((z1[3, 4] + z1[10, 20]) / 2, abs=1e-12)


def test_sampled_metrics_are_seeded() -> None:
    pred, _, fix, other = _data(5)
    a = auc_borji(pred, fix, "mit", seed=11)
    assert torch.equal(a, auc_borji(pred, fix, "mit", seed=11))
    assert not torch.equal(a, auc_borji(pred, fix, "mit", seed=12))
    s = auc_shuffled(pred, fix, other, "mit", seed=11)
    assert torch.equal(s, auc_shuffled(pred, fix, other, "mit", seed=11))


def test_batch_of_32_small_maps_is_fast() -> None:
    """The trainer's per-epoch call. Timed on one thread: the conservative setting, and immune to
    OpenMP stalls when the CI machine is shared (two threads on two busy cores can be 10x slower)."""
    pred, gt, fix, _ = _data(6, batch=32, h=96, w=128)
    pred_t, gt_t = torch.from_numpy(pred).float(), torch.from_numpy(gt).float()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        batch_metrics(pred_t, gt_t, fix, dtype=torch.float32)
        best = min(_timed(lambda: batch_metrics(pred_t, gt_t, fix, dtype=torch.float32)) for _ in range(3))
        best64 = min(_timed(lambda: batch_metrics(pred, gt, fix)) for _ in range(3))
    finally:
        torch.set_num_threads(threads)
    assert best < 0.3 and best64 < 0.3, (best, best64)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu() -> None:
    pred, gt, fix, _ = _data(8)
    names = ("CC", "KLD", "SIM", "NSS", "AUC_Judd", "AUC")
    cpu = batch_metrics(pred, gt, fix, names)
    gpu = batch_metrics(torch.from_numpy(pred).cuda(), torch.from_numpy(gt).cuda(), fix, names)
    for name in names:
        assert gpu[name].device.type == "cuda"
        torch.testing.assert_close(gpu[name].cpu(), cpu[name], rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------------------
# properties

maps_and_points = st.integers(min_value=0, max_value=2**31 - 1).flatmap(
    lambda seed: st.tuples(st.just(seed), st.integers(2, 12), st.integers(2, 12), st.integers(1, 30),
                           st.sampled_from(["uniform", "levels", "crowded"])))


def _case(seed: int, h: int, w: int, n: int, kind: str):
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        m = rng.random((h, w))
    elif kind == "levels":  # many ties
        m = rng.integers(0, 4, (h, w)).astype(np.float64)
    else:  # values crowded within 1e-12
        m = 1.0 + rng.random((h, w)) * 1e-12
    xy = np.stack([rng.integers(0, w, n), rng.integers(0, h, n)], 1).astype(np.float64)
    return m, xy


@settings(max_examples=60, deadline=None)
@given(maps_and_points)
def test_exact_auc_is_mann_whitney(case) -> None:
    """Independent reference: scikit-learn's ROC AUC (ties count half) over pixels as samples."""
    m, xy = _case(*case)
    h, w = m.shape
    counts = np.zeros((h, w))
    np.add.at(counts, (xy[:, 1].astype(int), xy[:, 0].astype(int)), 1)
    if counts.sum() == 0:
        return
    # positives: every fixation (duplicates as weight); negatives: every pixel (all_pixels)
    scores = np.concatenate([m.ravel(), m.ravel()])
    labels = np.concatenate([np.ones(h * w), np.zeros(h * w)])
    weights = np.concatenate([counts.ravel(), np.ones(h * w)])
    ref = roc_auc_score(labels, scores, sample_weight=weights)
    for method in ("auto", "lut", "search"):
        assert float(auc_exact(m, [xy], method=method)[0]) == pytest.approx(ref, abs=1e-12)
    unfix = counts.ravel() == 0
    if unfix.any():
        w2 = np.concatenate([counts.ravel(), unfix.astype(float)])
        assert float(auc_exact(m, [xy], "unfixated")[0]) == pytest.approx(
            roc_auc_score(labels, scores, sample_weight=w2), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(maps_and_points)
def test_auc_invariant_to_monotone_transforms(case) -> None:
    m, xy = _case(*case)
    if np.ptp(m) == 0:
        return
    z = (m - m.min()) / np.ptp(m)  # exactly representable monotone maps of the same ranking
    for transformed in (z * 2.0 + 1.0, z ** 3 + z, np.exp(z)):
        if len(np.unique(transformed)) != len(np.unique(z)):  # rounding merged values: not monotone
            continue
        np.testing.assert_allclose(auc_exact(transformed, [xy]).numpy(), auc_exact(z, [xy]).numpy(), atol=1e-12)
        # every pixel fixated leaves no negatives: NaN on both sides
        np.testing.assert_allclose(auc_judd(transformed, [xy], "pysaliency", jitter=False).numpy(),
                                   auc_judd(z, [xy], "pysaliency", jitter=False).numpy(), atol=1e-12,
                                   equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.1, 10), st.floats(-5, 5))
def test_cc_is_symmetric_and_affine_invariant(seed: int, scale: float, shift: float) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.random((9, 11)), rng.random((9, 11))
    r = float(cc(a, b)[0])
    assert float(cc(b, a)[0]) == pytest.approx(r, abs=1e-12)
    assert float(cc(a * scale + shift, b)[0]) == pytest.approx(r, abs=1e-9)
    assert r == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.integers(1, 300), st.sampled_from([1e-9, 1.0, 1e6]))
def test_counting_kernels_agree(seed: int, rows: int, n: int, spread: float) -> None:
    """LUT, binary search and (when applicable) the integer histogram give identical counts."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 6, (rows, n)).astype(np.float64) if seed % 2 else rng.random((rows, n)) * spread
    v = torch.from_numpy(base)
    k = rng.integers(1, n + 5)
    image = torch.from_numpy(np.sort(rng.integers(0, rows, k)))
    idx = torch.from_numpy(rng.integers(0, n, k))
    vals = v[image, idx]
    weight = torch.from_numpy(rng.integers(1, 3, k).astype(np.float64))
    thr = build_thresholds(vals, image, weight, rows)
    out = [threshold_counts(v, thr, method=m) for m in ("auto", "lut", "search")]
    for lt, eq in out[1:]:
        assert torch.equal(lt, out[0][0]) and torch.equal(eq, out[0][1])
    negw = torch.from_numpy(rng.random((rows, n)))
    wout = [threshold_counts(v, thr, weight=negw, method=m) for m in ("auto", "lut", "search")]
    for lt, eq in wout[1:]:
        torch.testing.assert_close(lt, wout[0][0], rtol=0, atol=1e-9)
        torch.testing.assert_close(eq, wout[0][1], rtol=0, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.integers(1, 60))
def test_integer_thresholds_equal_the_sorted_ones(seed: int, rows: int, k: int) -> None:
    """Integer-valued positives skip the sort; the result must be identical."""
    import kdnas.metrics.saliency.ranking as ranking

    rng = np.random.default_rng(seed)
    image = torch.from_numpy(np.sort(rng.integers(0, rows, k)))
    vals = torch.from_numpy(rng.integers(-3, 9, k).astype(np.float64))
    weight = torch.from_numpy(rng.integers(1, 4, k).astype(np.float64))
    fast = build_thresholds(vals, image, weight, rows)
    original = ranking._integer_thresholds
    ranking._integer_thresholds = lambda *a: None
    try:
        slow = build_thresholds(vals, image, weight, rows)
    finally:
        ranking._integer_thresholds = original
    for name in ("values", "weight", "count", "entry_index", "entry_count"):
        assert torch.equal(getattr(fast, name), getattr(slow, name)), name
