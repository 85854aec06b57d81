"""Standard saliency splits (salnas.md §12) and the name,split CSV files."""

from __future__ import annotations

import numpy as np
import pytest

from kdnas.data.saliency import STANDARD_SPLITS, make_split, read_split_csv, write_split_csv
from kdnas.utils.errors import ConfigError, DataError

CAT2000_CATEGORIES = ["Action", "Affective", "Art", "BlackWhite", "Cartoon", "Fractal", "Indoor", "Inverted",
                      "Jumbled", "LineDrawing", "LowResolution", "Noisy", "Object", "OutdoorManMade",
                      "OutdoorNatural", "Pattern", "Random", "Satelite", "Sketch", "Social"]


def _msinet_two_way(files: list[str], n_train: int) -> tuple[list[str], list[str]]:
    """MSI-Net's recipe, written from its description: sort the file paths, shuffle
    ``arange(n)`` with ``RandomState(42).shuffle``, first ``n_train`` indices train."""
    files = sorted(files)
    idx = np.arange(len(files))
    np.random.RandomState(42).shuffle(idx)
    strip = [f.rsplit(".", 1)[0] for f in files]
    return [strip[i] for i in idx[:n_train]], [strip[i] for i in idx[n_train:]]


@pytest.mark.parametrize(("fmt", "total"), [("mit1003", 1003), ("pascal_s", 850), ("osie", 700),
                                            ("dut_omron", 5168), ("fiwi", 149)])
def test_two_way_splits_match_the_reference_recipe(fmt, total):
    rng = np.random.default_rng(0)
    # awkward names: '-' sorts before '.', so sorting names alone would differ from sorting files
    names = [f"img{i:05d}" for i in range(total - 2)] + ["img00007-b", "img00007 c"]
    shuffled = list(rng.permutation(names))
    split = make_split(fmt, shuffled, seed=42, strict=True)
    n_train, n_val = STANDARD_SPLITS[fmt]
    assert (len(split["train"]), len(split["val"])) == (n_train, n_val)
    assert sorted(split["train"] + split["val"]) == sorted(names)
    ref_train, ref_val = _msinet_two_way([f"stimuli/{n}.jpeg" for n in names], n_train)
    assert split["train"] == [n.split("/", 1)[1] for n in ref_train]
    assert split["val"] == [n.split("/", 1)[1] for n in ref_val]
    assert make_split(fmt, names, seed=42) == split  # input order does not matter
    assert make_split(fmt, names, seed=1)["val"] != split["val"]


def test_cat2000_is_category_balanced_like_the_reference():
    names = [f"{c}/{i:03d}" for c in CAT2000_CATEGORIES for i in range(1, 101)]
    split = make_split("cat2000", list(reversed(names)), strict=True)
    assert (len(split["train"]), len(split["val"])) == (1600, 400)
    # MSI-Net: one permutation of 100, tiled over the 20 blocks of the sorted path list
    files = sorted(f"stimuli/{n}.jpg" for n in names)
    idx = np.random.RandomState(42).permutation(100)
    train_idx = np.tile(idx[:80], 20) + np.repeat(np.arange(20) * 100, 80)
    val_idx = np.tile(idx[-20:], 20) + np.repeat(np.arange(20) * 100, 20)
    strip = [f[len("stimuli/"):-len(".jpg")] for f in files]
    assert split["train"] == [strip[i] for i in train_idx]
    assert split["val"] == [strip[i] for i in val_idx]
    for cat in CAT2000_CATEGORIES:
        assert sum(n.startswith(cat + "/") for n in split["val"]) == 20


def test_salicon_split_is_the_official_folders():
    names = ["COCO_val2014_000000000192", "COCO_train2014_000000123855", "COCO_train2014_000000123067"]
    assert make_split("salicon", names) == {"train": ["COCO_train2014_000000123067", "COCO_train2014_000000123855"],
                                            "val": ["COCO_val2014_000000000192"]}
    with pytest.raises(DataError, match="neither"):
        make_split("salicon", ["COCO_test2014_000000000001"])


def test_partial_datasets_warn_or_raise():
    names = [f"i{i}" for i in range(10)]
    with pytest.warns(UserWarning, match="expects 1003 images, found 10"):
        split = make_split("mit1003", names)
    assert (len(split["train"]), len(split["val"])) == (8, 2)  # round(10 * 803 / 1003)
    with pytest.raises(DataError, match="expects 1003"):
        make_split("mit1003", names, strict=True)
    with pytest.warns(UserWarning, match="20 categories"):
        cat = make_split("cat2000", [f"A/{i:03d}" for i in range(10)] + [f"B/{i:03d}" for i in range(5)])
    assert (len(cat["train"]), len(cat["val"])) == (12, 3)  # 8 + 4, 2 + 1
    with pytest.raises(DataError, match="duplicate"):
        make_split("osie", ["a", "a"])


def test_formats_without_standard_split():
    with pytest.raises(ConfigError, match="test-only"):
        make_split("toronto", ["1"])
    with pytest.raises(ConfigError, match="splits/"):
        make_split("folder", ["a"])
    with pytest.raises(ConfigError, match="unknown saliency format"):
        make_split("imagenet", ["a"])


def test_split_csv_round_trip_and_errors(tmp_path):
    split = make_split("fiwi", [f"p{i:03d}" for i in range(149)])
    path = write_split_csv(tmp_path / "fiwi_split.csv", split)
    assert path.read_text().splitlines()[0] == "name,split"
    assert read_split_csv(path) == split
    with pytest.raises(DataError, match="more than one split"):
        write_split_csv(tmp_path / "bad.csv", {"train": ["a"], "val": ["a"]})
    (tmp_path / "h.csv").write_text("file,part\na,train\n")
    with pytest.raises(DataError, match=r"h\.csv, row 1: bad header"):
        read_split_csv(tmp_path / "h.csv")
    (tmp_path / "r.csv").write_text("name,split\na,train\nb\n")
    with pytest.raises(DataError, match=r"r\.csv, row 3: incomplete row"):
        read_split_csv(tmp_path / "r.csv")
    with pytest.raises(DataError, match="not found"):
        read_split_csv(tmp_path / "missing.csv")
