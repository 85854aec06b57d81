"""``kdnas predict`` on the user's own images: saliency maps/overlays and CXR probabilities."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from kdnas.cli.app import app


def test_predict_saliency_on_real_images(tiny_saliency_run, shared_data, tmp_path):
    folder = shared_data / "saliency" / "salicon" / "images" / "train2014examples"
    one = shared_data / "saliency" / "mit1003" / "ALLSTIMULI" / "i1042209003.jpg"  # portrait, 768 x 1024
    result = CliRunner().invoke(app, ["predict", str(tiny_saliency_run), str(folder), str(one), "--subnet", "min",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    preds = json.loads((tmp_path / "predictions.json").read_text())
    assert len(preds) == 11
    smap = np.load(tmp_path / "i1042209003_saliency.npy")
    assert smap.shape == (1024, 768) and np.isfinite(smap).all() and 0 <= smap.min() <= smap.max() <= 1
    assert Image.open(tmp_path / "i1042209003_overlay.png").size == (768, 1024)
    assert Image.open(tmp_path / "COCO_train2014_000000123067_saliency.png").size == (640, 480)
    assert not list(tmp_path.glob(".*tmp*"))  # nothing half-written left behind


def test_predict_cxr_probabilities_on_png_and_dicom(tiny_cxr_run, shared_data, tmp_path):
    inputs = [shared_data / "cxr" / "nih" / "images-512", shared_data / "cxr" / "dicom"]
    result = CliRunner().invoke(app, ["predict", str(tiny_cxr_run), *map(str, inputs), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "predictions.json").read_text())
    assert out["labels"] == ["Atelectasis", "Cardiomegaly", "Effusion", "Mass", "Nodule", "Pneumothorax"]
    assert len(out["predictions"]) == 3
    for row in out["predictions"]:
        assert all(0 < row[label] < 1 for label in out["labels"])
    assert (tmp_path / "predictions.csv").read_text().startswith("image,Atelectasis")


def test_predict_reports_bad_inputs(tiny_cxr_run, tmp_path):
    result = CliRunner().invoke(app, ["predict", str(tiny_cxr_run), str(tmp_path / "nope.png")])
    assert result.exit_code == 2 and "nope.png" in result.output and "input not found" in result.output
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    result = CliRunner().invoke(app, ["predict", str(tiny_cxr_run), str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "broken.png" in result.output
