"""Native-resolution scoring, baselines, shuffled negatives and the SALICON preset, on real data."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from kdnas.data.types import SaliencySample
from kdnas.metrics.saliency import (
    SaliencyEvaluator,
    auc_judd,
    auc_shuffled,
    build_ground_truth,
    cc,
    center_bias_from_fixations,
    imresize_scale,
    info_gain,
    load_center_bias,
    nss,
    other_image_fixations,
    preset_variant,
    resize_prediction,
    score_sample,
    uniform_baseline,
)


@pytest.fixture(scope="module")
def salicon(shared_data: Path, salicon_fixations) -> dict:
    root = shared_data / "saliency"
    ids, all_fix = salicon_fixations
    samples, maps = [], []
    for i, fix in zip(ids, all_fix, strict=True):
        image = np.asarray(Image.open(root / f"salicon/images/train2014examples/COCO_train2014_000000{i}.jpg"))
        samples.append(SaliencySample(name=str(i), image=image, fixations=fix))
        maps.append(np.asarray(Image.open(root / f"reference/inputs/sal_{i}.png"), dtype=np.float64))
    with open(root / "reference/mit_metrics_octave_salicon.csv", newline="") as fh:
        ref = {(r["saliency_map"].split("_")[-1].split(".")[0], r["metric"]): float(r["value"])
               for r in csv.DictReader(fh) if r["case"] == "SALICON"}
    # the API's own 1-based [row, col] points, for the independent port of its formulas
    points = {i: [(int(y) + 1, int(x) + 1) for x, y in fix] for i, fix in zip(ids, all_fix, strict=True)}
    return {"ids": ids, "samples": samples, "maps": np.stack(maps), "ref": ref, "points": points}


def test_score_sample_reproduces_the_mit_values_end_to_end(salicon: dict) -> None:
    """Ground truth built from the raw points (binary map + antonioGaussian) gives the CSV CC."""
    for k in (0, 5):
        sample, i = salicon["samples"][k], str(salicon["ids"][k])
        row = score_sample(salicon["maps"][k], sample, "mit", metrics=("AUC_Judd", "NSS", "CC"), judd_jitter=False)
        assert row["AUC_Judd"] == pytest.approx(salicon["ref"][(i, "AUC_Judd")], abs=1e-6)
        assert row["NSS"] == pytest.approx(salicon["ref"][(i, "NSS")], abs=1e-6)
        assert row["CC"] == pytest.approx(salicon["ref"][(i, "CC")], abs=1e-6)


def test_low_resolution_prediction_is_resized_to_the_stimulus(salicon: dict) -> None:
    sample = salicon["samples"][1]
    small = imresize_scale(salicon["maps"][1], 0.25)  # a 120 x 160 model output
    row = score_sample(small, sample, "mit", metrics=("AUC_Judd", "NSS"), judd_jitter=False)
    full = resize_prediction(small, sample.size, "bicubic_matlab")
    assert full.shape == (1, 480, 640)
    assert row["AUC_Judd"] == pytest.approx(float(auc_judd(full, [sample.fixations], "mit", jitter=False)[0]))
    assert row["NSS"] == pytest.approx(float(nss(full, [sample.fixations], "mit")[0]))
    # fixations are never rescaled as binary maps: they are used at native resolution
    assert row["NSS"] != pytest.approx(float(nss(small, [sample.fixations / 4], "mit")[0]), abs=1e-3)


def test_dataset_density_is_preferred_and_checked(salicon: dict) -> None:
    s = salicon["samples"][2]
    dens = gaussian_filter(np.random.default_rng(0).random((480, 640)), 10)
    with_density = SaliencySample(name=s.name, image=s.image, fixations=s.fixations, density=dens)
    gt, source = build_ground_truth(with_density, preset_variant("mit", "m"))
    assert source == "dataset density" and np.allclose(gt.numpy(), dens)
    gt2, source2 = build_ground_truth(with_density, preset_variant("mit", "m"), "fixations")
    assert "antonioGaussian" in source2 and not np.allclose(gt2.numpy(), dens)
    row = score_sample(salicon["maps"][2], with_density, "mit", metrics=("CC",))
    assert row["CC"] == pytest.approx(float(cc(salicon["maps"][2], dens)[0]))
    bad = SaliencySample(name="bad", image=s.image, fixations=s.fixations, density=np.ones((10, 10)))
    with pytest.raises(ValueError, match="density of 'bad' has shape"):
        score_sample(salicon["maps"][2], bad, "mit", metrics=("CC",))


def test_center_bias_and_information_gain(salicon: dict) -> None:
    fix = [s.fixations for s in salicon["samples"]]
    sizes = [s.size for s in salicon["samples"]]
    # fit on nine images, score the tenth (never fit on the scored image)
    cb = center_bias_from_fixations(fix[1:], sizes[1:], (480, 640))
    d = cb.density
    assert d.shape == (480, 640) and float(d.min()) > 0 and float(d.sum()) == pytest.approx(1.0)
    assert "9 training images" in cb.source
    ig_cb = float(info_gain(salicon["maps"][0], [fix[0]], cb, "mit")[0])
    ig_uniform = float(info_gain(salicon["maps"][0], [fix[0]], "uniform", "mit")[0])
    assert math.isfinite(ig_cb) and math.isfinite(ig_uniform) and ig_cb != ig_uniform
    # IG against itself is zero; uniform_baseline equals the "uniform" shortcut
    assert float(info_gain(d.numpy(), [fix[0]], cb, "pysaliency")[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(info_gain(salicon["maps"][0], [fix[0]], uniform_baseline((480, 640)), "pysaliency")[0]) == \
        pytest.approx(float(info_gain(salicon["maps"][0], [fix[0]], "uniform", "pysaliency")[0]), abs=1e-12)
    # MIT InfoGain by hand: min-max, sum-normalise, mean of log2 differences at distinct fixated pixels
    s = salicon["maps"][0]
    p = (s - s.min()) / np.ptp(s)
    p /= p.sum()
    b = d.numpy()
    b = (b - b.min()) / np.ptp(b)
    b /= b.sum()
    pix = np.unique(np.floor(fix[0] + 0.5).astype(int), axis=0)
    eps = np.finfo(float).eps
    ref = np.mean(np.log2(eps + p[pix[:, 1], pix[:, 0]]) - np.log2(eps + b[pix[:, 1], pix[:, 0]]))
    assert ig_cb == pytest.approx(ref, abs=1e-9)


def test_center_bias_from_a_log_density_file(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    log_d = -((xx - 32) ** 2 + (yy - 32) ** 2) / (2 * 12.0 ** 2)
    np.save(tmp_path / "cb.npy", log_d)
    cb = load_center_bias(tmp_path / "cb.npy", (48, 40), log_density=True)
    d = cb.density.numpy()
    assert d.shape == (48, 40) and d.sum() == pytest.approx(1.0) and d.argmax() == np.argmax(d)
    r, c = np.unravel_index(d.argmax(), d.shape)
    assert abs(r - 24) <= 1 and abs(c - 20) <= 1
    assert "cb.npy" in cb.source and "log-density" in cb.source


def test_shuffled_negatives_per_preset(salicon: dict) -> None:
    fix = [s.fixations for s in salicon["samples"]]
    sizes = [s.size for s in salicon["samples"]]
    mit_other, desc = other_image_fixations(fix, sizes, 0, preset="mit", seed=0)
    assert "10 other images" not in desc and "9 other images" in desc  # only 9 others exist
    pys_other, _ = other_image_fixations(fix, sizes, 0, preset="pysaliency")
    assert len(pys_other) == sum(len(f) for f in fix[1:])
    sal_other, _ = other_image_fixations(fix, sizes, 0, preset="salicon")
    assert isinstance(sal_other, torch.Tensor) and float(sal_other.max()) <= 9
    small, _ = other_image_fixations(fix, sizes, 0, (240, 320), preset="mit", n_other=3, seed=1)
    assert small[:, 0].max() < 320 and small[:, 1].max() < 240
    for preset, other in (("mit", mit_other), ("pysaliency", pys_other), ("salicon", sal_other)):
        row = score_sample(salicon["maps"][0], salicon["samples"][0], preset, metrics=("sAUC",),
                           other_fixations=other)
        assert 0.5 < row["sAUC"] < 0.8, preset


def test_evaluator_rows_summary_and_files(salicon: dict, tmp_path: Path) -> None:
    fix = [s.fixations for s in salicon["samples"]]
    sizes = [s.size for s in salicon["samples"]]
    cb = center_bias_from_fixations(fix[3:], sizes[3:], (480, 640))
    ev = SaliencyEvaluator(preset="mit", baseline=cb, dataset="SALICON examples", split="first3")
    for k in range(3):
        other, _ = other_image_fixations(fix, sizes, k, preset="mit")
        row = ev.add(imresize_scale(salicon["maps"][k], 0.5), salicon["samples"][k], other_fixations=other)
        assert set(row) >= {"name", "AUC_Judd", "AUC_Borji", "sAUC", "NSS", "CC", "KLD", "SIM", "IG"}
    summary = ev.summary()
    assert summary["n_images"] == 3
    proto = summary["protocol"]
    assert proto["preset"] == "mit" and proto["interpolation"] == "bicubic_matlab"
    assert "antonioGaussian" in proto["ground_truth"][0]
    assert "centre bias from 7 training images" in proto["baseline"]
    assert "binary" in proto["sauc_negatives"] and proto["averaging"].startswith("mean over images")
    assert summary["metrics"]["NSS"]["n"] == 3
    assert summary["metrics"]["NSS"]["mean"] == pytest.approx(np.mean([r["NSS"] for r in ev.rows]))
    csv_path, json_path = ev.write(tmp_path / "out")
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["name"] for r in rows] == [str(i) for i in salicon["ids"][:3]]
    assert float(rows[0]["NSS"]) == ev.rows[0]["NSS"]
    assert json.loads(json_path.read_text())["protocol"]["dataset"] == "SALICON examples"
    assert not list((tmp_path / "out").glob(".*tmp"))  # atomic writes leave no temporaries


# ---------------------------------------------------------------------------------------
# SALICON preset against the SALICON API definitions (ported here from its formulas)


def _salicon_nss(sal: np.ndarray, pts: np.ndarray) -> float:
    s = sal - sal.mean()
    if s.max() > 0:
        s = s / s.std()
    return float(np.mean([s[y - 1, x - 1] for y, x in pts]))


def _salicon_sauc(sal: np.ndarray, pts: np.ndarray, shuf: np.ndarray, step: float = 0.01) -> float:
    s = sal - sal.min()
    if s.max() > 0:
        s = s / s.max()
    sth = np.array([s[y - 1, x - 1] for y, x in pts])
    others = shuf.copy()
    for y, x in pts:
        others[y - 1, x - 1] = 0
    ind = np.nonzero(others)
    nfix, randfix = shuf[ind], s[ind]
    thr = np.arange(0, np.max(np.concatenate([sth, randfix])), step)[::-1]
    tp = np.r_[0, [np.sum(sth >= t) / len(sth) for t in thr], 1]
    fp = np.r_[0, [np.sum(nfix[randfix >= t]) / nfix.sum() for t in thr], 1]
    return float(np.trapezoid(tp, fp))


def test_salicon_preset_matches_the_api_definitions(salicon: dict) -> None:
    ids, maps = salicon["ids"], salicon["maps"]
    fix = [s.fixations for s in salicon["samples"]]
    binary = {}
    for i in ids:
        m = np.zeros((480, 640))
        for r, c in salicon["points"][i]:
            m[r - 1, c - 1] = 1
        binary[i] = m
    shuf = sum(binary.values())  # compute_score: the binary maps of all evaluated images, summed
    for k in (0, 4, 9):
        i = ids[k]
        distinct = np.unique(np.array(salicon["points"][i]), axis=0)  # the deduplication the API intended
        assert float(nss(maps[k], [fix[k]], "salicon")[0]) == pytest.approx(_salicon_nss(maps[k], distinct), abs=1e-9)
        other, _ = other_image_fixations(fix, [(480, 640)] * len(ids), k, preset="salicon")
        assert float(auc_shuffled(maps[k], [fix[k]], other, "salicon")[0]) == pytest.approx(
            _salicon_sauc(maps[k], distinct, shuf), abs=1e-9)
        gt, _ = build_ground_truth(salicon["samples"][k], preset_variant("salicon", "s"))
        g = gaussian_filter(binary[i], 19)
        g = (g - g.min()) / (g.max() - g.min())
        np.testing.assert_allclose(gt.numpy(), g, atol=1e-12)
        s = maps[k] - maps[k].mean()
        assert float(cc(maps[k], gt, "salicon")[0]) == pytest.approx(
            np.corrcoef(s.ravel() / s.std(), (g - g.mean()).ravel() / g.std())[0, 1], abs=1e-9)


def test_salicon_demo_values(salicon: dict) -> None:
    """metrics.md 13.2: the API demo printed NSS 1.078 and CC 0.621 on these maps.

    CC does not depend on the fixation filter; NSS 1.078 is what every point (duplicates kept)
    gives, so the recorded demo did not deduplicate. The fixed preset collapses duplicates
    (the filter's intent) and gives NSS 1.000, the MIT value on distinct pixels.
    """
    maps, samples = salicon["maps"], salicon["samples"]
    ccs = [score_sample(maps[k], samples[k], "salicon", metrics=("CC",))["CC"] for k in range(10)]
    assert np.mean(ccs) == pytest.approx(0.621, abs=1e-3)
    fix = [s.fixations for s in samples]
    keep = preset_variant("salicon", "salicon_all_points", duplicates="keep")
    assert float(nss(maps, fix, keep).mean()) == pytest.approx(1.078, abs=1e-3)
    assert float(nss(maps, fix, "salicon").mean()) == pytest.approx(1.000, abs=1e-3)
