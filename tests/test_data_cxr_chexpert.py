"""CheXpertDataset on the real CheXpert train CSV (223,414 rows) and on small crafted files."""

from __future__ import annotations

import csv
import gzip
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kdnas.data.cxr.chexpert import CheXpertDataset
from kdnas.data.cxr.labels import CHEXPERT_COMPETITION, CHEXPERT_LABELS
from kdnas.utils.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def train_csv(shared_data) -> Path:
    return shared_data / "cxr/chexpert/chexpert_train.csv.gz"


@pytest.fixture(scope="module")
def raw_rows(train_csv) -> tuple[list[str], list[list[str]]]:
    with gzip.open(train_csv, "rt", newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def everything(train_csv) -> CheXpertDataset:
    """All views, raw labels (uncertain kept, blanks unknown, no No-Finding fill)."""
    return CheXpertDataset(train_csv.parent, split=None, views="all", uncertainty="teacher", no_finding_fill=False,
                           train_csv=train_csv, check_images=False)


def _small_root(tmp: Path, raw_lines: list[str], images: bool = True) -> Path:
    """A CheXpert-v1.0-small-like folder with train.csv and tiny JPEGs at the listed paths."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "train.csv").write_text("\n".join(raw_lines) + "\n")
    if images:
        for line in raw_lines[1:]:
            rel = line.split(",")[0].split("/", 1)[1]
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp / rel)
    return tmp


def _head(train_csv: Path, n: int) -> list[str]:
    with gzip.open(train_csv, "rt", newline="") as fh:
        return [next(fh).rstrip("\n") for _ in range(n + 1)]


def test_full_csv_matches_an_independent_parse(everything, raw_rows):
    header, rows = raw_rows
    assert len(everything) == len(rows) == 223_414
    assert everything.label_names == list(CHEXPERT_LABELS)
    code = {"1.0": 1.0, "0.0": 0.0, "-1.0": -1.0, "": math.nan}
    y = everything.labels_matrix()
    for j, name in enumerate(CHEXPERT_LABELS):
        col = np.array([code[r[header.index(name)]] for r in rows])
        np.testing.assert_array_equal(y[:, j], col.astype(np.float32), err_msg=name)
    assert len({r.patient_id for r in everything.records}) == 64_540
    views = Counter(r[header.index("Frontal/Lateral")] for r in rows)
    assert sum(r.view == "Lateral" for r in everything.records) == views["Lateral"]


def test_path_prefix_patient_study_and_views(everything, train_csv):
    rec = everything.records[0]
    assert rec.name == "train/patient00001/study1/view1_frontal.jpg"
    assert rec.image_path == train_csv.parent / "train/patient00001/study1/view1_frontal.jpg"
    assert rec.patient_id == "patient00001" and rec.study_id == "patient00001/study1" and rec.view == "AP"
    patients = {}
    for r in everything.records:
        assert r.name.split("/")[1] == r.patient_id
        patients.setdefault(r.meta["split"], set()).add(r.patient_id)
    assert not (patients["train"] & patients["val"])
    assert abs(everything.split_info["images"]["val"] / len(everything) - 0.1) < 0.01


def test_first_rows_under_each_policy(tmp_path, train_csv):
    # data row 2 (patient00002/study2): Cardiomegaly, Edema, Consolidation, Atelectasis and
    # Pleural Effusion are all -1 (uncertain); Lung Opacity and Fracture are 1
    head = _head(train_csv, 3)
    assert head[2].startswith("CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg")
    root = _small_root(tmp_path / "p", head, images=False)
    assert list(CHEXPERT_COMPETITION) == ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
    got = {policy: CheXpertDataset(root, split=None, views="all", labels="competition", uncertainty=policy,
                                   check_images=False).records[1].labels
           for policy in ("ignore", "zeros", "ones", "smooth", "smooth_zeros", "teacher")}
    np.testing.assert_array_equal(got["ignore"], [np.nan] * 5)
    np.testing.assert_array_equal(got["zeros"], [0] * 5)
    np.testing.assert_array_equal(got["ones"], [1] * 5)
    np.testing.assert_array_equal(got["teacher"], [-1] * 5)
    assert np.all((got["smooth"] >= 0.55) & (got["smooth"] <= 0.85)) and len(set(got["smooth"].tolist())) == 5
    assert np.all((got["smooth_zeros"] >= 0) & (got["smooth_zeros"] <= 0.3))
    again = CheXpertDataset(root, split=None, views="all", labels="competition", uncertainty="smooth",
                            check_images=False).records[1].labels
    np.testing.assert_array_equal(again, got["smooth"])  # seeded: reproducible soft labels
    lo = CheXpertDataset(root, split=None, views="all", labels=["Lung Opacity", "Fracture"],
                         check_images=False).records[1].labels
    np.testing.assert_array_equal(lo, [1, 1])


def test_blank_handling_and_no_finding_fill(tmp_path, train_csv):
    root = _small_root(tmp_path / "c", _head(train_csv, 3), images=False)
    names = list(CHEXPERT_LABELS)
    filled = CheXpertDataset(root, split=None, views="all", check_images=False).records[0].labels
    expect = np.zeros(14, np.float32)
    expect[names.index("No Finding")] = 1
    expect[names.index("Support Devices")] = 1
    np.testing.assert_array_equal(filled, expect)  # healthy: blanks -> 0 (Support Devices was 1 anyway)
    raw = CheXpertDataset(root, split=None, views="all", check_images=False, no_finding_fill=False).records[0].labels
    assert np.isnan(raw[names.index("Cardiomegaly")]) and raw[names.index("Pneumothorax")] == 0
    second = CheXpertDataset(root, split=None, views="all", check_images=False, blank_as="zeros").records[1].labels
    assert second[names.index("Pneumonia")] == 0 and np.isnan(second[names.index("Edema")])  # -1 ignored
    unc = CheXpertDataset(root, split=None, views="all", check_images=False, blank_as="uncertain",
                          uncertainty="ones").records[1].labels
    assert unc[names.index("Pneumonia")] == 1 and unc[names.index("Edema")] == 1


def test_teacher_policy_marks_uncertain_entries(tmp_path, train_csv):
    root = _small_root(tmp_path / "t", _head(train_csv, 4))
    ds = CheXpertDataset(root, split=None, views="all", labels="competition", uncertainty="teacher", val_fraction=0.0)
    sample = ds[1]
    assert sample.image.shape == (8, 8)
    np.testing.assert_array_equal(sample.meta["uncertain_mask"], [True] * 5)
    assert "uncertain_mask" not in ds[0].meta


def test_view_filters(tmp_path, train_csv):
    lines = _head(train_csv, 400)
    root = _small_root(tmp_path / "v", lines, images=False)
    rows = list(csv.DictReader(lines))
    frontal = CheXpertDataset(root, split=None, check_images=False)
    assert len(frontal) == sum(r["Frontal/Lateral"] == "Frontal" for r in rows)
    lateral = CheXpertDataset(root, split=None, views="lateral", check_images=False)
    assert len(lateral) == sum(r["Frontal/Lateral"] == "Lateral" for r in rows) and len(lateral) > 0
    pa = CheXpertDataset(root, split=None, views=["PA"], check_images=False)
    assert len(pa) == sum(r["Frontal/Lateral"] == "Frontal" and r["AP/PA"] == "PA" for r in rows)
    assert {r.view for r in pa.records} == {"PA"}


def test_splits_and_valid_csv(tmp_path, train_csv):
    lines = _head(train_csv, 300)
    root = _small_root(tmp_path / "s", lines, images=False)
    with pytest.raises(DataError, match="valid.csv"):
        CheXpertDataset(root, split="test", check_images=False)
    valid = [lines[0]] + [ln.replace("/train/", "/valid/").replace("patient0", "patient6") for ln in lines[1:21]]
    (root / "valid.csv").write_text("\n".join(valid) + "\n")
    test = CheXpertDataset(root, split="test", views="all", check_images=False)
    assert len(test) == 20 and all(r.name.startswith("valid/") for r in test.records)
    assert CheXpertDataset(root, split="valid", views="all", check_images=False).records[0].name == test.records[0].name
    train = CheXpertDataset(root, split="train", views="all", check_images=False)
    val = CheXpertDataset(root, split="val", views="all", check_images=False)
    assert len(train) + len(val) == 300
    assert not ({r.patient_id for r in train.records} & {r.patient_id for r in val.records})


def test_missing_images_and_bad_cells(tmp_path, train_csv):
    lines = _head(train_csv, 3)
    root = _small_root(tmp_path / "m", lines)
    (root / lines[2].split(",")[0].split("/", 1)[1]).unlink()
    with pytest.raises(DataError, match="skip_bad=True"):
        CheXpertDataset(root, split=None, views="all")
    ds = CheXpertDataset(root, split=None, views="all", skip_bad=True)
    assert len(ds) == 2 and len(ds.skipped) == 1
    bad = lines[:2] + [lines[2].replace("-1.0", "2.0", 1)]
    (root / "train.csv").write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError) as err:
        CheXpertDataset(root, split=None, views="all", check_images=False)
    assert "row 3" in str(err.value) and "'Cardiomegaly'" in str(err.value) and "train.csv" in str(err.value)
    renamed = [lines[0].replace("Frontal/Lateral", "FrontalLateral")] + lines[1:]
    (root / "train.csv").write_text("\n".join(renamed) + "\n")
    with pytest.raises(DataError, match="'Frontal/Lateral' is missing"):
        CheXpertDataset(root, split=None, check_images=False)


def test_config_errors(tmp_path, train_csv):
    root = _small_root(tmp_path / "e", _head(train_csv, 2), images=False)
    with pytest.raises(ConfigError, match="uncertainty policy"):
        CheXpertDataset(root, uncertainty="maybe", check_images=False)
    with pytest.raises(ConfigError, match="Pleural Effusion"):
        CheXpertDataset(root, labels=["Effusion"], check_images=False)
    with pytest.raises(ConfigError, match="blank_as"):
        CheXpertDataset(root, blank_as="ones", check_images=False)
