"""SALICON: the real API JSON sample, per-image .mat fixtures, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from PIL import Image

from kdnas.data.saliency import SaliconDataset, open_saliency_dataset
from kdnas.utils.errors import ConfigError, DataError

# README table of ../shared/data: image_id -> (workers, points, distinct pixels)
SALICON_TABLE = {123067: (56, 7189, 6909), 123177: (67, 8478, 8078), 123273: (58, 7519, 7198),
                 123389: (57, 7083, 6731), 123514: (66, 6954, 6537), 123646: (64, 7954, 7648),
                 123749: (67, 8105, 7666), 123855: (60, 7570, 7218), 123891: (60, 5929, 5098),
                 123909: (55, 6849, 6582)}


def test_real_json_sample(shared_data):
    root = shared_data / "saliency" / "salicon"
    ds = open_saliency_dataset(root, "salicon", split="train")
    assert isinstance(ds, SaliconDataset) and ds.mode == "json"
    assert ds.names == [f"COCO_train2014_000000{i}" for i in sorted(SALICON_TABLE)]
    total = 0
    for s in ds:
        workers, points, distinct = SALICON_TABLE[int(s.name[-6:])]
        assert s.size == (480, 640) and s.image.shape == (480, 640, 3) and s.density is None
        assert len(s.fixations) == points and s.meta["dropped_outside"] == 0  # every point kept
        assert len(np.unique(s.subjects)) == workers
        fx, fy = s.fixations[:, 0], s.fixations[:, 1]
        assert fx.min() >= 0 and fx.max() <= 639 and fy.min() >= 0 and fy.max() <= 479
        # the derived fix_<id>.png holds 255 at [row-1, col-1] of every distinct point
        ref = np.asarray(Image.open(shared_data / "saliency" / "reference" / "inputs" / f"fix_{s.name[-6:]}.png")) > 0
        ours = np.zeros((480, 640), bool)
        ours[fy.astype(int), fx.astype(int)] = True
        assert ours.sum() == distinct
        np.testing.assert_array_equal(ours, ref)
        total += len(s.fixations)
    assert total == 73630
    # first point of the first worker of 123855 is [row 242, col 314] (1-based) -> (x 313, y 241)
    s = ds.load("COCO_train2014_000000123855")
    np.testing.assert_array_equal(s.fixations[0], [313, 241])


def _coco(root: Path, split: str, idx: int, size=(30, 40), seed=0) -> str:
    name = f"COCO_{split}2014_{idx:012d}"
    rng = np.random.default_rng(seed)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / "images" / split / f"{name}.jpg")
    return name


def _gaze_mat(path: Path, workers: list[np.ndarray], locations: list[np.ndarray] | None = None) -> None:
    dt = [("location", "O"), ("timestamp", "O"), ("fixations", "O")]
    gaze = np.empty((len(workers), 1), dtype=dt)
    for i, fix in enumerate(workers):
        loc = locations[i] if locations else fix
        gaze[i, 0] = (loc, np.arange(len(loc), dtype=float)[:, None], fix)
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.savemat(path, {"image": path.stem, "resolution": np.array([[30, 40]]), "gaze": gaze})


@pytest.fixture
def mat_set(tmp_path) -> Path:
    a = _coco(tmp_path, "train", 1)
    b = _coco(tmp_path, "val", 2, seed=1)
    # 1-based [x, y]; (40, 30) is the last pixel, (41, 5) and (5, 31) lie outside, (0, 3) too
    _gaze_mat(tmp_path / "fixations" / "train" / f"{a}.mat",
              [np.array([[1, 1], [40, 30], [41, 5], [1, 1]], dtype=np.uint16), np.array([[5, 31], [0, 3]], float),
               np.zeros((0, 0))],
              locations=[np.array([[2.0, 2.0]]), np.array([[3.0, 4.0]]), np.zeros((0, 0))])
    _gaze_mat(tmp_path / "fixations" / "val" / f"{b}.mat", [np.array([[10.5, 20.25]])])
    for split, name in (("train", a), ("val", b)):
        (tmp_path / "maps" / split).mkdir(parents=True)
        Image.fromarray(np.full((30, 40), 102, np.uint8)).save(tmp_path / "maps" / split / f"{name}.png")
    _coco(tmp_path, "test", 3)
    return tmp_path


def test_mat_fixtures_are_converted_to_zero_based(mat_set):
    ds = SaliconDataset(mat_set)
    assert ds.mode == "mat" and ds.names == ["COCO_train2014_000000000001", "COCO_val2014_000000000002"]
    s = ds[0]
    # (1,1) -> (0,0) twice (duplicate kept); (40,30) -> (39,29) kept (D4); three points outside dropped
    np.testing.assert_array_equal(s.fixations, [[0, 0], [39, 29], [0, 0]])
    np.testing.assert_array_equal(s.subjects, [0, 0, 0])
    assert s.meta["dropped_outside"] == 3
    np.testing.assert_allclose(s.density, 0.4)
    np.testing.assert_array_equal(ds[1].fixations, [[9.5, 19.25]])
    assert SaliconDataset(mat_set, split="val").names == ["COCO_val2014_000000000002"]
    loc = SaliconDataset(mat_set, split="train", points="location")[0]
    np.testing.assert_array_equal(loc.fixations, [[1, 1], [2, 3]])
    np.testing.assert_array_equal(loc.subjects, [0, 1])
    test = SaliconDataset(mat_set, split="test")
    assert test.names == ["COCO_test2014_000000000003"] and len(test[0].fixations) == 0


def test_mat_errors_name_the_file(mat_set):
    bad = mat_set / "fixations" / "train" / "COCO_train2014_000000000001.mat"
    sio.savemat(bad, {"image": "x", "fixations": np.zeros((2, 2))})
    ds = SaliconDataset(mat_set, split="train")
    with pytest.raises(DataError, match=r"COCO_train2014_000000000001\.mat: missing variable 'gaze'"):
        ds.load(ds.names[0])
    bad.write_bytes(b"MATLAB 5.0 MAT-file truncated")
    with pytest.raises(DataError, match=r"000000000001\.mat: unreadable or truncated \.mat"):
        ds.load(ds.names[0])


def test_missing_and_wrong_size_maps(mat_set):
    (mat_set / "maps" / "val" / "COCO_val2014_000000000002.png").unlink()
    with pytest.raises(DataError, match=r"maps/val/COCO_val2014_000000000002\.png: missing map"):
        SaliconDataset(mat_set)
    Image.fromarray(np.zeros((30, 41), np.uint8)).save(mat_set / "maps" / "val" / "COCO_val2014_000000000002.png")
    ds = SaliconDataset(mat_set, split="val")
    with pytest.raises(DataError, match=r"map is 30x41 \(HxW\) but the stimulus COCO_val2014_000000000002\.jpg is 30x40"):
        ds.load(ds.names[0])


def test_missing_stimulus_and_annotations(mat_set, tmp_path):
    (mat_set / "images" / "val" / "COCO_val2014_000000000002.jpg").unlink()
    with pytest.raises(DataError, match=r"COCO_val2014_000000000002\.jpg: missing stimulus"):
        SaliconDataset(mat_set)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no SALICON annotations found"):
        SaliconDataset(empty)
    with pytest.raises(ConfigError, match="official folders"):
        SaliconDataset(mat_set, split="holdout")


def test_json_errors(tmp_path):
    name = _coco(tmp_path, "train", 5)
    (tmp_path / "annotations").mkdir()
    ann = tmp_path / "annotations" / "fixations_train2014.json"
    ann.write_text('{"images": []}')
    with pytest.raises(DataError, match=r"fixations_train2014\.json: missing top-level key 'annotations'"):
        SaliconDataset(tmp_path, split="train")
    image = {"id": 5, "file_name": f"{name}.jpg", "width": 40, "height": 31}
    worker = {"image_id": 5, "worker_id": 9, "fixations": [[31, 40], [1, 1]]}
    ann.write_text(json.dumps({"images": [image], "annotations": [worker]}))
    ds = SaliconDataset(tmp_path, split="train")
    with pytest.raises(DataError, match=r"image is 30x40 but fixations_train2014\.json says 31x40"):
        ds.load(name)
    image["height"] = 30
    worker["fixations"] = [[30, 40], [31, 1], [1, 1]]
    ann.write_text(json.dumps({"images": [image], "annotations": [worker]}))
    s = SaliconDataset(tmp_path, split="train").load(name)
    np.testing.assert_array_equal(s.fixations, [[39, 29], [0, 0]])  # row 31 is outside a 30-row image
    np.testing.assert_array_equal(s.subjects, [9, 9])
    ann.write_text('{"images": [], "annotations": [{"image_id": 7, "fixations": []}]}')
    with pytest.raises(DataError, match=r"annotations\[0\] refers to an unknown image"):
        SaliconDataset(tmp_path, split="train")
