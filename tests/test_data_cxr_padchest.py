"""PadChestDataset on the real 10-row PadChest excerpt, with crafted 16-bit PNGs."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from kdnas.data.cxr.labels import PADCHEST_LABELS, PADCHEST_SYNONYMS
from kdnas.data.cxr.padchest import PadChestDataset, parse_label_list
from kdnas.utils.errors import ConfigError, DataError

# labels derived by hand from the excerpt's `Labels` column through PADCHEST_SYNONYMS
EXPECTED = [
    {"Scoliosis"},
    {"Air Trapping"},  # 'COPD signs' has no label in the table
    {"Atelectasis", "Pneumonia", "Costophrenic Angle Blunting", "Infiltration"},  # 'laminar atelectasis', 'infiltrates'
    set(),  # ['normal']
    set(),  # ['normal']
    {"Scoliosis"},
    set(),  # goiter, vertebral degenerative changes
    {"Aortic Atheromatosis"},
    {"Costophrenic Angle Blunting", "Hemidiaphragm Elevation"},  # ' hemidiaphragm elevation' has a leading space
    {"Aortic Atheromatosis", "Costophrenic Angle Blunting", "Pleural_Thickening", "Air Trapping"},
]


@pytest.fixture(scope="module")
def excerpt(shared_data) -> Path:
    return shared_data / "cxr/padchest/pc_excerpt.csv"


def _load(excerpt: Path, **kw) -> PadChestDataset:
    kw.setdefault("check_images", False)
    return PadChestDataset(excerpt.parent, split=None, csv_file=excerpt, **kw)


def test_excerpt_labels_through_the_synonym_table(excerpt):
    ds = _load(excerpt)
    assert ds.label_names == list(PADCHEST_LABELS) and len(ds) == 10
    for rec, expected in zip(ds.records, EXPECTED, strict=True):
        got = {n for n, v in zip(ds.label_names, rec.labels, strict=True) if v == 1}
        assert got == expected, rec.name
        assert set(np.unique(rec.labels)) <= {0.0, 1.0}
    assert [r.meta["normal"] for r in ds.records].count(True) == 2
    first = ds.records[0]
    assert first.name == "125374151943505747025890313053997514922_j5rk5q.png"
    assert first.patient_id == "100002652742762245719447501824197948584" and first.view == "PA"
    assert ds.split_info["method"] == "seeded patient-disjoint" and sum(ds.split_info["images"].values()) == 10


def test_label_list_parsing():
    assert parse_label_list("['costophrenic angle blunting', ' hemidiaphragm elevation']") == [
        "costophrenic angle blunting", "hemidiaphragm elevation"]
    assert parse_label_list("['COPD signs']") == ["copd signs"]
    assert parse_label_list("") is None and parse_label_list("nan") is None and parse_label_list("[]") == []
    with pytest.raises(ValueError):
        parse_label_list("['scoliosis'")
    with pytest.raises(ValueError):
        parse_label_list("{'a': 1}")


def test_synonym_table_is_explicit_and_one_to_one():
    terms = [t for ts in PADCHEST_SYNONYMS.values() for t in ts]
    assert len(terms) == len(set(terms)), "a PadChest term feeds two labels"
    assert all(t == t.strip().lower() for t in terms)
    assert "consolidation" in PADCHEST_SYNONYMS["Consolidation"]
    assert "consolidation" not in PADCHEST_SYNONYMS["Infiltration"]  # no substring over-assignment


def test_custom_label_lists(excerpt):
    sub = _load(excerpt, labels=["Scoliosis", "Atelectasis"])
    assert sub.label_names == ["Scoliosis", "Atelectasis"]
    assert sub.labels_matrix()[:, 0].sum() == 2 and sub.labels_matrix()[:, 1].sum() == 1
    custom = _load(excerpt, labels={"Chronic": ["chronic changes"], "COPD": ["COPD signs", "air trapping"]})
    y = custom.labels_matrix()
    assert y[:, 0].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0, 1] and y[:, 1].tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    with pytest.raises(ConfigError, match="no PadChest synonym"):
        _load(excerpt, labels=["Lung Opacity"])


def _copy_with_images(tmp: Path, excerpt: Path, rows: int = 10) -> tuple[Path, list[dict[str, str]]]:
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copy(excerpt, tmp / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv")
    with open(excerpt, newline="") as fh:
        table = list(csv.DictReader(fh))[:rows]
    rng = np.random.default_rng(0)
    for row in table:
        folder = tmp / row["ImageDir"]
        folder.mkdir(exist_ok=True)
        pix = rng.integers(0, 4096, size=(12, 10), dtype=np.uint16)  # 12-bit data in a 16-bit PNG
        cv2.imwrite(str(folder / row["ImageID"]), pix)
    return tmp, table


def test_16bit_pngs_in_imagedir_folders(tmp_path, excerpt):
    root, table = _copy_with_images(tmp_path / "pc", excerpt)
    ds = PadChestDataset(root, split=None)  # finds the CSV by its release name, checks the images
    assert len(ds) == 10 and ds.records[0].image_path == root / table[0]["ImageDir"] / table[0]["ImageID"]
    raw = cv2.imread(str(ds.records[0].image_path), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(ds[0].image, raw / 65535.0, atol=1e-7)
    dicom_scaled = PadChestDataset(root, split=None, bits_stored="dicom")
    assert dicom_scaled.records[0].meta["bits_stored"] == 12
    np.testing.assert_allclose(dicom_scaled[0].image, raw / 4095.0, atol=1e-7)
    (root / table[3]["ImageDir"] / table[3]["ImageID"]).unlink()
    with pytest.raises(DataError, match="skip_bad=True"):
        PadChestDataset(root, split=None)
    assert len(PadChestDataset(root, split=None, skip_bad=True)) == 9


def test_bad_cells_and_unlabelled_rows(tmp_path, excerpt):
    text = excerpt.read_text()
    lines = text.splitlines()
    header = lines[0]
    assert header.startswith(",PatientID,Unnamed: 0,ImageID")
    broken = lines[1].replace("['scoliosis']", "['scoliosis'")
    (tmp_path / "a.csv").write_text("\n".join([header, broken] + lines[2:]) + "\n")
    with pytest.raises(DataError) as err:
        PadChestDataset(tmp_path, split=None, csv_file=tmp_path / "a.csv", check_images=False)
    assert "row 2" in str(err.value) and "'Labels'" in str(err.value) and "a.csv" in str(err.value)
    ds = PadChestDataset(tmp_path, split=None, csv_file=tmp_path / "a.csv", check_images=False, skip_bad=True)
    assert len(ds) == 9 and len(ds.skipped) == 1
    empty = lines[1].replace("['scoliosis']", "")
    (tmp_path / "b.csv").write_text("\n".join([header, empty] + lines[2:]) + "\n")
    ds = PadChestDataset(tmp_path, split=None, csv_file=tmp_path / "b.csv", check_images=False)
    assert len(ds) == 9 and ds.split_info["dropped_unlabelled"] == 1
    (tmp_path / "c.csv").write_text("\n".join([header.replace(",Labels,", ",Findings,")] + lines[1:]) + "\n")
    with pytest.raises(DataError, match="'Labels' is missing"):
        PadChestDataset(tmp_path, split=None, csv_file=tmp_path / "c.csv", check_images=False)


def test_views_and_split_file(tmp_path, excerpt):
    lateral = _load(excerpt, views=["L"])
    assert len(lateral) == 0
    ds = _load(excerpt)
    ds.write_split_csv(tmp_path / "split.csv")
    again = _load(excerpt, split_csv=tmp_path / "split.csv")
    assert again.split_info["method"] == "from split file"
    assert {r.name: r.meta["split"] for r in again.records} == {r.name: r.meta["split"] for r in ds.records}
