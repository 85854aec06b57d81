"""Standard train/val splits of the saliency benchmarks (salnas.md §12, as in MSI-Net).

Every split indexes the dataset's **sorted** file list (sorted as ``NAME.ext`` strings, see
:func:`~kdnas.data.saliency.common.sort_key`) with ``np.random.RandomState(seed)``
permutations, seed 42 by default:

=========  ==============================================================================
mit1003    803 / 200: ``perm = RandomState(seed).permutation(1003)``; train ``perm[:803]``
pascal_s   650 / 200, same rule over 850 images
osie       500 / 200, over 700
dut_omron  4168 / 1000, over 5168
fiwi       99 / 50, over 149
cat2000    per category (20 x 100): one ``permutation(100)``; train ``perm[:80]`` and val
           ``perm[80:]`` of every category block, categories in sorted order
salicon    the official folders: ``*_train2014_*`` names -> train, ``*_val2014_*`` -> val
=========  ==============================================================================

Lists keep the permutation order (the order the reference fed them). When a dataset has
fewer or more images than the reference (a partial download, a fixture), the same rule is
applied with train = round(fraction x n) and a warning, unless ``strict=True``.
TORONTO has no standard split (it is test-only) and the folder format carries its own
``splits/*.txt``; both raise :class:`ConfigError`.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from kdnas.data.saliency.common import sort_key
from kdnas.utils.errors import ConfigError, DataError
from kdnas.utils.io import atomic_write_text

# (n_train, n_val) of the reference split; the total is the full dataset size.
STANDARD_SPLITS: dict[str, tuple[int, int]] = {
    "mit1003": (803, 200),
    "pascal_s": (650, 200),
    "osie": (500, 200),
    "dut_omron": (4168, 1000),
    "fiwi": (99, 50),
    "cat2000": (80, 20),  # per category of 100
}
CAT2000_CATEGORIES = 20


def _seeded_two_way(names: list[str], n_train: int, n_val: int, seed: int, label: str,
                    strict: bool) -> dict[str, list[str]]:
    n = len(names)
    if n != n_train + n_val:
        msg = f"{label}: the standard split expects {n_train + n_val} images, found {n}"
        if strict:
            raise DataError(None, msg, expected=f"the full dataset ({n_train + n_val} images)")
        warnings.warn(msg + "; applying the same rule proportionally", stacklevel=3)
        n_train = int(round(n * n_train / (n_train + n_val)))
    perm = np.random.RandomState(seed).permutation(n)
    return {"train": [names[i] for i in perm[:n_train]], "val": [names[i] for i in perm[n_train:]]}


def make_split(format: str, names: Sequence[str], seed: int = 42, *, strict: bool = False
               ) -> dict[str, list[str]]:
    """The standard split of ``format`` over ``names`` (any order; sorted here).

    Returns ``{"train": [...], "val": [...]}``. CAT2000 names are ``Category/NNN``.
    """
    fmt = format.lower().replace("-", "_")
    ordered = sorted(names, key=sort_key)
    if len(set(ordered)) != len(ordered):
        raise DataError(None, f"{fmt}: duplicate names in the list to split")
    if fmt == "salicon":
        train = [n for n in ordered if "_train" in n]
        val = [n for n in ordered if "_val" in n]
        rest = sorted(set(ordered) - set(train) - set(val))
        if rest:
            raise DataError(None, f"salicon: names {rest[:3]} are neither *_train* nor *_val*",
                            expected="SALICON/COCO names such as COCO_train2014_000000123855")
        return {"train": train, "val": val}
    if fmt == "cat2000":
        return _cat2000(ordered, seed, strict)
    if fmt in STANDARD_SPLITS:
        n_train, n_val = STANDARD_SPLITS[fmt]
        return _seeded_two_way(ordered, n_train, n_val, seed, fmt, strict)
    if fmt in ("toronto", "folder"):
        why = "TORONTO is a test-only set" if fmt == "toronto" else "the folder format lists its splits in splits/*.txt"
        raise ConfigError(f"no standard split for format {fmt!r}: {why}")
    raise ConfigError(f"unknown saliency format {format!r}; formats with a standard split: "
                      f"{sorted([*STANDARD_SPLITS, 'salicon'])}")


def _cat2000(ordered: list[str], seed: int, strict: bool) -> dict[str, list[str]]:
    by_cat: dict[str, list[str]] = {}
    for n in ordered:
        cat, sep, _ = n.partition("/")
        if not sep:
            raise DataError(None, f"cat2000: name {n!r} has no category", expected="names like 'Action/001'")
        by_cat.setdefault(cat, []).append(n)
    per_train, per_val = STANDARD_SPLITS["cat2000"]
    sizes = {c: len(v) for c, v in by_cat.items()}
    standard = len(by_cat) == CAT2000_CATEGORIES and set(sizes.values()) == {per_train + per_val}
    if not standard:
        msg = f"cat2000: the standard split expects 20 categories x 100 images, found {sizes}"
        if strict:
            raise DataError(None, msg, expected="the full CAT2000 training set")
        warnings.warn(msg + "; applying the same rule per category proportionally", stacklevel=2)
    out: dict[str, list[str]] = {"train": [], "val": []}
    for cat in sorted(by_cat, key=lambda c: c + "/"):  # the reference sorted "<cat>/<NNN>.jpg" paths
        block = by_cat[cat]
        n_train = per_train if len(block) == per_train + per_val else int(round(0.8 * len(block)))
        perm = np.random.RandomState(seed).permutation(len(block))
        out["train"] += [block[i] for i in perm[:n_train]]
        out["val"] += [block[i] for i in perm[n_train:]]
    return out


def write_split_csv(path: str | Path, splits: Mapping[str, Sequence[str]]) -> Path:
    """Write ``name,split`` rows (split by split, list order kept) atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "split"])
    seen: set[str] = set()
    for split, names in splits.items():
        for n in names:
            if n in seen:
                raise DataError(path, f"name {n!r} appears in more than one split")
            seen.add(n)
            writer.writerow([n, split])
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def read_split_csv(path: str | Path) -> dict[str, list[str]]:
    """Read a ``name,split`` CSV into ``{split: [names in file order]}``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "split file not found", expected="a CSV with columns name,split")
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    if not rows or [c.strip().lower() for c in rows[0]][:2] != ["name", "split"]:
        raise DataError(path, "bad header", row=1, expected="the header 'name,split'")
    out: dict[str, list[str]] = {}
    seen: set[str] = set()
    for row_no, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise DataError(path, f"incomplete row {row}", row=row_no, expected="name,split")
        name, split = row[0].strip(), row[1].strip()
        if name in seen:
            raise DataError(path, f"name {name!r} listed twice", row=row_no)
        seen.add(name)
        out.setdefault(split, []).append(name)
    return out
