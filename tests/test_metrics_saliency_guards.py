"""Bad and degenerate inputs: a defined value or a clear error, never a silent crash.

Hand-derivable values: a constant map, an all-zero map, a map with a NaN, the wrong shape,
fixations outside the map, images without fixations.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from kdnas.metrics.saliency import (
    PRESETS,
    auc_borji,
    auc_exact,
    auc_judd,
    auc_shuffled,
    batch_metrics,
    cc,
    get_preset,
    info_gain,
    kld,
    load_center_bias,
    nss,
    preset_variant,
    resize_prediction,
    sim,
)
from kdnas.metrics.saliency.presets import MATLAB_EPS
from kdnas.utils.errors import ConfigError, DataError

RNG = np.random.default_rng(7)
H, W = 24, 32
GT = RNG.random((H, W)) + 0.01
FIX = [np.array([[3.0, 4.0], [10.0, 20.0], [31.0, 23.0], [0.0, 0.0]])]


@pytest.mark.parametrize("metric", ["cc", "kld", "sim"])
def test_nan_prediction_names_metric_and_image(metric: str) -> None:
    fn = {"cc": cc, "kld": kld, "sim": sim}[metric]
    pred = np.stack([RNG.random((H, W)), RNG.random((H, W))])
    pred[1, 5, 5] = np.nan
    with pytest.raises(ValueError, match=rf"{metric}: prediction of image 1 contains NaN"):
        fn(pred, np.stack([GT, GT]))


@pytest.mark.parametrize("fn", [nss, auc_judd, auc_exact, auc_borji])
def test_nan_or_inf_in_fixation_metrics(fn) -> None:
    pred = RNG.random((3, H, W))
    pred[2, 0, 0] = np.inf
    with pytest.raises(ValueError, match="image 2 contains infinite values"):
        fn(pred, FIX * 3)


def test_nan_ground_truth_is_named() -> None:
    gt = GT.copy()
    gt[0, 0] = np.nan
    with pytest.raises(ValueError, match="cc: ground truth of image 0 contains NaN"):
        cc(RNG.random((H, W)), gt)


def test_shape_mismatch_states_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(1, 24, 32\).*\(1, 12, 16\)"):
        cc(RNG.random((H, W)), RNG.random((12, 16)))
    with pytest.raises(ValueError, match=r"\(2, 24, 32\).*\(1, 24, 32\)"):
        batch_metrics(RNG.random((2, H, W)), GT, FIX * 2)


def test_constant_prediction_rules_per_preset() -> None:
    flat = np.full((H, W), 0.3)
    # MIT: MATLAB divides by a zero std -> NaN; min-max of SIM -> NaN; AUC defined as 0.5
    assert math.isnan(float(cc(flat, GT, "mit")[0]))
    assert math.isnan(float(nss(flat, FIX, "mit")[0]))
    assert math.isnan(float(sim(flat, GT, "mit")[0]))
    assert float(auc_judd(flat, FIX, "mit", jitter=False)[0]) == 0.5
    assert float(auc_borji(flat, FIX, "mit")[0]) == 0.5
    assert float(auc_exact(flat, FIX)[0]) == 0.5
    # pysaliency: CC 0 when only the prediction is constant; NSS 0; SIM of the densities
    assert float(cc(flat, GT, "pysaliency")[0]) == 0.0
    assert math.isnan(float(cc(GT, flat, "pysaliency")[0]))
    assert float(nss(flat, FIX, "pysaliency")[0]) == 0.0
    uniform = np.full(H * W, 1.0 / (H * W))
    expected = np.minimum(uniform, GT.ravel() / GT.sum()).sum()
    assert float(sim(flat, GT, "pysaliency")[0]) == pytest.approx(expected, abs=1e-12)
    # SALICON: NSS 0 (guarded division), CC NaN (np.corrcoef of a zero vector), AUC 0.5
    assert float(nss(flat, FIX, "salicon")[0]) == 0.0
    assert math.isnan(float(cc(flat, GT, "salicon")[0]))
    assert float(auc_borji(flat, FIX, "salicon")[0]) == 0.5


def test_all_zero_prediction_kld_follows_the_mit_rule() -> None:
    """MIT KLdiv: an all-zero map is not sum-normalised, so KL = sum g log(eps + g / eps)."""
    zero = np.zeros((H, W))
    g = GT / GT.sum()
    expected = float(np.sum(g * np.log(MATLAB_EPS + g / MATLAB_EPS)))
    got = float(kld(zero, GT, "mit")[0])
    assert math.isfinite(got)
    assert got == pytest.approx(expected, rel=1e-12)
    assert float(sim(zero, GT, "mit")[0]) == 0.0  # a zero map stays zero


def test_images_without_fixations_score_nan_not_crash() -> None:
    pred = RNG.random((2, H, W))
    fix = [FIX[0], np.zeros((0, 2))]
    for fn in (nss, auc_judd, auc_exact, auc_borji):
        vals = fn(pred, fix)
        assert vals.shape == (2,)
        assert math.isfinite(float(vals[0])) and math.isnan(float(vals[1]))
    vals = info_gain(pred, fix, "uniform")
    assert math.isfinite(float(vals[0])) and math.isnan(float(vals[1]))


def test_fixations_outside_the_map_are_reported() -> None:
    pred = RNG.random((2, H, W))
    bad = [FIX[0], np.array([[1.0, 2.0], [32.0, 5.0]])]  # x = 32 is outside 0..31
    with pytest.raises(ValueError, match=r"fixation 1 of image 1 at \(x=32, y=5\) lies outside the 24 x 32 map"):
        nss(pred, bad)
    with pytest.raises(ValueError, match="NaN or infinite coordinates"):
        nss(pred[:1], [np.array([[np.nan, 1.0]])])
    with pytest.raises(ValueError, match="must have shape N x 2"):
        nss(pred[:1], [np.zeros((3, 3))])
    with pytest.raises(ValueError, match="fixations for 1 images but 2 maps"):
        nss(pred, FIX)


def test_rounding_conventions() -> None:
    """floor (pysaliency x_int) vs round-half-up (mit): 2.6 -> pixel 2 or 3."""
    pred = np.zeros((4, 4))
    pred[0, 2], pred[0, 3] = 1.0, 5.0
    xy = [np.array([[2.6, 0.2]])]
    assert float(nss(pred, xy, "pysaliency")[0]) == pytest.approx(float(nss(pred, [np.array([[2, 0]])], "pysaliency")[0]))
    assert float(nss(pred, xy, "mit")[0]) == pytest.approx(float(nss(pred, [np.array([[3, 0]])], "mit")[0]))


def test_uint8_maps_are_cast_before_anything_else() -> None:
    """metrics.md pitfall 12: integer arithmetic must never reach the metric."""
    m8 = (RNG.random((H, W)) * 255).astype(np.uint8)
    assert float(auc_judd(m8, FIX, "mit", jitter=False)[0]) == float(
        auc_judd(m8.astype(np.float64), FIX, "mit", jitter=False)[0])


def test_unknown_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown metric preset 'matlab'.*mit"):
        get_preset("matlab")
    with pytest.raises(ConfigError, match="duplicates='sometimes'"):
        preset_variant("mit", "mine", duplicates="sometimes")
    with pytest.raises(ValueError, match="unknown metrics"):
        batch_metrics(RNG.random((H, W)), GT, FIX, metrics=("CC", "AUC-J"))
    with pytest.raises(ValueError, match="unknown interpolation"):
        resize_prediction(RNG.random((H, W)), (48, 64), "lanczos")
    with pytest.raises(ValueError, match="negatives must be"):
        auc_exact(RNG.random((H, W)), FIX, "shuffled")


def test_presets_are_frozen_and_documented() -> None:
    assert set(PRESETS) == {"mit", "pysaliency", "salicon"}
    for p in PRESETS.values():
        d = p.describe()
        for key in ("std_ddof", "kld_log_eps", "sim_minmax", "duplicates", "borji_splits", "borji_step",
                    "sauc_mode", "interpolation", "averaging"):
            assert key in d
        assert p.notes
        with pytest.raises(AttributeError):
            p.std_ddof = 3  # type: ignore[misc]
    assert PRESETS["mit"].std_ddof == 1 and PRESETS["pysaliency"].std_ddof == 0
    v = preset_variant("mit", "mit_jitter", judd_jitter=True)
    assert v.name == "mit_jitter" and v.judd_jitter and not PRESETS["mit"].judd_jitter


def test_missing_inputs_for_metrics() -> None:
    with pytest.raises(ValueError, match="need a density"):
        batch_metrics(RNG.random((H, W)), None, FIX, metrics=("CC",))
    with pytest.raises(ValueError, match="need fixations"):
        batch_metrics(RNG.random((H, W)), GT, None, metrics=("NSS",))
    with pytest.raises(ValueError, match="sAUC needs other_fixations"):
        batch_metrics(RNG.random((H, W)), GT, FIX, metrics=("sAUC",))
    with pytest.raises(ValueError, match="IG needs a baseline"):
        batch_metrics(RNG.random((H, W)), GT, FIX, metrics=("IG",))
    with pytest.raises(ValueError, match="baseline has shape"):
        info_gain(RNG.random((H, W)), FIX, np.ones((5, 5)))
    with pytest.raises(ValueError, match="count map must be finite and non-negative"):
        nss(RNG.random((H, W)), -np.ones((H, W)))


def test_shuffled_auc_without_other_fixations_is_nan() -> None:
    vals = auc_shuffled(RNG.random((H, W)), FIX, [np.zeros((0, 2))], "mit")
    assert math.isnan(float(vals[0]))


def test_center_bias_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing.npy: file not found"):
        load_center_bias(tmp_path / "missing.npy")
    bad = tmp_path / "cube.npy"
    np.save(bad, np.ones((2, 2, 2)))
    with pytest.raises(DataError, match=r"cube.npy: array has shape \(2, 2, 2\)"):
        load_center_bias(bad)
    neg = tmp_path / "neg.npy"
    np.save(neg, -np.ones((4, 4)))
    with pytest.raises(DataError, match="neg.npy: map has negative values"):
        load_center_bias(neg)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not an npy file")
    with pytest.raises(DataError, match="junk.npy: cannot read as .npy"):
        load_center_bias(junk)
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((4, 4), np.nan))
    with pytest.raises(DataError, match="nan.npy: map contains NaN"):
        load_center_bias(nan)


def test_kld_negative_prediction_under_fixation_is_nan() -> None:
    """MATLAB would return a complex number there; kdnas returns NaN instead of a wrong real."""
    pred = RNG.random((H, W))
    pred[3, 3] = -5.0
    assert math.isnan(float(kld(pred, GT, "mit")[0]))
    assert math.isfinite(float(kld(pred, GT, "pysaliency")[0]))  # pysaliency shifts negative maps


def test_returns_per_image_tensors_never_floats() -> None:
    pred = torch.rand(3, H, W, dtype=torch.float64)
    for name, vals in batch_metrics(pred, torch.from_numpy(np.stack([GT] * 3)), FIX * 3).items():
        assert isinstance(vals, torch.Tensor) and vals.shape == (3,), name
