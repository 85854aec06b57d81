"""The built-in sets are learnable: small models trained briefly beat chance clearly."""

from __future__ import annotations

import pytest

from kdnas import api


@pytest.mark.slow
def test_cxr_small_cnn_beats_chance(tmp_path, monkeypatch):
    monkeypatch.setenv("KDNAS_CACHE", str(tmp_path / "cache"))
    summary = api.train("cxr_tiny_teacher", out_dir=tmp_path / "run", progress=False, overrides={
        "model.name": "resnet10t", "train.epochs": 5, "train.batch_size": 32,
        "train.optimizer": {"name": "adamw", "lr": 0.002},
        "data.builtin": {"n_images": 400, "size": 64, "seed": 0}, "train.tensorboard": False})
    metrics = summary["models"]["model"]["metrics"]
    assert metrics["labels_excluded"] == 0
    assert metrics["mean_auroc"] > 0.70, metrics["per_label_auroc"]


@pytest.mark.slow
def test_saliency_supernet_beats_chance(tmp_path, monkeypatch):
    monkeypatch.setenv("KDNAS_CACHE", str(tmp_path / "cache"))
    summary = api.train("salnas_tiny", out_dir=tmp_path / "run", progress=False, overrides={
        "train.epochs": 3, "data.builtin": {"n_images": 96, "size": [64, 96], "seed": 0},
        "train.tensorboard": False})
    for which in ("max", "min"):
        m = summary["models"][which]["metrics"]
        assert m["AUC_Judd"] > 0.65 and m["CC"] > 0.3 and m["NSS"] > 0.8, m
