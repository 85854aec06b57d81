"""NIHDataset on the real Data_Entry_2017_v2020 / BBox_List_2017 files and real PNGs."""

from __future__ import annotations

import gzip
import shutil
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from kdnas.data.cxr.labels import NIH_LABELS
from kdnas.data.cxr.nih import NIHDataset
from kdnas.data.cxr.splits import read_split_csv
from kdnas.data.cxr.tables import read_table
from kdnas.utils.errors import ConfigError, DataError

# data README, per-image table: labels and 1024-frame boxes
README_TABLE = {
    "00000001_000.png": ("Cardiomegaly", "PA", []),
    "00000002_000.png": ("No Finding", "PA", []),
    "00000013_003.png": ("Pleural_Thickening", "AP", []),
    "00027426_000.png": ("No Finding", "PA", []),
    "00000231_013.png": ("No Finding", "PA", []),
    "00000234_000.png": ("No Finding", "PA", []),
    "00000235_000.png": ("No Finding", "AP", []),
    "00000181_061.png": ("Atelectasis|Effusion|Infiltration", "AP",
                         [("Atelectasis", 209.898305084746, 568.714132018009, 213.694915254237, 254.915254237288)]),
    "00000032_037.png": ("Cardiomegaly|Edema|Infiltration", "AP",
                         [("Infiltration", 339.166137566138, 119.195767195767, 172.292063492064, 351.085714285714)]),
    "00000072_000.png": ("Atelectasis", "PA",
                         [("Atelectasis", 356.503703703704, 567.805291005291, 127.86455026455, 82.3534391534392)]),
    "00000193_019.png": ("Pneumonia", "AP",
                         [("Pneumonia", 703.715555555556, 616.997934027778, 218.453333333333, 249.173333333333)]),
}
BOX_COUNTS = {"Atelectasis": 180, "Cardiomegaly": 146, "Effusion": 153, "Infiltration": 123, "Mass": 85,
              "Nodule": 79, "Pneumonia": 120, "Pneumothorax": 98}


def _assert_boxes(got: list, expected: list) -> None:
    assert [g[0] for g in got] == [e[0] for e in expected]
    np.testing.assert_allclose(np.array([g[1:] for g in got], dtype=np.float64).reshape(-1, 4),
                               np.array([e[1:] for e in expected], dtype=np.float64).reshape(-1, 4), rtol=1e-12)


@pytest.fixture(scope="module")
def nih_root(shared_data) -> Path:
    return shared_data / "cxr/nih"


@pytest.fixture(scope="module")
def full(nih_root) -> NIHDataset:
    return NIHDataset(nih_root, split=None, check_images=False)


@pytest.fixture(scope="module")
def readme_root(nih_root, tmp_path_factory) -> Path:
    """The real CSV rows of the 11 README images plus the real box file, in a small root."""
    root = tmp_path_factory.mktemp("readme")
    lines = _csv_lines(nih_root)
    keep = [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in README_TABLE]
    assert len(keep) == 12
    (root / "Data_Entry_2017_v2020.csv").write_text("\n".join(keep) + "\n")
    shutil.copy(nih_root / "BBox_List_2017.csv.gz", root / "BBox_List_2017.csv.gz")
    return root


def _csv_lines(nih_root: Path) -> list[str]:
    with gzip.open(nih_root / "Data_Entry_2017_v2020.csv.gz", "rt", newline="") as fh:
        return fh.read().splitlines()


def _subset_root(tmp: Path, nih_root: Path, max_patient: int, *, lists: bool, gz: bool = False) -> Path:
    """A dataset root holding the CSV rows of patients 1..max_patient (header unchanged)."""
    lines = _csv_lines(nih_root)
    keep = [lines[0]] + [ln for ln in lines[1:] if int(ln.split(",")[3]) <= max_patient]
    tmp.mkdir(parents=True, exist_ok=True)
    text = "\n".join(keep) + "\n"
    if gz:
        with gzip.open(tmp / "Data_Entry_2017_v2020.csv.gz", "wt", newline="") as fh:
            fh.write(text)
    else:
        (tmp / "Data_Entry_2017.csv").write_text(text)
    if lists:
        names = [ln.split(",")[0] for ln in keep[1:]]
        pats = [int(ln.split(",")[3]) for ln in keep[1:]]
        test = [n for n, p in zip(names, pats, strict=True) if p % 4 == 0]
        (tmp / "test_list.txt").write_text("\n".join(test) + "\n")
        (tmp / "train_val_list.txt").write_text("\n".join(n for n in names if n not in set(test)) + "\n")
    return tmp


