"""The kdnas saliency folder format: round trips and the errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kdnas.data.saliency.folder import (
    FolderSaliencyDataset,
    read_fixation_csv,
    write_folder_sample,
    write_split,
)
from kdnas.data.types import SaliencySample
from kdnas.utils.errors import DataError


def _image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _make_set(root: Path, n: int = 3, h: int = 12, w: int = 16) -> dict[str, dict]:
    rng = np.random.default_rng(0)
    truth = {}
    for i in range(n):
        name = f"img{i:02d}"
        img = _image(h, w, i)
        fix = np.stack([rng.uniform(0, w, 7), rng.uniform(0, h, 7)], axis=1)
        fix[0] = [w - 1e-9, h - 1e-9]  # the last valid position survives the round trip
        subj = np.arange(7) % 3
        dens = rng.random((h, w))
        write_folder_sample(root, name, img, fix, density=dens, subjects=subj)
        truth[name] = {"image": img, "fix": fix, "subj": subj, "dens": dens}
    return truth


def test_round_trip_is_exact(tmp_path):
    truth = _make_set(tmp_path)
    ds = FolderSaliencyDataset(tmp_path)
    assert ds.names == sorted(truth)
    assert len(ds) == 3
    for s in ds:
        assert isinstance(s, SaliencySample)
        t = truth[s.name]
        np.testing.assert_array_equal(s.image, t["image"])
        np.testing.assert_array_equal(s.fixations, t["fix"])  # repr floats: bit-exact
        np.testing.assert_array_equal(s.subjects, t["subj"])
        assert s.size == (12, 16)
        # 16-bit PNG map: the map divided by its max, quantised to 1/65535
        np.testing.assert_allclose(s.density, t["dens"] / t["dens"].max(), atol=0.5 / 65535 + 1e-12)
        assert s.density.max() == 1.0


def test_npy_and_png8_maps(tmp_path):
    img = _image(5, 6, 1)
    dens = np.linspace(0, 3, 30).reshape(5, 6)
    write_folder_sample(tmp_path, "a", img, [[1.5, 2.25]], density=dens, map_format="npy")
    write_folder_sample(tmp_path, "b", img, [[0, 0]], density=dens, map_format="png8")
    ds = FolderSaliencyDataset(tmp_path)
    np.testing.assert_array_equal(ds.load("a").density, dens)
    np.testing.assert_array_equal(ds.load("b").density, np.rint(dens / 3 * 255) / 255)
    # an 8-bit map from another tool reads as value / 255
    Image.fromarray(np.full((5, 6), 51, np.uint8)).save(tmp_path / "maps" / "b.png")
    np.testing.assert_allclose(ds.load("b").density, 0.2)


def test_jpeg_stimulus_extra_columns_and_string_subjects(tmp_path):
    (tmp_path / "stimuli").mkdir()
    (tmp_path / "fixations").mkdir()
    Image.fromarray(_image(10, 20, 3)).save(tmp_path / "stimuli" / "cat.jpeg", quality=95)
    (tmp_path / "fixations" / "cat.csv").write_text("subject,t, X ,y\nbob,1,3,4\nann,2,19.5,9.99\nbob,3,3,4\n")
    s = FolderSaliencyDataset(tmp_path)[0]
    assert s.name == "cat" and s.density is None and s.size == (10, 20)
    np.testing.assert_array_equal(s.fixations, [[3, 4], [19.5, 9.99], [3, 4]])  # duplicates kept
    np.testing.assert_array_equal(s.subjects, [1, 0, 1])
    assert s.meta["subject_ids"] == ["ann", "bob"]


def test_splits(tmp_path):
    _make_set(tmp_path, n=4)
    write_split(tmp_path, "train", ["img03", "img00"])
    write_split(tmp_path, "val", ["img01"])
    assert FolderSaliencyDataset(tmp_path, split="train").names == ["img03", "img00"]
    assert [s.name for s in FolderSaliencyDataset(tmp_path, split="val")] == ["img01"]
    with pytest.raises(DataError, match=r"splits/test\.txt"):
        FolderSaliencyDataset(tmp_path, split="test")
    (tmp_path / "splits" / "bad.txt").write_text("img00\nnope\n")
    with pytest.raises(DataError, match=r"bad\.txt, row 2: name 'nope' has no stimulus"):
        FolderSaliencyDataset(tmp_path, split="bad")


def test_missing_files_name_the_file(tmp_path):
    _make_set(tmp_path)
    (tmp_path / "maps" / "img01.png").unlink()
    with pytest.raises(DataError, match=r"maps/img01\.png: missing map for stimulus img01\.png"):
        FolderSaliencyDataset(tmp_path)
    _make_set(tmp_path)
    (tmp_path / "fixations" / "img02.csv").unlink()
    with pytest.raises(DataError, match=r"fixations/img02\.csv: missing fixation file"):
        FolderSaliencyDataset(tmp_path)
    _make_set(tmp_path)
    (tmp_path / "stimuli" / "img00.png").unlink()
    with pytest.raises(DataError, match=r"stimuli/img00\.png: missing stimulus for fixation file img00\.csv"):
        FolderSaliencyDataset(tmp_path)
    with pytest.raises(DataError, match="dataset folder not found"):
        FolderSaliencyDataset(tmp_path / "nowhere")


def test_map_of_wrong_size(tmp_path):
    _make_set(tmp_path)
    Image.fromarray(np.zeros((12, 15), np.uint8)).save(tmp_path / "maps" / "img01.png")
    ds = FolderSaliencyDataset(tmp_path)
    ds.load("img00")
    with pytest.raises(DataError, match=r"img01\.png: map is 12x15 \(HxW\) but the stimulus img01\.png is 12x16"):
        ds.load("img01")
    with pytest.raises(DataError):
        ds.check()


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("a,b\n1,2\n", r"row 1: header \['a', 'b'\] lacks an 'x' or 'y' column"),
        ("", r"row 1: empty fixation file"),
        ("x,y\n1,2\n3,oops\n", r"row 3, column 'y': non-numeric value 'oops'"),
        ("x,y\n1,2\nnan,2\n", r"row 3, column 'x': non-finite value 'nan'"),
        ("x,y\n16,2\n", r"row 2, column 'x': x=16 lies outside the 12x16 \(HxW\) stimulus \(expected 0 <= x < 16"),
        ("x,y\n1,-0.5\n", r"row 2, column 'y': y=-0.5 lies outside .*0 <= y < 12"),
        ("x,y\n1,2,3\n", r"row 2: 3 fields where the header has 2"),
    ],
)
def test_bad_csv_names_file_and_row(tmp_path, text, pattern):
    _make_set(tmp_path, n=1)
    csv_path = tmp_path / "fixations" / "img00.csv"
    csv_path.write_text(text)
    with pytest.raises(DataError, match=r"img00\.csv, " + pattern if pattern.startswith("row") else pattern) as e:
        FolderSaliencyDataset(tmp_path).load("img00")
    assert str(csv_path) in str(e.value)


def test_csv_reader_without_size_and_empty(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("x,y\n")
    fix, subj, ids = read_fixation_csv(p)
    assert fix.shape == (0, 2) and subj is None and ids is None


def test_truncated_and_unreadable_images(tmp_path):
    _make_set(tmp_path, n=2)
    stim = tmp_path / "stimuli" / "img00.png"
    stim.write_bytes(stim.read_bytes()[:60])
    (tmp_path / "maps" / "img01.png").write_bytes(b"not an image at all")
    ds = FolderSaliencyDataset(tmp_path)
    with pytest.raises(DataError, match=r"img00\.png: unreadable or truncated image"):
        ds.load("img00")
    with pytest.raises(DataError, match=r"maps/img01\.png: unreadable or truncated map image"):
        ds.load("img01")


def test_bad_npy_map(tmp_path):
    img = _image(4, 4, 0)
    write_folder_sample(tmp_path, "a", img, [[1, 1]], density=np.ones((4, 4)), map_format="npy")
    np.save(tmp_path / "maps" / "a.npy", np.full((4, 4), np.nan))
    with pytest.raises(DataError, match=r"a\.npy: map contains NaN"):
        FolderSaliencyDataset(tmp_path).load("a")


def test_writer_validates_input(tmp_path):
    img = _image(6, 8, 0)
    with pytest.raises(DataError, match=r"img\.csv, row 3: fixation \(8, 1\) lies outside the 6x8"):
        write_folder_sample(tmp_path, "img", img, [[0, 0], [8, 1]])
    with pytest.raises(DataError, match="map has shape"):
        write_folder_sample(tmp_path, "img", img, [[0, 0]], density=np.ones((8, 6)))
    with pytest.raises(DataError, match="image has shape"):
        write_folder_sample(tmp_path, "img", img.astype(np.float32), [[0, 0]])
    with pytest.raises(DataError, match="invalid stimulus name"):
        write_folder_sample(tmp_path, "a/b", img, [[0, 0]])
    with pytest.raises(DataError, match="subjects have shape"):
        write_folder_sample(tmp_path, "img", img, [[0, 0]], subjects=np.array([0, 1]))
    assert not (tmp_path / "stimuli").exists()  # nothing written on bad input
    Image.fromarray(img).save(tmp_path / "x.jpg")
    (tmp_path / "stimuli").mkdir()
    (tmp_path / "x.jpg").rename(tmp_path / "stimuli" / "img.jpg")
    with pytest.raises(DataError, match="another extension exists"):
        write_folder_sample(tmp_path, "img", img, [[0, 0]])


def test_writer_leaves_no_temporary_files(tmp_path):
    _make_set(tmp_path, n=2)
    write_split(tmp_path, "train", ["img00", "img01"])
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []
