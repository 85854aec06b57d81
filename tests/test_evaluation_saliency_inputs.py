"""Saliency evaluation on small hand-made folder datasets: values, baselines, determinism and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from PIL import Image
from typer.testing import CliRunner

from kdnas.cli.app import app
from kdnas.data.saliency import write_folder_sample, write_split
from kdnas.evaluation.saliency import evaluate_saliency, format_saliency_table, read_prediction_map
from kdnas.utils.errors import ConfigError, DataError

EPS = np.finfo(np.float64).eps  # MATLAB eps, used by InfoGain.m
SIZE = (24, 32)  # (H, W)


def _make_set(root: Path, n: int = 4, *, maps: bool = False, seed: int = 0) -> dict[str, dict]:
    """``n`` stimuli with distinct integer fixations and, per stimulus, a float prediction at native size."""
    rng = np.random.default_rng(seed)
    h, w = SIZE
    out = {}
    for i in range(n):
        name = f"im{i}"
        flat = rng.choice(h * w, size=8 + i, replace=False)
        fix = np.stack([flat % w, flat // w], axis=1).astype(np.float64)  # 0-based (x, y)
        density = rng.random(SIZE) + 0.1 if maps else None
        write_folder_sample(root / "data", name, rng.integers(0, 255, (h, w, 3), dtype=np.uint8), fix, density)
        pred = rng.random(SIZE) + 0.05
        (root / "pred").mkdir(parents=True, exist_ok=True)
        np.save(root / "pred" / f"{name}.npy", pred)
        out[name] = {"fix": fix, "pred": pred}
    return out


def _mit_nss(pred: np.ndarray, fix: np.ndarray) -> float:
    z = (pred - pred.mean()) / pred.std(ddof=1)
    return float(z[fix[:, 1].astype(int), fix[:, 0].astype(int)].mean())


def _mit_ig(pred: np.ndarray, fix: np.ndarray, base: np.ndarray | None) -> float:
    """InfoGain.m: min-max and sum-normalise both maps; a uniform baseline is used as is."""
    def norm(m):
        m = (m - m.min()) / (m.max() - m.min())
        return m / m.sum()

    p = norm(pred)
    b = np.full(pred.shape, 1.0 / pred.size) if base is None else norm(base)
    r, c = fix[:, 1].astype(int), fix[:, 0].astype(int)
    return float(np.mean(np.log2(EPS + p[r, c]) - np.log2(EPS + b[r, c])))


def test_values_against_numpy_and_uniform_baseline(tmp_path):
    truth = _make_set(tmp_path)
    summary = evaluate_saliency(data=tmp_path / "data", format="folder", out=tmp_path / "out",
                                predictions=tmp_path / "pred", metrics=["NSS", "IG"], baseline="uniform")
    rows = (tmp_path / "out" / "per_image.csv").read_text().splitlines()
    assert rows[0] == "name,width,height,n_fixations,NSS,IG"
    for line in rows[1:]:
        name, w, h, n, nss, ig = line.split(",")
        t = truth[name]
        assert (int(w), int(h), int(n)) == (32, 24, len(t["fix"]))
        assert float(nss) == pytest.approx(_mit_nss(t["pred"], t["fix"]), abs=1e-10)
        assert float(ig) == pytest.approx(_mit_ig(t["pred"], t["fix"], None), abs=1e-10)
    assert summary["protocol"]["baseline"]["choice"] == "uniform"
    assert summary["metrics"]["IG"]["mean"] == pytest.approx(
        np.mean([_mit_ig(t["pred"], t["fix"], None) for t in truth.values()]), abs=1e-10)


def test_npy_baseline_and_train_baseline(tmp_path):
    truth = _make_set(tmp_path)
    yy, xx = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    bias = np.exp(-((xx - 16) ** 2 + (yy - 12) ** 2) / 50.0)
    np.save(tmp_path / "bias.npy", bias)
    summary = evaluate_saliency(data=tmp_path / "data", format="folder", out=tmp_path / "o1",
                                predictions=tmp_path / "pred", metrics=["IG"], baseline=str(tmp_path / "bias.npy"))
    for line in (tmp_path / "o1" / "per_image.csv").read_text().splitlines()[1:]:
        name, *_, ig = line.split(",")
        assert float(ig) == pytest.approx(_mit_ig(truth[name]["pred"], truth[name]["fix"], bias), abs=1e-10)
    assert summary["protocol"]["baseline"]["file"] == str(tmp_path / "bias.npy")

    # 'train': centre bias of the training split; scoring the test split, so no overlap
    write_split(tmp_path / "data", "train", ["im0", "im1"])
    write_split(tmp_path / "data", "test", ["im2", "im3"])
    summary = evaluate_saliency(data=tmp_path / "data", format="folder", out=tmp_path / "o2", split="test",
                                predictions=tmp_path / "pred", baseline="train")
    base = summary["protocol"]["baseline"]
    assert base["choice"] == "train" and base["split"] == "train" and base["n_images"] == 2
    assert base["n_fixations"] == len(truth["im0"]["fix"]) + len(truth["im1"]["fix"])
    assert base["overlap_with_evaluated"] == 0 and len(base["per_size"]) == 1
    assert summary["n_images"] == 2 and "IG" in summary["metrics"]
    # the unmatched predictions (im0, im1 are not in the test split) are reported, not fatal
    assert any("2 prediction files match no stimulus" in w for w in summary["warnings"])
    # scoring the training images themselves is flagged
    summary = evaluate_saliency(data=tmp_path / "data", format="folder", out=tmp_path / "o3",
                                predictions=tmp_path / "pred", baseline="train", metrics=["IG"])
    assert summary["protocol"]["baseline"]["overlap_with_evaluated"] == 2
    assert any("2 evaluated images are in the training split" in w for w in summary["warnings"])


def test_default_metrics_deterministic_json_and_seed(tmp_path):
    _make_set(tmp_path, maps=True)
    kw = dict(data=tmp_path / "data", format="folder", predictions=tmp_path / "pred", preset="mit")
    first = evaluate_saliency(out=tmp_path / "a", **kw)
    evaluate_saliency(out=tmp_path / "b", **kw)
    for name in ("summary.json", "per_image.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert list(first["metrics"]) == ["AUC_Judd", "AUC_Borji", "sAUC", "NSS", "CC", "KLD", "SIM"]
    assert any("IG not scored" in w for w in first["warnings"])
    assert first["protocol"]["ground_truth"] == ["dataset density"]
    neg = first["protocol"]["sauc_negatives"]
    assert neg["other_images"] == "all" and neg["selection"] == "all 3 other evaluated images"
    json.loads((tmp_path / "a" / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    other = evaluate_saliency(out=tmp_path / "c", seed=5, **kw)
    assert other["metrics"]["NSS"] == first["metrics"]["NSS"] and other["metrics"]["CC"] == first["metrics"]["CC"]
    assert other["metrics"]["AUC_Borji"]["mean"] != first["metrics"]["AUC_Borji"]["mean"]
    assert other["protocol"]["seed"] == 5


def test_prediction_formats_resizing_and_warnings(tmp_path):
    truth = _make_set(tmp_path, n=3)
    pred = tmp_path / "pred"
    # 8-bit PNG at half size, a 16-bit PNG at native size, an unmatched extra file
    (pred / "im0.npy").unlink()
    Image.fromarray((truth["im0"]["pred"][::2, ::2] / 1.1 * 255).astype(np.uint8)).save(pred / "im0.png")
    (pred / "im1.npy").unlink()
    Image.fromarray((truth["im1"]["pred"] / 1.1 * 65535).astype(np.uint16)).save(pred / "im1.png")
    np.save(pred / "stray.npy", np.ones(SIZE))
    (pred / "im2.npy").unlink()
    np.save(pred / "im2.npy", truth["im2"]["pred"][:, :16])  # another aspect ratio: stretched
    summary = evaluate_saliency(data=tmp_path / "data", format="folder", out=tmp_path / "out", predictions=pred,
                                metrics=["NSS"])
    assert summary["protocol"]["prediction_sizes"] == {"12x16": 1, "24x16": 1, "24x32": 1}
    assert summary["predictions"]["file_types"] == {".npy": 1, ".png": 2}
    assert any("stray.npy" in w for w in summary["warnings"])
    assert any("1 predictions have another aspect ratio" in w and "im2: 24x16" in w for w in summary["warnings"])
    # the 16-bit map is read at full precision
    assert read_prediction_map(pred / "im1.png", "im1").max() > 255
    table = format_saliency_table(summary)
    assert "warning: 1 prediction files match no stimulus" in table


def test_missing_prediction_nan_and_colour_maps(tmp_path):
    _make_set(tmp_path)
    pred = tmp_path / "pred"
    kw = dict(data=tmp_path / "data", format="folder", out=tmp_path / "out", predictions=pred)
    (pred / "im2.npy").unlink()
    with pytest.raises(DataError, match=r"pred/im2\.png: no prediction for 1 of 4 stimuli \(im2\)"):
        evaluate_saliency(**kw)
    bad = np.ones(SIZE)
    bad[3, 5] = np.nan
    np.save(pred / "im2.npy", bad)
    with pytest.raises(DataError, match=r"im2\.npy: prediction for stimulus 'im2' holds 1 non-finite values "
                                        r"\(first: NaN at row 3, column 5\)"):
        evaluate_saliency(**kw)
    (pred / "im2.npy").unlink()
    colour = np.zeros((*SIZE, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(pred / "im2.png")
    with pytest.raises(DataError, match=r"im2\.png: prediction is a colour image"):
        evaluate_saliency(**kw)
    (pred / "im2.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"im2\.png: unreadable or truncated prediction image"):
        evaluate_saliency(**kw)
    with pytest.raises(DataError, match=r"nowhere: predictions folder not found"):
        evaluate_saliency(**{**kw, "predictions": tmp_path / "nowhere"})


def test_dataset_errors_surface_with_the_file(tmp_path):
    _make_set(tmp_path, maps=True)
    kw = dict(data=tmp_path / "data", format="folder", out=tmp_path / "out", predictions=tmp_path / "pred")
    # a dataset map of the wrong size
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "data" / "maps" / "im1.png")
    with pytest.raises(DataError, match=r"maps/im1\.png: map is 10x10 \(HxW\) but the stimulus im1\.png is 24x32"):
        evaluate_saliency(**kw)
    # a stimulus whose map is missing while maps/ exists
    (tmp_path / "data" / "maps" / "im1.png").unlink()
    with pytest.raises(DataError, match=r"maps/im1\.png: missing map for stimulus im1\.png"):
        evaluate_saliency(**kw)


def test_mat_without_the_expected_variable(tmp_path):
    (tmp_path / "osie" / "eye").mkdir(parents=True)
    (tmp_path / "osie" / "stimuli").mkdir()
    sio.savemat(tmp_path / "osie" / "eye" / "fixations.mat", {"fix": np.zeros(3)})
    (tmp_path / "pred").mkdir()
    with pytest.raises(DataError, match=r"fixations\.mat: missing variable 'fixations' \(variables present: \['fix'\]\)"):
        evaluate_saliency(data=tmp_path / "osie", format="osie", out=tmp_path / "out", predictions=tmp_path / "pred")
    result = CliRunner().invoke(app, ["evaluate", "--task", "saliency", "--predictions", str(tmp_path / "pred"),
                                      "--data", str(tmp_path / "osie"), "--format", "osie", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "missing variable 'fixations'" in result.output


def test_configuration_errors(tmp_path):
    _make_set(tmp_path, n=2)
    kw = dict(data=tmp_path / "data", format="folder", out=tmp_path / "out", predictions=tmp_path / "pred")
    with pytest.raises(ConfigError, match=r"unknown saliency format 'foldr'; valid formats: \['cat2000'"):
        evaluate_saliency(**{**kw, "format": "foldr"})
    with pytest.raises(ConfigError, match="exactly one of predictions"):
        evaluate_saliency(**{**kw, "predictions": None})
    with pytest.raises(ConfigError, match="both were given"):
        evaluate_saliency(**kw, run=tmp_path)
    with pytest.raises(ConfigError, match=r"unknown saliency metric 'AUCJ'; choose from \['AUC_Judd'"):
        evaluate_saliency(**kw, metrics=["AUCJ"])
    with pytest.raises(ConfigError, match="metric IG needs a baseline"):
        evaluate_saliency(**kw, metrics=["ig"])
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['jitter'\].*evaluation options: \['judd_jitter'"):
        evaluate_saliency(**kw, options={"jitter": False})
    with pytest.raises(ConfigError, match="judd_jitter must be true or false"):
        evaluate_saliency(**kw, options={"judd_jitter": "no"})
    with pytest.raises(ConfigError, match=r"unknown metric preset 'matlab'; valid presets"):
        evaluate_saliency(**kw, preset="matlab")
    with pytest.raises(DataError, match=r"missing\.npy: file not found"):
        evaluate_saliency(**kw, baseline=str(tmp_path / "missing.npy"))
    with pytest.raises(DataError, match=r"splits/train\.txt: baseline 'train' needs the dataset's training split"):
        evaluate_saliency(**kw, baseline="train")
    with pytest.raises(ConfigError, match="a dataset is required"):
        evaluate_saliency(**{**kw, "data": None})
    # one image: sAUC has no other images to draw negatives from, so it is left out with a warning
    summary = evaluate_saliency(**kw, limit=1, metrics=["NSS", "sAUC"])
    assert list(summary["metrics"]) == ["NSS"] and any("sAUC not scored" in w for w in summary["warnings"])