def test_full_csv_loads_fast_with_exact_labels(nih_root):
    # CPU time of this process, best of two: the test machine is shared with other runs
    timings = []
    for _ in range(2):
        t0 = time.process_time()
        ds = NIHDataset(nih_root, split=None, check_images=False)
        timings.append(time.process_time() - t0)
    assert min(timings) < 2.0, timings
    assert len(ds) == 112_120
    assert ds.label_names == list(NIH_LABELS) and len(ds.label_names) == 14
    assert "Pleural_Thickening" in ds.label_names
    assert ds.split_info["method"] == "seeded patient-disjoint"
    # cxr-kd.md §4.1: 30,805 patients, 67,310 PA and 44,810 AP
    assert len({r.patient_id for r in ds.records}) == 30_805
    views = Counter(r.view for r in ds.records)
    assert views["PA"] == 67_310 and views["AP"] == 44_810


def test_readme_table_labels_and_boxes(full):
    by_name = {r.name: r for r in full.all_records}
    for name, (findings, view, boxes) in README_TABLE.items():
        rec = by_name[name]
        expected = np.zeros(14, dtype=np.float32)
        if findings != "No Finding":
            for f in findings.split("|"):
                expected[NIH_LABELS.index(f)] = 1
        np.testing.assert_array_equal(rec.labels, expected, err_msg=name)
        assert rec.view == view
        assert rec.box_frame == (1024, 1024)
        _assert_boxes([(b.label, b.x, b.y, b.w, b.h) for b in rec.boxes], boxes)


def test_all_984_boxes_with_infiltrate_renamed(full):
    counts = Counter(b.label for r in full.all_records for b in r.boxes)
    assert sum(counts.values()) == 984
    assert dict(counts) == BOX_COUNTS
    assert sum(1 for r in full.all_records if r.boxes) == 880


def test_bracketed_header_columns_are_rejoined(nih_root):
    table = read_table(nih_root / "Data_Entry_2017_v2020.csv.gz")
    assert table.columns[-2:] == ["OriginalImage[Width,Height]", "OriginalImagePixelSpacing[x,y]"]
    assert table.width == 11 and len(table.rows) == 112_120
    row = table.rows[0]
    assert row[table.index("OriginalImage[Width,Height]"):][:2] == ["2682", "2749"]
    boxes = read_table(nih_root / "BBox_List_2017.csv.gz", min_fields=6)
    assert boxes.columns == ["Image Index", "Finding Label", "Bbox [x,y,w,h]"] and boxes.width == 6


def test_images_64_boxes_rescaled_by_one_sixteenth(nih_root, readme_root):
    ds = NIHDataset(readme_root, split=None, images_dir=nih_root / "images-64", skip_bad=True)
    assert sorted(r.name for r in ds.records) == sorted(n for n in README_TABLE if n not in (
        "00000001_000.png", "00000002_000.png", "00000013_003.png", "00027426_000.png"))
    assert len(ds.skipped) == 4 and all("not found" in why for _, why in ds.skipped)
    for sample in ds:
        assert sample.image.shape == (64, 64) and sample.image.dtype == np.float32
        assert sample.meta["box_scale"] == (1 / 16, 1 / 16)
        expected = [(lab, x / 16, y / 16, w / 16, h / 16) for lab, x, y, w, h in README_TABLE[sample.name][2]]
        _assert_boxes([(b.label, b.x, b.y, b.w, b.h) for b in sample.boxes], expected)


def test_images_512_and_1024(nih_root, readme_root):
    ds512 = NIHDataset(readme_root, split=None, images_dir=nih_root / "images-512", skip_bad=True)
    assert {r.name for r in ds512.records} == {"00000001_000.png", "00027426_000.png"}
    s = ds512[[r.name for r in ds512.records].index("00000001_000.png")]
    assert s.image.shape == (512, 512) and s.meta["box_scale"] == (0.5, 0.5)
    ds1024 = NIHDataset(readme_root, split=None, images_dir=nih_root / "images", skip_bad=True)
    assert {r.name for r in ds1024.records} == {"00000001_000.png", "00000002_000.png", "00000013_003.png"}
    auto = NIHDataset(nih_root, split=None, skip_bad=True, views=["AP"])  # images_dir defaults to images/
    assert auto.images_dir == nih_root / "images" and [r.name for r in auto.records] == ["00000013_003.png"]
    full_img = [x for x in ds1024 if x.name == "00000001_000.png"][0].image.astype(np.float64)
    assert full_img.shape == (1024, 1024)
    # the 512 copy is the same study at half resolution: block means agree closely
    pooled = full_img.reshape(512, 2, 512, 2).mean(axis=(1, 3))
    assert np.abs(pooled - s.image.astype(np.float64)).mean() < 0.03


