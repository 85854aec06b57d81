"""Explanations of models that learned something: a small CNN trained for a few seconds on the
built-in synthetic CXR set points inside the findings' boxes far more often than the centre and
chance baselines; and scoring against real NIH boxes (the 64 px copies of ChestX-ray14 images)."""

from __future__ import annotations

import gzip
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdnas.data.cxr.nih import NIHDataset
from kdnas.data.synthetic.cxr import SYNTHETIC_FINDINGS, builtin_cxr_root
from kdnas.explain import ExplainedModel, evaluate_explanations


def _block(cin: int, cout: int, stride: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class SmallCXRNet(nn.Module):
    """Stride-8 CNN (8 x 8 Grad-CAM grid at 64 px), global average pooling, one logit per finding."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(_block(1, 16, 2), _block(16, 32, 2), _block(32, 32, 1), _block(32, 64, 2),
                                      _block(64, 64, 1))
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - 0.5) / 0.25).mean((2, 3)))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[NIHDataset, NIHDataset]:
    root = builtin_cxr_root(cache_dir=tmp_path_factory.mktemp("cache"), n_images=300, size=64, seed=0)
    labels = list(SYNTHETIC_FINDINGS)
    return (NIHDataset(root, "train", labels=labels, val_fraction=0.0),
            NIHDataset(root, "test", labels=labels, val_fraction=0.0))


def _train(train: NIHDataset, seed: int = 0, epochs: int = 15) -> nn.Module:
    """About 100 AdamW steps (one-cycle LR, positive-class weighting): a few CPU seconds."""
    x = torch.stack([torch.from_numpy(s.image)[None] for s in train])
    y = torch.stack([torch.from_numpy(s.labels) for s in train])
    torch.manual_seed(seed)
    model = SmallCXRNet(y.shape[1])
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    steps = epochs * math.ceil(len(x) / 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    prior = y.mean(0).clamp_min(0.02)
    gen = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread is as fast, and immune to a busy shared CPU
    try:
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=gen).split(32):
                loss = F.binary_cross_entropy_with_logits(model(x[idx]), y[idx], pos_weight=(1 - prior) / prior)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def test_a_briefly_trained_cnn_points_inside_the_boxes_far_above_baselines(synthetic):
    train, test = synthetic
    assert not {r.name for r in train.records} & {r.name for r in test.records}
    model = _train(train)
    res = evaluate_explanations(ExplainedModel(model, list(SYNTHETIC_FINDINGS), (64, 64)), iter(test),
                                method="gradcam", faithfulness=False)
    n_pairs = res["protocol"]["n_pairs"]
    assert n_pairs >= 40  # every positive synthetic finding has a box
    ours = res["mean"]["pointing_game"]
    chance = res["baselines"]["uniform"]["mean"]["pointing_game"]  # expected hit of a random point
    centre = res["baselines"]["centre"]["mean"]["pointing_game"]
    # measured: 0.26 vs chance 0.053 and centre 0.025 (this recipe with seeds 0-5: 0.20-0.27)
    assert ours >= 3 * max(chance, centre) and ours >= max(chance, centre) + 0.1
    hits = sum(r["pointing_game"] for r in res["pairs"])
    assert hits >= 3 * chance * n_pairs
    assert res["mean"]["energy_pointing"] > res["baselines"]["uniform"]["mean"]["energy_pointing"]
    per_chance = res["baselines"]["uniform"]["per_class"]
    above = [c for c, v in res["per_class"].items() if v["pointing_game"] >= 2 * per_chance[c]["pointing_game"]]
    assert len(above) >= 3, res["per_class"]  # not one easy class carrying the mean


def _pixels_in(start: float, length: float) -> int:
    """Pixel centres j + 0.5 inside [start, start + length]."""
    return math.floor(start + length - 0.5) - math.ceil(start - 0.5) + 1


def test_scoring_against_real_nih_boxes_at_64_px(shared_data, tmp_path):
    nih = shared_data / "cxr/nih"
    names = sorted(p.name for p in (nih / "images-64").glob("*.png"))
    with gzip.open(nih / "Data_Entry_2017_v2020.csv.gz", "rt") as fh:
        lines = fh.read().splitlines()
    (tmp_path / "Data_Entry_2017.csv").write_text(
        "\n".join([lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in names]) + "\n")
    shutil.copy(nih / "BBox_List_2017.csv.gz", tmp_path / "BBox_List_2017.csv.gz")
    data = NIHDataset(tmp_path, split=None, images_dir=nih / "images-64")
    torch.manual_seed(0)
    model = ExplainedModel(SmallCXRNet(len(data.label_names)).eval(), list(data.label_names), (64, 64))
    res = evaluate_explanations(model, iter(data), method="gradcam", road_percentiles=(50,))
    # the 4 boxed images, each box of a GT-positive finding (Infiltrate boxes are NIH's Infiltration)
    assert sorted((r["image"], r["label"]) for r in res["pairs"]) == [
        ("00000032_037.png", "Infiltration"), ("00000072_000.png", "Atelectasis"),
        ("00000181_061.png", "Atelectasis"), ("00000193_019.png", "Pneumonia")]
    with gzip.open(nih / "BBox_List_2017.csv.gz", "rt") as fh:
        raw = {ln.split(",")[0]: [float(v) for v in ln.split(",")[2:6]] for ln in fh.read().splitlines()[1:]}
    # the chance-level (uniform map) pointing game is the box's share of pixel centres, from the raw CSV
    def area(name: str) -> float:
        x, y, w, h = (v / 16 for v in raw[name])  # 1024 px frame -> 64 px
        return _pixels_in(x, w) * _pixels_in(y, h) / 64 ** 2

    uniform = res["baselines"]["uniform"]["per_class"]
    assert uniform["Infiltration"]["pointing_game"] == pytest.approx(area("00000032_037.png"))
    assert uniform["Pneumonia"]["pointing_game"] == pytest.approx(area("00000193_019.png"))
    assert uniform["Atelectasis"]["pointing_game"] == pytest.approx(
        np.mean([area("00000072_000.png"), area("00000181_061.png")]))
    assert all(r["n_boxes"] == 1 for r in res["pairs"])
    assert all(np.isfinite(r[m]) for r in res["pairs"] for m in res["metrics"]["faithfulness"])
