"""CSVDataset: an image-path column plus label columns, with real NIH PNGs as the images."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from kdnas.data.cxr.generic import CSVDataset
from kdnas.utils.errors import ConfigError, DataError


@pytest.fixture()
def folder(tmp_path, shared_data) -> Path:
    src = shared_data / "cxr/nih/images-64"
    (tmp_path / "img").mkdir()
    for p in sorted(src.iterdir()):
        shutil.copy(p, tmp_path / "img" / p.name)
    rows = [
        "path,patient,Effusion,Cardiomegaly,Atelectasis,split",
        "img/00000181_061.png,181,1,0,1,train",
        "img/00000032_037.png,32,0,1,,train",
        "img/00000072_000.png,72,0,0,1.0,validation",
        "img/00000193_019.png,193,-1,0,0,test",
        "img/00000231_013.png,231,0.0,0.0,0.0,test",
        "img/00000234_000.png,234,0.7,0,0,TRAIN",
    ]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_labels_paths_and_declared_split(folder):
    ds = CSVDataset(folder, split=None, patient_column="patient", split_column="split")
    assert ds.label_names == ["Effusion", "Cardiomegaly", "Atelectasis"]
    y = ds.labels_matrix()
    np.testing.assert_array_equal(y[0], [1, 0, 1])
    assert np.isnan(y[1, 2]) and np.isnan(y[3, 0])  # blank unknown; -1 ignored by default
    assert y[5, 0] == pytest.approx(0.7)  # soft labels pass through
    assert [r.meta["split"] for r in ds.records] == ["train", "train", "val", "test", "test", "train"]
    assert ds.split_info["method"] == "from column 'split'"
    sample = ds[0]
    assert sample.image.shape == (64, 64) and sample.patient_id == "181" and sample.name == "img/00000181_061.png"
    assert len(CSVDataset(folder / "labels.csv", split="test", patient_column="patient", split_column="split")) == 2
    with pytest.raises(DataError, match="column 'patient'"):  # without patient_column it is read as labels
        CSVDataset(folder / "labels.csv", split_column="split")


def test_label_column_choice_and_policies(folder):
    ds = CSVDataset(folder, split=None, label_columns=["Atelectasis"], split_column="split")
    assert ds.label_names == ["Atelectasis"]
    ones = CSVDataset(folder, split=None, label_columns=["Effusion"], split_column="split", uncertainty="ones")
    assert ones.labels_matrix()[3, 0] == 1
    teacher = CSVDataset(folder, split=None, label_columns=["Effusion"], split_column="split", uncertainty="teacher")
    assert teacher[3].meta["uncertain_mask"].tolist() == [True]


def test_seeded_splits_state_how_they_were_made(folder):
    by_patient = CSVDataset(folder, split=None, patient_column="patient", label_columns=["Effusion"],
                            test_fraction=0.3, val_fraction=0.2)
    assert by_patient.split_info["method"] == "seeded patient-disjoint"
    by_image = CSVDataset(folder, split=None, label_columns=["Effusion"])
    assert "patients may leak" in by_image.split_info["method"]


def test_errors_name_file_row_and_column(folder):
    text = (folder / "labels.csv").read_text().replace("img/00000072_000.png,72,0,0,1.0", "img/00000072_000.png,72,0,2,1.0")
    (folder / "bad.csv").write_text(text)
    with pytest.raises(DataError) as err:
        CSVDataset(folder, csv_file="bad.csv", patient_column="patient", split_column="split")
    assert "bad.csv" in str(err.value) and "row 4" in str(err.value) and "'Cardiomegaly'" in str(err.value)
    ds = CSVDataset(folder, split=None, csv_file="bad.csv", patient_column="patient", split_column="split",
                    skip_bad=True)
    assert len(ds) == 5 and ds.skipped[0][0] == "img/00000072_000.png"
    with pytest.raises(DataError, match="'image' is missing"):
        CSVDataset(folder, image_column="image")
    (folder / "img/00000181_061.png").unlink()
    with pytest.raises(DataError, match="00000181_061.png"):
        CSVDataset(folder, patient_column="patient", split_column="split")
    assert len(CSVDataset(folder, split=None, patient_column="patient", split_column="split", skip_bad=True)) == 5
    (folder / "split.csv").write_text("path,A\nimg/00000032_037.png,1\nimg/00000032_037.png,0\n")
    with pytest.raises(DataError, match="listed twice"):
        CSVDataset(folder, csv_file="split.csv")
    (folder / "weird.csv").write_text("path,A,split\nimg/00000032_037.png,1,holdout\n")
    with pytest.raises(DataError, match="unknown split"):
        CSVDataset(folder, csv_file="weird.csv", split_column="split")
    (folder / "none.csv").write_text("path\nimg/00000032_037.png\n")
    with pytest.raises(ConfigError, match="no label columns"):
        CSVDataset(folder, csv_file="none.csv")
