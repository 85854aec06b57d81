"""``kdnas explain`` end to end on a tiny CXR run trained in the test (about a second of training)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from kdnas import api
from kdnas.cli.explain_cmd import explain
from kdnas.data.cxr.image_io import read_xray
from kdnas.explain import explain_batch
from kdnas.explain.evaluate import to_frame

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(explain)
    return app


TINY = {"data.builtin": {"n_images": 60, "size": 64, "seed": 0}, "train.epochs": 1, "train.tensorboard": False}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("explain_cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KDNAS_CACHE", str(tmp / "cache"))  # the built-in set is generated here, not in ~/.cache
        yield tmp


@pytest.fixture(scope="module")
def run(cache) -> Path:
    """A ResNet-10t CXR run (the shipped tiny teacher config, one epoch on 60 images)."""
    api.train("cxr_tiny_teacher", out_dir=cache / "run", progress=False, overrides=TINY)
    return cache / "run"


@pytest.fixture(scope="module")
def vit_run(cache) -> Path:
    """A two-block timm ViT-Tiny CXR run at 64 px (4 x 4 patch grid)."""
    api.train("cxr_tiny_teacher", out_dir=cache / "vit", progress=False,
              overrides={**TINY, "model.name": "vit_tiny_patch16_224", "model.kwargs": {"img_size": 64, "depth": 2}})
    return cache / "vit"


@pytest.fixture(scope="module")
def images(run, tmp_path_factory) -> Path:
    model, task = api.load_model(run)
    test = task.datasets(calib_images=1)["test"]
    folder = tmp_path_factory.mktemp("inputs")
    for i in range(2):
        shutil.copy(test.base.records[i].image_path, folder)
    return folder


def test_explain_images_writes_overlays_and_raw_maps(run, images, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(_app(), [str(run), str(images), "--labels", "Mass,Effusion", "--out", str(out)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "explanations.json").read_text())
    assert manifest["protocol"]["method"] == "gradcam" and manifest["protocol"]["target_layer"] == "layer2"
    model, task = api.load_model(run)
    paths = sorted(images.iterdir())
    frames = torch.stack([to_frame(read_xray(p), task.input_size) for p in paths])
    ref = explain_batch(model, frames, labels=["Mass", "Effusion"], label_names=task.label_names)
    for b, (entry, path) in enumerate(zip(manifest["images"], paths, strict=True)):
        assert entry["labels"] == ["Mass", "Effusion"]
        maps = np.load(out / entry["maps"])
        assert maps.shape == (2, 64, 64) and maps.dtype == np.float32 and 0 <= maps.min() and maps.max() <= 1
        np.testing.assert_allclose(maps, ref.maps[b], atol=1e-6)  # the files hold what the API returns
        mass = task.label_names.index("Mass")
        assert entry["probabilities"]["Mass"] == pytest.approx(1 / (1 + np.exp(-ref.logits[b, mass])), rel=1e-5)
        with Image.open(out / entry["overlays"]["Mass"]) as im:
            assert im.mode == "RGB" and im.size == Image.open(path).size  # native size
    assert {p.name for p in out.iterdir()} >= {f"{p.stem}_{lab}.png" for p in paths for lab in ("Mass", "Effusion")}


def test_explain_evaluate_with_a_teacher_writes_the_table(run, tmp_path):
    out = tmp_path / "scores"
    res = runner.invoke(_app(), [str(run), "--evaluate", "--teacher", str(run), "--limit", "6", "--no-road",
                                 "--method", "layercam", "--threshold", "0.5max", "--threshold", "top10%",
                                 "--tolerance", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "mean (agreement)" in res.output and "mean (baseline:uniform)" in res.output
    scores = json.loads((out / "explain_scores.json").read_text())
    p = scores["protocol"]
    assert (p["method"], p["split"], p["thresholds"], p["tolerance_px"]) == ("layercam", "test", ["0.5max", "top10%"], 2)
    assert p["images_scored"] <= 6 and p["excluded_training_images"] == 0 and p["teacher"]["target_layer"] == "layer2"
    assert "road_combined" not in scores["mean"] and "confidence_drop" in scores["mean"]
    # the run is its own teacher: identical maps (LayerCAM keeps spatial structure even in this barely
    # trained model, so every pair has a defined rank correlation)
    assert all(r["spearman"] == pytest.approx(1.0) for r in scores["pairs"])
    assert scores["teacher"]["agreement"]["mean"]["spearman"] == pytest.approx(1.0)
    assert scores["teacher"]["agreement"]["mean"]["n_defined"] == p["n_pairs"]
    assert scores["teacher"]["mean"]["pointing_game"] == pytest.approx(scores["mean"]["pointing_game"])
    header = (out / "explain_scores.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["model", "class", "n_pairs", "pointing_game"] and "pointing_game_tol2px" in header
    pairs = (out / "explain_pairs.csv").read_text().splitlines()
    assert len(pairs) == 1 + p["n_pairs"]


def test_explain_evaluate_with_a_timm_vit_teacher(run, vit_run, tmp_path):
    out = tmp_path / "vit"
    res = runner.invoke(_app(), [str(run), "--evaluate", "--teacher", str(vit_run), "--limit", "4",
                                 "--no-faithfulness", "--method", "layercam", "--out", str(out)])
    assert res.exit_code == 0, res.output
    scores = json.loads((out / "explain_scores.json").read_text())
    teacher = scores["protocol"]["teacher"]
    assert teacher["target_layer"] == "blocks.1.norm1" and teacher["frame"] == [64, 64]
    rho = [r["spearman"] for r in scores["pairs"]]
    assert len(rho) == scores["protocol"]["n_pairs"] and all(-1 <= v <= 1 for v in rho)
    assert set(scores["teacher"]["per_class"]) == set(scores["per_class"])
    # the teacher's maps (4 x 4 token grid, reshaped and upsampled) are scored like the student's
    assert all(0 <= r["pointing_game"] <= 1 for r in scores["teacher"]["pairs"])
    assert "confidence_drop" not in scores["mean"]


def test_explain_errors_are_clear(run, images, tmp_path):
    app = _app()
    res = runner.invoke(app, [str(run), str(images), "--method", "gradcam3"])
    assert res.exit_code == 2 and "valid: gradcam, gradcam++, xgradcam, layercam, hirescam, scorecam, eigencam" in res.output
    res = runner.invoke(app, [str(run), str(images), "--labels", "Hernia"])
    assert res.exit_code == 2 and "'Hernia' not in the run's labels: Atelectasis, Cardiomegaly" in res.output
    res = runner.invoke(app, [str(run)])
    assert res.exit_code == 2 and "nothing to do" in res.output
    res = runner.invoke(app, [str(run), "--evaluate", "--split", "calib"])
    assert res.exit_code == 2 and "split 'calib' is not configured" in res.output
    sal = tmp_path / "sal_run"
    sal.mkdir()
    shutil.copy(Path(api.CONFIGS_DIR) / "salnas_tiny.yaml", sal / "config.yaml")
    res = runner.invoke(app, [str(sal), str(images)])
    assert res.exit_code == 2 and "is a 'saliency' run; explanations are for chest X-ray" in res.output
    res = runner.invoke(app, [str(tmp_path / "missing"), str(images)])
    assert res.exit_code == 2 and "not a kdnas run directory" in res.output
