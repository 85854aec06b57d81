"""Protocol defaults and the evaluator API: deterministic AUC-Judd under ``mit``, per-image
baselines, the package's exported names, and constant maps through resizing."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import kdnas.metrics.saliency as sal
from kdnas.data.types import SaliencySample
from kdnas.metrics.saliency import (
    PRESETS,
    SaliencyEvaluator,
    auc_judd,
    batch_metrics,
    center_bias_from_fixations,
    info_gain,
    resize_prediction,
    score_sample,
)

REF = "saliency/reference"


@pytest.fixture(scope="module")
def octave(shared_data: Path) -> dict:
    """Three SALICON maps, their distinct fixated pixels and the Octave AUC_Judd(jitter=0) values."""
    root = shared_data / REF
    with open(root / "mit_metrics_octave_salicon.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["case"] == "SALICON" and r["metric"] == "AUC_Judd"]
    assert all(r["args"] == "jitter=0" for r in rows)
    ids = sorted(r["saliency_map"].split("_")[-1].split(".")[0] for r in rows)[:3]
    judd = {r["saliency_map"].split("_")[-1].split(".")[0]: float(r["value"]) for r in rows}
    maps = np.stack([np.asarray(Image.open(root / f"inputs/sal_{i}.png"), dtype=np.float64) for i in ids])
    fix = []
    for i in ids:
        ys, xs = np.nonzero(np.asarray(Image.open(root / f"inputs/fix_{i}.png")) > 0)
        fix.append(np.stack([xs, ys], 1).astype(np.float64))
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    samples = [SaliencySample(name=i, image=image, fixations=f) for i, f in zip(ids, fix, strict=True)]
    return {"ids": ids, "maps": maps, "fix": fix, "samples": samples, "judd": [judd[i] for i in ids]}


def test_mit_auc_judd_is_deterministic_by_default_everywhere(octave: dict) -> None:
    """auc_judd, batch_metrics, score_sample and SaliencyEvaluator all give MIT's jitter=0 values."""
    assert not PRESETS["mit"].judd_jitter and not PRESETS["salicon"].judd_jitter and PRESETS["pysaliency"].judd_jitter
    ref = torch.tensor(octave["judd"], dtype=torch.float64)
    torch.testing.assert_close(auc_judd(octave["maps"], octave["fix"], "mit"), ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(batch_metrics(octave["maps"], None, octave["fix"], ("AUC_Judd",), "mit")["AUC_Judd"],
                               ref, rtol=0, atol=1e-6)
    ev = SaliencyEvaluator(preset="mit", metrics=("AUC_Judd",))
    for k, sample in enumerate(octave["samples"]):
        assert score_sample(octave["maps"][k], sample, "mit", metrics=("AUC_Judd",))["AUC_Judd"] == pytest.approx(
            octave["judd"][k], abs=1e-6)
        assert ev.add(octave["maps"][k], sample)["AUC_Judd"] == pytest.approx(octave["judd"][k], abs=1e-6)
    assert ev.summary()["protocol"]["auc_judd_jitter"] is False


def test_mit_jitter_is_opt_in_and_seeded(octave: dict) -> None:
    """MIT's own jitter=1 (U(0,1) * 1e-7 per pixel) breaks the ties of the 8-bit levels."""
    maps, fix = octave["maps"], octave["fix"]
    plain = auc_judd(maps, fix, "mit")
    a = auc_judd(maps, fix, "mit", jitter=True, seed=3)
    assert torch.equal(a, auc_judd(maps, fix, "mit", jitter=True, seed=3))  # seeded
    assert not torch.equal(a, auc_judd(maps, fix, "mit", jitter=True, seed=4))
    gaps = (a - plain).abs()
    assert float(gaps.min()) > 1e-4 and float(gaps.max()) < 0.05  # tie-breaking only
    torch.testing.assert_close(batch_metrics(maps, None, fix, ("AUC_Judd",), "mit", judd_jitter=True,
                                             seed=3)["AUC_Judd"], a, rtol=0, atol=1e-12)
    row = score_sample(maps[0], octave["samples"][0], "mit", metrics=("AUC_Judd",), judd_jitter=True, seed=3)
    assert row["AUC_Judd"] == pytest.approx(float(a[0]), abs=1e-12)
    ev = SaliencyEvaluator(preset="mit", metrics=("AUC_Judd",), judd_jitter=True, seed=3)
    assert ev.add(maps[0], octave["samples"][0])["AUC_Judd"] == pytest.approx(float(a[0]), abs=1e-12)
    assert ev.summary()["protocol"]["auc_judd_jitter"] is True


def test_evaluator_takes_a_baseline_per_image(octave: dict) -> None:
    samples, maps, fix = octave["samples"], octave["maps"], octave["fix"]
    cb = center_bias_from_fixations(fix[1:], [(480, 640)] * 2, (480, 640))
    ev = SaliencyEvaluator(preset="mit", metrics=("IG",), baseline="uniform")
    first = ev.add(maps[0], samples[0])  # the evaluator's own baseline
    second = ev.add(maps[0], samples[0], baseline=cb)  # this image's
    assert first["IG"] == pytest.approx(float(info_gain(maps[0], [fix[0]], "uniform", "mit")[0]), abs=1e-12)
    assert second["IG"] == pytest.approx(float(info_gain(maps[0], [fix[0]], cb, "mit")[0]), abs=1e-12)
    assert second["IG"] != pytest.approx(first["IG"], abs=1e-3)
    assert ev.baseline == "uniform"  # add() never changes the evaluator's default
    baseline = ev.summary()["protocol"]["baseline"]
    assert "uniform density" in baseline and "centre bias from 2 training images" in baseline
    with pytest.raises(ValueError, match="IG needs a baseline"):
        SaliencyEvaluator(preset="mit", metrics=("IG",)).add(maps[0], samples[0])


def test_package_exports_what_reports_need() -> None:
    for name in ("KNOWN", "DEFAULT_EVAL_METRICS", "gt_description", "describe_baseline", "INTERPOLATION_MODES",
                 "INTERPOLATION_DESCRIPTIONS"):
        assert name in sal.__all__ and hasattr(sal, name)
    assert set(sal.DEFAULT_EVAL_METRICS) <= set(sal.KNOWN)
    assert set(sal.INTERPOLATION_DESCRIPTIONS) == set(sal.INTERPOLATION_MODES)
    assert all(p.interpolation in sal.INTERPOLATION_MODES for p in PRESETS.values())
    assert "antonioGaussian fc=8" in sal.gt_description(PRESETS["mit"])
    with pytest.raises(ValueError, match="unknown interpolation 'lanczos'"):
        resize_prediction(np.ones((4, 4)), (8, 8), "lanczos")


@pytest.mark.parametrize("mode", ["bicubic_matlab", "bicubic_octave", "cubic_zoom", "bilinear_zoom"])
def test_constant_map_stays_constant_through_resizing(mode: str) -> None:
    """A constant 120 x 160 map scored at 480 x 640 keeps the documented constant-map values."""
    flat = np.full((120, 160), 0.3)
    raw = resize_prediction(flat, (480, 640), mode, keep_constant=False)
    kept = resize_prediction(flat, (480, 640), mode)
    assert float(kept.min()) == float(kept.max()) == 0.3
    if mode == "bicubic_matlab":  # the defect: ~1e-16 interpolation noise made the map non-constant
        assert float(raw.max() - raw.min()) > 0 and float((raw - 0.3).abs().max()) < 1e-14
    # a non-constant map in the same batch is resized as before
    varied = np.stack([flat, np.random.default_rng(0).random((120, 160))])
    torch.testing.assert_close(resize_prediction(varied, (480, 640), mode)[1],
                               resize_prediction(varied[1], (480, 640), mode)[0], rtol=0, atol=0)
    rng = np.random.default_rng(1)
    sample = SaliencySample(name="s", image=np.zeros((480, 640, 3), np.uint8),
                            fixations=np.stack([rng.integers(0, 640, 40), rng.integers(0, 480, 40)], 1))
    mit = score_sample(flat, sample, "mit", metrics=("NSS", "CC", "SIM", "AUC_Judd", "AUC_Borji"), interpolation=mode)
    assert math.isnan(mit["NSS"]) and math.isnan(mit["CC"]) and math.isnan(mit["SIM"])
    assert mit["AUC_Judd"] == 0.5 and mit["AUC_Borji"] == 0.5
    pys = score_sample(flat, sample, "pysaliency", metrics=("NSS", "CC", "AUC"), interpolation=mode)
    assert pys["NSS"] == 0.0 and pys["CC"] == 0.0 and pys["AUC"] == 0.5
