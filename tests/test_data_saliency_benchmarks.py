"""CAT2000, PASCAL-S, DUT-OMRON, TORONTO and FIWI from small fixtures in their exact
native formats, plus the format registry."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io as sio
from PIL import Image

from kdnas.data.saliency import (
    SALIENCY_FORMATS,
    CAT2000Dataset,
    DUTOmronDataset,
    FIWIDataset,
    FolderSaliencyDataset,
    PascalSDataset,
    TorontoDataset,
    open_saliency_dataset,
    write_folder_sample,
    write_split,
)
from kdnas.data.saliency.common import load_mat
from kdnas.utils.errors import ConfigError, DataError

RNG = np.random.default_rng(0)


def _img(path: Path, h: int, w: int, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, fmt)


def _binary(h: int, w: int, pts: list[tuple[int, int]]) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    for x, y in pts:
        m[y, x] = 1
    return m


def write_mat73(path: Path, variables: dict[str, np.ndarray | list[np.ndarray]]) -> None:
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 with a 512-byte MAT header, arrays
    stored transposed, cell arrays as object references into ``#refs#``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        for key, value in variables.items():
            if isinstance(value, list):  # an N x 1 cell
                handles = []
                for i, arr in enumerate(value):
                    d = refs.create_dataset(f"{key}{i}", data=np.asarray(arr, dtype=np.float64).T)
                    d.attrs["MATLAB_class"] = np.bytes_("double")
                    handles.append(d.ref)
                ds = f.create_dataset(key, data=np.array(handles, dtype=h5py.ref_dtype).reshape(1, -1))
                ds.attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                ds = f.create_dataset(key, data=np.asarray(value).T)
                ds.attrs["MATLAB_class"] = np.bytes_("double")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")


# --------------------------------------------------------------------------- CAT2000
CAT_PTS = {"Action/001": [(0, 0), (39, 29), (5, 7)], "Action/002": [(1, 2)], "Art/001": [(10, 20), (10, 21)]}


@pytest.fixture
def cat2000(tmp_path) -> Path:
    root = tmp_path / "trainSet"
    for name, pts in CAT_PTS.items():
        cat, stem = name.split("/")
        _img(root / "Stimuli" / cat / f"{stem}.jpg", 30, 40)
        (root / "FIXATIONMAPS" / cat).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((30, 40), 51, np.uint8)).save(root / "FIXATIONMAPS" / cat / f"{stem}.jpg")
        (root / "FIXATIONLOCS" / cat).mkdir(parents=True, exist_ok=True)
        if name == "Art/001":  # one file as MATLAB v7.3, as some re-saved copies are
            write_mat73(root / "FIXATIONLOCS" / cat / f"{stem}.mat", {"fixLocs": _binary(30, 40, pts)})
        else:
            sio.savemat(root / "FIXATIONLOCS" / cat / f"{stem}.mat", {"fixLocs": _binary(30, 40, pts).astype(bool)})
    return tmp_path


def test_cat2000_fixlocs(cat2000):
    ds = open_saliency_dataset(cat2000, "cat2000")  # parent of trainSet accepted
    assert isinstance(ds, CAT2000Dataset) and ds.categories == ["Action", "Art"]
    assert ds.names == sorted(CAT_PTS)
    for s in ds:
        np.testing.assert_array_equal(s.fixations, sorted(CAT_PTS[s.name], key=lambda p: (p[1], p[0])))
        assert s.meta["category"] == s.name.split("/")[0] and s.size == (30, 40)
        np.testing.assert_allclose(s.density, 51 / 255, atol=2 / 255)  # JPEG map


def test_cat2000_errors(cat2000):
    root = cat2000 / "trainSet"
    sio.savemat(root / "FIXATIONLOCS" / "Action" / "002.mat", {"fixMap": np.zeros((30, 40))})
    ds = CAT2000Dataset(root)
    with pytest.raises(DataError, match=r"FIXATIONLOCS/Action/002\.mat: missing variable 'fixLocs' "
                                        r"\(variables present: \['fixMap'\]\)"):
        ds.load("Action/002")
    sio.savemat(root / "FIXATIONLOCS" / "Action" / "002.mat", {"fixLocs": np.zeros((29, 40))})
    with pytest.raises(DataError, match=r"'fixLocs' is 29x40 but the stimulus is 30x40"):
        ds.load("Action/002")
    (root / "FIXATIONMAPS" / "Art" / "001.jpg").unlink()
    with pytest.raises(DataError, match=r"FIXATIONMAPS/Art/001\.jpg: missing fixation map for stimulus Art/001"):
        CAT2000Dataset(root)


def test_cat2000_test_set_skips_output_folders(tmp_path):
    root = tmp_path / "testSet"
    _img(root / "Stimuli" / "Action" / "001.jpg", 20, 30)
    _img(root / "Stimuli" / "Action" / "Output" / "001_SaliencyMap.jpg", 20, 30)
    ds = CAT2000Dataset(root)
    assert ds.names == ["Action/001"] and ds[0].fixations.shape == (0, 2) and ds[0].density is None


# --------------------------------------------------------------------------- PASCAL-S
@pytest.fixture
def pascal(tmp_path) -> Path:
    root = tmp_path / "salObj" / "datasets"
    cells = []
    for i in range(1, 4):
        _img(root / "imgs" / "pascal" / f"{i}.jpg", 24, 32)
        # [row, col, subject], 1-based; (25, 3) lies below the 24-row image
        cells.append(np.array([[1, 1, 1], [24, 32, 2], [5, 7, 2], [25, 3, 3]], dtype=np.float64) + [i - 1, 0, 0])
        (root / "algmaps" / "pascal" / "humanFix").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((24, 32), 255, np.uint8)).save(root / "algmaps" / "pascal" / "humanFix" / f"{i}.png")
    write_mat73(root / "fixations" / "pascalFix.mat", {"fixCell": cells})
    return tmp_path / "salObj"


def test_pascal_s_v73_fixcell(pascal):
    with pytest.raises(NotImplementedError):  # the fixture is a real v7.3 file: scipy refuses it
        sio.loadmat(pascal / "datasets" / "fixations" / "pascalFix.mat")
    ds = open_saliency_dataset(pascal, "PASCAL-S")
    assert isinstance(ds, PascalSDataset) and ds.names == ["1", "2", "3"]
    s = ds.load("1")
    np.testing.assert_array_equal(s.fixations, [[0, 0], [31, 23], [6, 4]])
    np.testing.assert_array_equal(s.subjects, [0, 1, 1])
    assert s.meta["dropped_outside"] == 1 and s.density.max() == 1.0
    s2 = ds.load("2")  # rows shifted by one: [2,1] -> (0, 1); [25, 32] is outside
    np.testing.assert_array_equal(s2.fixations, [[0, 1], [6, 5]])


def test_pascal_s_errors(pascal, tmp_path):
    root = pascal / "datasets"
    _img(root / "imgs" / "pascal" / "4.jpg", 24, 32)
    with pytest.raises(DataError, match=r"4\.jpg has no entry in pascalFix\.mat \(3 entries\)"):
        PascalSDataset(root)
    (root / "imgs" / "pascal" / "4.jpg").unlink()
    (root / "algmaps" / "pascal" / "humanFix" / "3.png").unlink()
    with pytest.raises(DataError, match=r"humanFix/3\.png: missing human fixation map"):
        PascalSDataset(root).load("3")
    write_mat73(root / "fixations" / "pascalFix.mat", {"fixations": np.zeros((3, 3))})
    with pytest.raises(DataError, match=r"pascalFix\.mat: missing variable 'fixCell'"):
        PascalSDataset(root)


# --------------------------------------------------------------------------- DUT-OMRON
@pytest.fixture
def dut(tmp_path) -> Path:
    for name, (h, w) in {"im001": (20, 30), "sun_abc": (25, 18)}.items():
        _img(tmp_path / "DUT-OMRON-image" / f"{name}.jpg", h, w)
        rows = np.array([[0, 0, 1], [w - 1, h - 1, 1], [5, 6, 2], [w, 3, 2], [w, h, 0], [5, 6, 3]], dtype=np.int32)
        (tmp_path / "DUT-OMRON-eye-fixations" / "mat").mkdir(parents=True, exist_ok=True)
        sio.savemat(tmp_path / "DUT-OMRON-eye-fixations" / "mat" / f"{name}.mat", {"s": rows})
    (tmp_path / "DUT-OMRON-image" / "._im001.jpg").write_bytes(b"mac resource fork")
    return tmp_path


def test_dut_omron(dut):
    ds = open_saliency_dataset(dut, "dut_omron", density_sigma=16)
    assert isinstance(ds, DUTOmronDataset) and ds.names == ["im001", "sun_abc"]
    s = ds.load("im001")
    np.testing.assert_array_equal(s.fixations, [[0, 0], [29, 19], [5, 6], [5, 6]])  # zero-based already
    np.testing.assert_array_equal(s.subjects, [0, 0, 1, 2])
    assert s.meta["dropped_outside"] == 1 and s.density.shape == (20, 30)
    sio.savemat(dut / "DUT-OMRON-eye-fixations" / "mat" / "sun_abc.mat", {"s": np.array([[18, 26, 0], [1, 1, 1]])})
    with pytest.raises(DataError, match=r"sun_abc\.mat: size row says 26x18 \(HxW\) but the stimulus sun_abc\.jpg is 25x18"):
        ds.load("sun_abc")
    (dut / "DUT-OMRON-eye-fixations" / "mat" / "sun_abc.mat").unlink()
    with pytest.raises(DataError, match=r"mat/sun_abc\.mat: missing fixation file"):
        DUTOmronDataset(dut)


# --------------------------------------------------------------------------- TORONTO
def test_toronto(tmp_path):
    fixdens = tmp_path / "eyetrackingdata" / "fixdens"
    maps = np.empty((1, 3), dtype=object)
    for i in range(3):
        _img(fixdens / "Original Image Set" / f"{i + 1}.jpg", 12, 16)
        maps[0, i] = _binary(12, 16, [(i, 0), (15, 11)]).astype(np.float64)
    sio.savemat(fixdens / "origfixdata.mat", {"white": maps})
    ds = open_saliency_dataset(tmp_path, "toronto")
    assert isinstance(ds, TorontoDataset) and ds.names == ["1", "2", "3"]
    np.testing.assert_array_equal(ds.load("3").fixations, [[2, 0], [15, 11]])
    with pytest.raises(ConfigError, match="test-only"):
        open_saliency_dataset(tmp_path, "toronto", split="train")
    sio.savemat(fixdens / "origfixdata.mat", {"black": maps})
    with pytest.raises(DataError, match=r"origfixdata\.mat: missing variable 'white'"):
        TorontoDataset(tmp_path)


# --------------------------------------------------------------------------- FIWI
def test_fiwi(tmp_path):
    for name in ("page1", "page2"):
        _img(tmp_path / "webpage" / "stimuli" / f"{name}.png", 20, 34)
        (tmp_path / "webpage" / "fixations" / "all5").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_binary(20, 34, [(33, 19), (0, 4)]) * 255).save(
            tmp_path / "webpage" / "fixations" / "all5" / f"{name}.png")
    ds = open_saliency_dataset(tmp_path, "fiwi", density_sigma=30)
    assert isinstance(ds, FIWIDataset) and ds.names == ["page1", "page2"]
    s = ds.load("page2")
    np.testing.assert_array_equal(s.fixations, [[0, 4], [33, 19]])
    assert s.density.max() == 1.0
    Image.fromarray(np.zeros((21, 34), np.uint8)).save(tmp_path / "webpage" / "fixations" / "all5" / "page1.png")
    with pytest.raises(DataError, match=r"all5/page1\.png: fixation map is 21x34 but the stimulus is 20x34"):
        ds.load("page1")


# --------------------------------------------------------------------------- registry
def test_registry_and_folder_format(tmp_path):
    assert sorted(SALIENCY_FORMATS) == sorted(["folder", "salicon", "mit1003", "cat2000", "pascal_s", "osie",
                                               "dut_omron", "toronto", "fiwi"])
    for i in range(3):
        write_folder_sample(tmp_path, f"s{i}", RNG.integers(0, 255, (8, 9, 3), dtype=np.uint8), [[1, 2]])
    write_split(tmp_path, "val", ["s2"])
    ds = open_saliency_dataset(tmp_path, "folder", split="val")
    assert isinstance(ds, FolderSaliencyDataset) and ds.names == ["s2"]
    with pytest.raises(ConfigError, match=r"unknown saliency format 'imagenet'; valid formats: \['cat2000'"):
        open_saliency_dataset(tmp_path, "imagenet")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['sigma'\] for saliency format 'osie'; valid: "
                                          r"\['density_sigma', 'only_present', 'split_file'\]"):
        open_saliency_dataset(tmp_path, "osie", sigma=3)


def test_load_mat_reads_v73_arrays_in_matlab_order(tmp_path):
    arr = np.arange(6.0).reshape(2, 3)
    write_mat73(tmp_path / "a.mat", {"A": arr})
    np.testing.assert_array_equal(load_mat(tmp_path / "a.mat", keys=["A"])["A"], arr)
