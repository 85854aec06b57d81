"""The built-in synthetic CXR set: determinism, NIH-format read-back, statistics, learnability, cache."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from kdnas.data.cxr.nih import NIHDataset
from kdnas.data.synthetic.cxr import (
    BBOX_HEADER,
    NIH_HEADER,
    SYNTHETIC_FINDINGS,
    builtin_cxr_root,
    generate_cxr_dataset,
)
from kdnas.utils.errors import ConfigError

LABELS = list(SYNTHETIC_FINDINGS)


@pytest.fixture(scope="module")
def default_set(tmp_path_factory) -> tuple[Path, float]:
    """The default 600 x 128 px set, timed."""
    root = tmp_path_factory.mktemp("syn") / "cxr"
    t0 = time.process_time()  # CPU time of this process: the budget is 'on one core'
    generate_cxr_dataset(root)
    return root, time.process_time() - t0


@pytest.fixture(scope="module")
def loaded(default_set) -> NIHDataset:
    return NIHDataset(default_set[0], split=None, labels=LABELS)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_default_set_is_fast_and_nih_shaped(default_set):
    root, cpu_s = default_set
    assert cpu_s < 15.0, cpu_s
    info = json.loads((root / "dataset.json").read_text())
    assert info["params"] == {"n_images": 600, "size": 128, "seed": 0, "findings": sorted(LABELS)}
    lines = (root / "Data_Entry_2017.csv").read_text().splitlines()
    assert lines[0] == NIH_HEADER and len(lines) == 601
    assert (root / "BBox_List_2017.csv").read_text().splitlines()[0] == BBOX_HEADER
    pngs = sorted((root / "images").iterdir())
    assert len(pngs) == 600
    for p in pngs[:5]:
        with Image.open(p) as im:
            assert im.mode == "L" and im.size == (128, 128)
        stem = p.stem.split("_")
        assert len(stem[0]) == 8 and len(stem[1]) == 3 and stem[0].isdigit() and stem[1].isdigit()


def test_same_params_give_byte_identical_files(tmp_path):
    a = generate_cxr_dataset(tmp_path / "a", n_images=24, size=64, seed=5)
    b = generate_cxr_dataset(tmp_path / "b", n_images=24, size=64, seed=5)
    c = generate_cxr_dataset(tmp_path / "c", n_images=24, size=64, seed=6)
    assert _tree_bytes(a) == _tree_bytes(b)
    assert _tree_bytes(a)["images/00000001_000.png"] != _tree_bytes(c)["images/00000001_000.png"]


def test_reads_back_through_nih_loader_with_official_split(loaded, default_set):
    root = default_set[0]
    assert loaded.split_info["method"] == "official" and loaded.split_info["patient_overlap"] == 0
    assert len(loaded) == 600 and loaded.skipped == []
    csv_rows = {ln.split(",")[0]: ln.split(",")[1] for ln in (root / "Data_Entry_2017.csv").read_text().splitlines()[1:]}
    for rec in loaded.records:
        cell = csv_rows[rec.name]
        expected = [0.0] * 6 if cell == "No Finding" else [float(lab in cell.split("|")) for lab in LABELS]
        assert rec.labels.tolist() == expected
    test_names = set((root / "test_list.txt").read_text().split())
    assert {r.name for r in loaded.records if r.meta["split"] == "test"} == test_names
    pats = defaultdict(set)
    for r in loaded.records:
        pats[r.meta["split"]].add(r.patient_id)
    assert not (pats["test"] & (pats["train"] | pats["val"])) and not (pats["train"] & pats["val"])
    # several images per patient
    assert 600 / len({r.patient_id for r in loaded.records}) >= 2.0


def test_every_finding_has_a_box_and_boxes_rescale_to_the_png(loaded):
    for rec in loaded.records:
        positives = {lab for lab, v in zip(LABELS, rec.labels, strict=True) if v == 1}
        assert {b.label for b in rec.boxes} == positives, rec.name
        for b in rec.boxes:
            assert 0 <= b.x and 0 <= b.y and b.x + b.w <= 1024 and b.y + b.h <= 1024 and b.w > 0 and b.h > 0
    sample = next(loaded[i] for i, r in enumerate(loaded.records) if len(r.boxes) >= 2)
    rec = next(r for r in loaded.records if r.name == sample.name)
    assert sample.image.shape == (128, 128) and sample.meta["box_scale"] == (0.125, 0.125)
    for b_img, b_rec in zip(sample.boxes, rec.boxes, strict=True):
        assert (b_img.x, b_img.y, b_img.w, b_img.h) == (b_rec.x / 8, b_rec.y / 8, b_rec.w / 8, b_rec.h / 8)


def test_nodule_and_mass_boxes_hold_bright_opacities(loaded):
    contrasts = []
    for i, rec in enumerate(loaded.records):
        boxes = [b for b in rec.boxes if b.label in ("Nodule", "Mass")]
        if not boxes:
            continue
        img = loaded[i].image.astype(np.float64)
        for b in (bb for bb in loaded[i].boxes if bb.label in ("Nodule", "Mass")):
            x0, y0, x1, y1 = int(b.x), int(b.y), int(np.ceil(b.x + b.w)), int(np.ceil(b.y + b.h))
            inner = img[y0:y1, x0:x1].mean()
            m = max(2, (x1 - x0) // 2)
            ring = img[max(0, y0 - m):y1 + m, max(0, x0 - m):x1 + m]
            ring_mean = (ring.sum() - img[y0:y1, x0:x1].sum()) / (ring.size - (y1 - y0) * (x1 - x0))
            contrasts.append(inner - ring_mean)
    assert len(contrasts) > 50
    assert np.mean(np.array(contrasts) > 0) > 0.9


def test_label_statistics_and_co_occurrence(loaded):
    y = loaded.labels_matrix()
    no_finding = (y.sum(axis=1) == 0).mean()
    assert 0.35 <= no_finding <= 0.45
    assert (y.sum(axis=1) >= 2).mean() > 0.05  # findings co-occur
    card, eff = y[:, LABELS.index("Cardiomegaly")] == 1, y[:, LABELS.index("Effusion")] == 1
    assert eff[card].mean() > 2 * eff[~card].mean()
    assert all(y[:, j].sum() >= 30 for j in range(6))
    # cardiomegaly is a patient trait: follow-ups of one patient mostly agree
    by_patient = defaultdict(list)
    for rec in loaded.records:
        by_patient[rec.patient_id].append(rec.labels[LABELS.index("Cardiomegaly")])
    agree = [max(np.mean(v), 1 - np.mean(v)) for v in by_patient.values() if len(v) >= 3]
    assert np.mean(agree) > 0.85


def test_learnable_by_logistic_regression_on_16px(loaded):
    x = np.stack([np.asarray(Image.fromarray(s.image).resize((16, 16), Image.BILINEAR)).ravel() for s in loaded])
    y = loaded.labels_matrix()
    test = np.array([r.meta["split"] == "test" for r in loaded.records])
    mu, sd = x[~test].mean(0), x[~test].std(0) + 1e-6
    x = (x - mu) / sd
    aucs = []
    for j in range(6):
        clf = LogisticRegression(C=0.01, max_iter=2000).fit(x[~test], y[~test, j])
        aucs.append(roc_auc_score(y[test, j], clf.decision_function(x[test])))
    assert sum(a > 0.7 for a in aucs) >= 4, aucs
    assert np.mean(aucs) > 0.7, aucs


def test_builtin_root_is_cached_and_keyed_by_params(tmp_path, monkeypatch):
    monkeypatch.setenv("KDNAS_CACHE", str(tmp_path / "cache"))
    root = builtin_cxr_root(n_images=12, size=48, seed=1)
    assert root.parent == tmp_path / "cache" / "builtin" and root.name.startswith("cxr-")
    stamp = (root / "dataset.json").stat().st_mtime_ns
    assert builtin_cxr_root(n_images=12, size=48, seed=1) == root
    assert (root / "dataset.json").stat().st_mtime_ns == stamp  # not regenerated
    other = builtin_cxr_root(cache_dir=tmp_path / "c2", n_images=12, size=48, seed=2)
    assert other.parent == tmp_path / "c2" / "builtin" and other.name != root.name
    assert [p.name for p in (tmp_path / "cache" / "builtin").iterdir()] == [root.name]  # no temp leftovers
    info = json.loads((root / "dataset.json").read_text())
    assert info["params"] == {"n_images": 12, "size": 48, "seed": 1, "findings": sorted(LABELS)}
    ds = NIHDataset(root, split="test", labels=LABELS)
    assert len(ds) > 0 and ds[0].image.shape == (48, 48)
    with pytest.raises(ConfigError, match="unknown builtin"):
        builtin_cxr_root(cache_dir=tmp_path, n_image=3)
    with pytest.raises(ConfigError, match="findings"):
        generate_cxr_dataset(tmp_path / "x", findings=("Nodule", "Hernia"))


def test_findings_subset(tmp_path):
    root = generate_cxr_dataset(tmp_path / "s", n_images=30, size=64, findings=("Nodule", "Cardiomegaly"))
    ds = NIHDataset(root, split=None, labels=["Cardiomegaly", "Nodule"])
    cells = {r.meta["finding_labels"] for r in ds.records}
    assert set("|".join(cells).split("|")) <= {"Cardiomegaly", "Nodule", "No Finding"}
