"""MIT1003: the real stimuli + fixation maps, and native-format fixtures for fixations."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from PIL import Image

from kdnas.data.saliency import MIT1003Dataset, open_saliency_dataset, write_split_csv
from kdnas.utils.errors import ConfigError, DataError

PORTRAIT = {"i1042209003", "i105918635"}


def test_real_sample_maps_only(shared_data):
    root = shared_data / "saliency" / "mit1003"
    ds = open_saliency_dataset(root, "mit1003")
    assert isinstance(ds, MIT1003Dataset)
    assert len(ds) == 10 and ds.names == sorted(ds.names)
    assert ds.fixation_source == "none"  # this sample ships no _fixPts.jpg and no DATA/
    assert ds.check() == 10
    for s in ds:
        assert s.size == ((1024, 768) if s.name in PORTRAIT else (768, 1024))
        raw = np.asarray(Image.open(root / "ALLFIXATIONMAPS" / f"{s.name}_fixMap.jpg").convert("L"))
        np.testing.assert_array_equal(s.density, raw / 255.0)
        assert s.fixations.shape == (0, 2) and s.meta["fixation_source"] == "none"


def _jpeg(arr: np.ndarray, quality: int = 75) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


POINTS = [(0, 0), (79, 59), (10, 5), (11, 5), (40, 30), (3, 50)]  # (x, y), incl. an adjacent pair


@pytest.fixture
def mit(tmp_path) -> Path:
    (tmp_path / "ALLSTIMULI").mkdir()
    (tmp_path / "ALLFIXATIONMAPS").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "ALLSTIMULI" / f"{name}.jpeg").write_bytes(_jpeg(rng.integers(0, 255, (60, 80, 3), np.uint8)))
        (tmp_path / "ALLFIXATIONMAPS" / f"{name}_fixMap.jpg").write_bytes(_jpeg(np.full((60, 80), 128, np.uint8)))
        pts = np.zeros((60, 80), np.uint8)
        for x, y in POINTS:
            pts[y, x] = 255
        (tmp_path / "ALLFIXATIONMAPS" / f"{name}_fixPts.jpg").write_bytes(_jpeg(pts))
    # the release's stray duplicate without the underscore
    (tmp_path / "ALLFIXATIONMAPS" / "afixPts.jpg").write_bytes(_jpeg(np.zeros((60, 80), np.uint8)))
    return tmp_path


def test_fixpts_jpeg_points_recovered_exactly(mit):
    ds = MIT1003Dataset(mit)
    assert ds.fixation_source == "fixpts"
    assert [p.name for p in ds.stray_files] == ["afixPts.jpg"]
    s = ds.load("a")
    expected = sorted(POINTS, key=lambda p: (p[1], p[0]))  # row-major order
    np.testing.assert_array_equal(s.fixations, expected)
    assert s.subjects is None and s.density.shape == (60, 80)
    # stored as RGB JPEG (chroma subsampled) works the same
    rgb = np.zeros((60, 80, 3), np.uint8)
    for x, y in POINTS:
        rgb[y, x] = 255
    (mit / "ALLFIXATIONMAPS" / "a_fixPts.jpg").write_bytes(_jpeg(rgb, quality=90))
    np.testing.assert_array_equal(ds.load("a").fixations, expected)


def _extracted(path: Path, fixations: list[list[float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(fixations, dtype=np.float64).reshape(-1, 2)
    sio.savemat(path, {"fixations": arr, "starts": np.arange(len(arr))[None], "durations": np.ones((1, len(arr)))})


def test_extracted_data_files_preferred(mit):
    for name in ("a", "b"):
        _extracted(mit / "DATA" / "ajs" / f"{name}.mat", [[40.5, 30.5], [10, 10], [81, 5], [1, 1]])
        _extracted(mit / "DATA" / "CNG" / f"{name}.mat", [[40, 30], [80, 60]])
    ds = MIT1003Dataset(mit)
    assert ds.fixation_source == "data" and ds.subjects == ["CNG", "ajs"]
    s = ds.load("a")
    # CNG: first (central) fixation dropped, (80, 60) 1-based -> (79, 59); ajs: first dropped,
    # (81, 5) -> (80, 4) lies outside the 80-px-wide image
    np.testing.assert_array_equal(s.fixations, [[79, 59], [9, 9], [0, 0]])
    np.testing.assert_array_equal(s.subjects, [0, 1, 1])
    assert s.meta["dropped_outside"] == 1 and s.meta["fixation_source"] == "data"
    keep_first = MIT1003Dataset(mit, drop_first_fixation=False).load("a")
    np.testing.assert_array_equal(keep_first.fixations[:2], [[39, 29], [79, 59]])
    assert MIT1003Dataset(mit, fixations="fixpts").load("a").fixations.shape == (6, 2)
    (mit / "DATA" / "CNG" / "b.mat").unlink()
    with pytest.raises(DataError, match=r"DATA/CNG/b\.mat: missing eye data of subject CNG"):
        ds.load("b")


def test_raw_gaze_files_are_explained(mit):
    for name in ("a", "b"):
        path = mit / "DATA" / "hp" / f"{name}.mat"
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = np.empty((1, 1), dtype=[("DATA", "O"), ("imgName", "O")])
        data = np.empty((1, 1), dtype=[("eyeData", "O")])
        data[0, 0] = (np.random.default_rng(0).normal(40, 5, (720, 2)),)
        raw[0, 0] = (data, f"{name}.jpeg")
        sio.savemat(path, {name: raw})
    assert MIT1003Dataset(mit).fixation_source == "fixpts"  # auto falls back to the JPEG points
    with pytest.raises(DataError, match=r"DATA/hp/a\.mat: holds raw gaze samples .*checkFixations"):
        MIT1003Dataset(mit, fixations="data")


def test_missing_files_and_bad_options(mit):
    with pytest.raises(ConfigError, match="fixations must be one of"):
        MIT1003Dataset(mit, fixations="binary")
    (mit / "ALLFIXATIONMAPS" / "b_fixPts.jpg").unlink()
    with pytest.raises(DataError, match=r"b_fixPts\.jpg: missing fixation-point map"):
        MIT1003Dataset(mit, fixations="fixpts")
    (mit / "ALLFIXATIONMAPS" / "b_fixMap.jpg").unlink()
    with pytest.raises(DataError, match=r"ALLFIXATIONMAPS/b_fixMap\.jpg: missing fixation map for stimulus b\.jpeg"):
        MIT1003Dataset(mit)
    with pytest.raises(DataError, match="stimulus folder not found"):
        MIT1003Dataset(mit / "nothing")


def test_splits_on_a_partial_set(mit, tmp_path):
    with pytest.warns(UserWarning, match="expects 1003 images, found 2"):
        val = open_saliency_dataset(mit, "mit1003", split="val").names
    with pytest.warns(UserWarning):
        train = open_saliency_dataset(mit, "mit1003", split="train").names
    assert sorted(train + val) == ["a", "b"] and len(val) == 0  # round(2 * 803 / 1003) = 2 train
    csv = write_split_csv(tmp_path / "s.csv", {"test": ["b"], "train": ["a"]})
    assert open_saliency_dataset(mit, "mit1003", split="test", split_file=csv).names == ["b"]
    with pytest.raises(ConfigError, match="labels there"):
        open_saliency_dataset(mit, "mit1003", split="val", split_file=csv)
    bad = write_split_csv(tmp_path / "bad.csv", {"test": ["zzz"]})
    with pytest.raises(DataError, match=r"bad\.csv: names \['zzz'\]"):
        open_saliency_dataset(mit, "mit1003", split="test", split_file=bad)