def test_missing_images_raise_unless_skip_bad(nih_root, readme_root):
    with pytest.raises(DataError, match="skip_bad=True") as err:
        NIHDataset(readme_root, split=None, images_dir=nih_root / "images-64")
    assert "images-64" in str(err.value) and "4 of 11" in str(err.value)


def test_seeded_split_is_patient_disjoint_deterministic_and_order_free(full, nih_root, tmp_path):
    by_split = defaultdict(set)
    for r in full.all_records:
        by_split[r.meta["split"]].add(r.patient_id)
    assert not (by_split["train"] & by_split["test"]) and not (by_split["val"] & by_split["test"])
    assert not (by_split["train"] & by_split["val"])
    sizes = full.split_info["images"]
    assert sum(sizes.values()) == 112_120
    assert abs(sizes["test"] / 112_120 - 0.2) < 0.01
    assert abs(sizes["val"] / (sizes["train"] + sizes["val"]) - 0.1) < 0.01
    # reversing the row order does not move any image
    lines = _csv_lines(nih_root)[:3001]
    a = tmp_path / "a"
    a.mkdir()
    (a / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n")
    b = tmp_path / "b"
    b.mkdir()
    (b / "Data_Entry_2017.csv").write_text("\n".join([lines[0]] + lines[1:][::-1]) + "\n")
    whole = NIHDataset(a, split=None, check_images=False)
    train = NIHDataset(a, split="train", check_images=False)
    assert len(train) == whole.split_info["images"]["train"] and {r.meta["split"] for r in train.records} == {"train"}
    other_seed = NIHDataset(a, split="test", seed=1, check_images=False)
    assert {r.name for r in other_seed.records} != {r.name for r in whole.records if r.meta["split"] == "test"}
    sa = {r.name: r.meta["split"] for r in NIHDataset(a, split=None, check_images=False).records}
    sb = {r.name: r.meta["split"] for r in NIHDataset(b, split=None, check_images=False).records}
    assert sa == sb


def test_official_split_files_are_used(nih_root, tmp_path):
    root = _subset_root(tmp_path / "off", nih_root, 400, lists=True, gz=True)
    ds = NIHDataset(root, split=None, check_images=False, val_fraction=0.2, seed=3)
    info = ds.split_info
    assert info["method"] == "official" and info["unlisted"] == 0 and info["patient_overlap"] == 0
    test_names = set((root / "test_list.txt").read_text().split())
    assert {r.name for r in ds.records if r.meta["split"] == "test"} == test_names
    train_p = {r.patient_id for r in ds.records if r.meta["split"] == "train"}
    val_p = {r.patient_id for r in ds.records if r.meta["split"] == "val"}
    assert val_p and not (train_p & val_p)
    n_pool = info["images"]["train"] + info["images"]["val"]
    assert abs(info["images"]["val"] / n_pool - 0.2) < 0.05
    # released split round-trips
    ds.write_split_csv(tmp_path / "split.csv")
    assert read_split_csv(tmp_path / "split.csv") == {r.name: r.meta["split"] for r in ds.records}
    # one list without the other is an error
    (root / "test_list.txt").unlink()
    with pytest.raises(DataError, match="official split lists"):
        NIHDataset(root, check_images=False)


def test_label_subset_and_no_finding(nih_root, tmp_path):
    root = _subset_root(tmp_path / "sub", nih_root, 60, lists=False)
    ds = NIHDataset(root, split=None, labels=["Nodule", "Mass", "Effusion"], check_images=False)
    for r in ds.records:
        cell = r.meta["finding_labels"].split("|")
        assert r.labels.tolist() == [float(x in cell) for x in ("Nodule", "Mass", "Effusion")]
    assert any(r.meta["finding_labels"] == "No Finding" for r in ds.records)


def test_views_filter(nih_root, tmp_path):
    root = _subset_root(tmp_path / "v", nih_root, 300, lists=False)
    all_ = NIHDataset(root, split=None, check_images=False)
    pa = NIHDataset(root, split=None, check_images=False, views=["pa"])
    assert len(pa) == sum(r.view == "PA" for r in all_.records) and {r.view for r in pa.records} == {"PA"}


def _write(root: Path, header: str, rows: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Data_Entry_2017.csv").write_text("\n".join([header] + rows) + "\n")
    return root


HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
          "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")
GOOD = "00000001_000.png,Cardiomegaly,0,1,57,M,PA,2682,2749,0.143,0.143"


def test_renamed_column_names_the_missing_column(tmp_path):
    root = _write(tmp_path / "r", HEADER.replace("Patient ID", "PatientID"), [GOOD])
    with pytest.raises(DataError) as err:
        NIHDataset(root, check_images=False)
    msg = str(err.value)
    assert "Data_Entry_2017.csv" in msg and "'Patient ID'" in msg and "'PatientID'" in msg and "row 1" in msg


def test_unknown_label_names_row_and_column(tmp_path):
    bad = "00000002_000.png,Cardiomegaly|Pneumonitis,0,2,80,M,PA,2500,2048,0.17,0.17"
    root = _write(tmp_path / "u", HEADER, [GOOD, bad])
    with pytest.raises(DataError) as err:
        NIHDataset(root, check_images=False)
    assert "row 3" in str(err.value) and "'Finding Labels'" in str(err.value) and "Pneumonitis" in str(err.value)
    # substring matching would accept this; exact matching must not
    root2 = _write(tmp_path / "u2", HEADER, [GOOD.replace("Cardiomegaly", "Cardiomegaly_")])
    with pytest.raises(DataError, match="unknown finding label"):
        NIHDataset(root2, check_images=False)
    ds = NIHDataset(root, split=None, check_images=False, skip_bad=True)
    assert len(ds) == 1 and ds.skipped == [("00000002_000.png", "unknown finding label 'Pneumonitis'")]


@pytest.mark.parametrize("row, expect", [
    ("00000003_000.png,No Finding|Mass,0,3,70,F,PA,2500,2048,0.17,0.17", "combined"),
    ("00000003_000.png,Mass,0,3,70,F,PA,2500", "fields"),
    ("00000003_000.png,Mass||Nodule,0,3,70,F,PA,2500,2048,0.17,0.17", "empty finding"),
    ("00000003_000.png,Mass,0,,70,F,PA,2500,2048,0.17,0.17", "Patient ID"),
    ("00000001_000.png,Mass,0,1,70,F,PA,2500,2048,0.17,0.17", "duplicate"),
])
def test_malformed_rows(tmp_path, row, expect):
    root = _write(tmp_path / "m", HEADER, [GOOD, row])
    with pytest.raises(DataError, match=expect) as err:
        NIHDataset(root, check_images=False)
    assert "row 3" in str(err.value)
    ds = NIHDataset(root, split=None, check_images=False, skip_bad=True)
    assert len(ds) == 1 and len(ds.skipped) == 1


def test_bad_box_rows(tmp_path):
    root = _write(tmp_path / "b", HEADER, [GOOD])
    (root / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n00000001_000.png,Cardiomegaly,10,20,abc,40\n")
    with pytest.raises(DataError) as err:
        NIHDataset(root, check_images=False)
    assert "BBox_List_2017.csv" in str(err.value) and "row 2" in str(err.value)
    (root / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n00000001_000.png,Cardiomegaly,10,20,30,40\n")
    ds = NIHDataset(root, split=None, check_images=False)
    assert [(b.label, b.x, b.y, b.w, b.h) for b in ds.records[0].boxes] == [("Cardiomegaly", 10, 20, 30, 40)]


def test_plain_csv_kaggle_layout_and_config_errors(nih_root, tmp_path):
    root = _write(tmp_path / "k", HEADER, [GOOD])
    (root / "images_001" / "images").mkdir(parents=True)
    shutil.copy(nih_root / "images/00000001_000.png", root / "images_001/images/00000001_000.png")
    ds = NIHDataset(root, split=None)
    assert ds.records[0].image_path == root / "images_001/images/00000001_000.png"
    assert ds[0].image.shape == (1024, 1024)
    with pytest.raises(ConfigError, match="split"):
        NIHDataset(root, split="validation")
    with pytest.raises(ConfigError, match="val_fraction"):
        NIHDataset(root, val_fraction=1.5)
    with pytest.raises(DataError, match="no NIH label file"):
        NIHDataset(tmp_path / "k" / "images_001")


def test_validate_images_reports_corrupt_files(nih_root, tmp_path):
    second = "00000002_000.png,No Finding,0,2,81,M,PA,2500,2048,0.171,0.171"
    root = _write(tmp_path / "c", HEADER, [GOOD, second])
    (root / "images").mkdir()
    shutil.copy(nih_root / "images/00000001_000.png", root / "images/00000001_000.png")
    data = (nih_root / "images/00000002_000.png").read_bytes()
    (root / "images/00000002_000.png").write_bytes(data[: len(data) // 3])  # truncated download
    strict = NIHDataset(root, split=None)
    with pytest.raises(DataError, match="00000002_000.png"):
        strict[1]
    with pytest.raises(DataError, match="truncated"):
        strict.validate_images()
    lenient = NIHDataset(root, split=None, skip_bad=True)
    assert lenient.validate_images() == 1
    assert [r.name for r in lenient.records] == ["00000001_000.png"]
    assert lenient.skipped[0][0] == "00000002_000.png" and "00000002_000.png" in lenient.skipped[0][1]
