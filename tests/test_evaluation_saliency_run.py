"""Scoring a trained run's model at native resolution (``kdnas evaluate RUN --task saliency --data ...``)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from kdnas import api
from kdnas.cli.app import app
from kdnas.data.saliency import FolderSaliencyDataset
from kdnas.evaluation.saliency import evaluate_saliency
from kdnas.utils.errors import ConfigError

BUILTIN = {"n_images": 16, "size": [48, 64], "seed": 0}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A static SalNAS subnet trained for one epoch on a tiny built-in set (a few seconds on the CPU)."""
    root = tmp_path_factory.mktemp("sal_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KDNAS_CACHE", str(root / "cache"))  # the built-in set is generated here, not in ~/.cache
        api.train("salnas_tiny", out_dir=root / "run", progress=False, overrides={
            "model.name": "salnas", "model.subnet": "min", "distill.kind": "none", "train.epochs": 1,
            "train.batch_size": 8, "train.tensorboard": False, "data.builtin": BUILTIN,
            "data.input_size": [32, 64], "data.target_size": [24, 32], "eval.blur_sigma": 1.0})
        from kdnas.data.synthetic.saliency import builtin_saliency_root

        data = builtin_saliency_root(**BUILTIN)
        yield {"root": root, "run": root / "run", "data": data}


def _manual_maps(run, data, names, out):
    """The model's maps written as .npy at its output size, by the preprocessing of ``kdnas predict``."""
    model, task = api.load_model(run)
    meta = task.metadata()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # the run's normalisation: imagenet
    assert meta["normalize"] == "imagenet" and meta["target_size"] == [24, 32] and meta["blur_sigma"] == 1.0
    ds = FolderSaliencyDataset(data)
    out.mkdir()
    with torch.no_grad():
        for name in names:
            x = torch.tensor(ds.load(name).image).permute(2, 0, 1).float()[None] / 255
            x = F.interpolate(x, size=(32, 64), mode="bilinear", align_corners=False, antialias=True)
            x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
            pred = model(x, output_size=(24, 32))
            # the run's post-blur: separable Gaussian sigma 1 (kernel 2*ceil(3 sigma)+1 = 7), reflect borders
            k = torch.exp(-torch.arange(-3.0, 4.0) ** 2 / 2)
            k = k / k.sum()
            p = F.pad(pred[:, None], (3, 3, 3, 3), mode="reflect")
            p = F.conv2d(F.conv2d(p, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))[0, 0]
            np.save(out / f"{name}.npy", p.double().numpy())


def test_run_scored_on_its_own_test_split(tiny_run, tmp_path):
    summary = evaluate_saliency(data=None, format="folder", out=tmp_path / "out", run=tiny_run["run"],
                                baseline="train")
    test_names = (tiny_run["data"] / "splits" / "test.txt").read_text().split()
    train_names = (tiny_run["data"] / "splits" / "train.txt").read_text().split()
    assert summary["n_images"] == len(test_names) == 3
    assert summary["data"]["source"] == "run config (built-in synthetic set)" and summary["data"]["split"] == "test"
    src = summary["predictions"]
    assert src["source"] == "run" and src["output_size"] == [24, 32] and src["post_blur"].startswith("gaussian sigma 1")
    pr = summary["protocol"]
    assert pr["prediction_sizes"] == {"24x32": 3} and pr["stimulus_sizes"] == {"48x64": 3}
    assert pr["ground_truth"] == ["dataset density"] and pr["blur"]["prediction"] == src["post_blur"]
    assert pr["baseline"]["split"] == "train" and pr["baseline"]["n_images"] == len(train_names)
    assert pr["baseline"]["overlap_with_evaluated"] == 0
    assert set(summary["metrics"]) == {"AUC_Judd", "AUC_Borji", "sAUC", "NSS", "CC", "KLD", "SIM", "IG"}
    assert all(m["n"] == 3 and m["n_nan"] == 0 for m in summary["metrics"].values())


def test_run_equals_its_maps_scored_as_predictions(tiny_run, tmp_path):
    """The model path and the folder path resize and score the same maps identically."""
    names = (tiny_run["data"] / "splits" / "test.txt").read_text().split()
    _manual_maps(tiny_run["run"], tiny_run["data"], names, tmp_path / "maps")
    common = dict(data=tiny_run["data"], format="folder", split="test", baseline="uniform")
    by_run = evaluate_saliency(out=tmp_path / "a", run=tiny_run["run"], **common)
    by_maps = evaluate_saliency(out=tmp_path / "b", predictions=tmp_path / "maps", **common)
    with open(tmp_path / "a" / "per_image.csv") as fa, open(tmp_path / "b" / "per_image.csv") as fb:
        rows_a, rows_b = list(csv.DictReader(fa)), list(csv.DictReader(fb))
    assert [r["name"] for r in rows_a] == names
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for key, value in ra.items():
            if key == "name":
                assert value == rb[key]
            else:
                assert float(value) == pytest.approx(float(rb[key]), abs=1e-6), key
    assert by_run["protocol"]["interpolation"] == by_maps["protocol"]["interpolation"] == "bicubic_matlab"


def test_cli_scores_a_run_against_data(tiny_run, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["evaluate", str(tiny_run["run"]), "--task", "saliency", "--data",
                                      str(tiny_run["data"]), "--format", "folder", "--split", "val",
                                      "--preset", "pysaliency", "--metrics", "NSS,CC,AUC", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "pysaliency" in result.output and "bilinear_zoom" in result.output
    summary = json.loads((out / "summary.json").read_text())
    val_names = (tiny_run["data"] / "splits" / "val.txt").read_text().split()
    assert summary["n_images"] == len(val_names) == 2 and summary["data"]["split"] == "val" and summary["predictions"]["subnet"] == "best checkpoint"
    # a static run has no subnets to choose from
    with pytest.raises(ConfigError, match="holds a static model"):
        evaluate_saliency(data=tiny_run["data"], format="folder", out=tmp_path / "x", run=tiny_run["run"],
                          subnet="max")
