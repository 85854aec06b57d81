"""The documented kdnas saliency folder format: reader and writers.

Layout under a root folder::

    stimuli/NAME.(jpg|jpeg|png)        the images (RGB, any size)
    maps/NAME.(png|npy)                optional empirical saliency maps: 8- or 16-bit grey PNG
                                       (divided by 255 / 65535 on load) or a float .npy;
                                       same height and width as the stimulus
    fixations/NAME.csv                 header row, then one fixation per row; columns ``x`` and
                                       ``y`` are 0-based pixel coordinates (column, row), floats
                                       allowed; extra columns are allowed (``subject`` is read)
    splits/{train,val,test}.txt        optional, one NAME per line
    dataset.json                       optional metadata (the synthetic generator writes it)

A fixation is inside the image when ``0 <= x < W`` and ``0 <= y < H``. Points outside are an
error here (the folder format is written by us or by a converter, so they indicate a bug),
unlike the benchmark loaders, which drop them as the benchmarks do.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kdnas.data.saliency.common import (
    IMAGE_SUFFIXES,
    check_same_size,
    encode_png,
    find_stimuli,
    read_density_map,
    read_rgb,
    sort_key,
)
from kdnas.data.types import SaliencyDataset, SaliencySample
from kdnas.utils.errors import DataError
from kdnas.utils.io import atomic_write_bytes, atomic_write_text

MAP_SUFFIXES = (".png", ".npy")
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class FolderSaliencyDataset(SaliencyDataset):
    """Reader of the kdnas folder format (see the module docstring).

    ``split`` selects the names listed in ``splits/<split>.txt`` (in file order); ``None``
    takes every stimulus, sorted by name. Missing files and malformed CSVs raise
    :class:`DataError` naming the file (and row); file pairing is checked up front, file
    contents when a sample is loaded (``check()`` loads them all).
    """

    format_name = "folder"

    def __init__(self, root: str | Path, split: str | None = None):
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise DataError(self.root, "dataset folder not found",
                            expected="a folder with stimuli/, fixations/ and optionally maps/, splits/")
        self.stimuli_dir = self.root / "stimuli"
        self.maps_dir = self.root / "maps"
        self.fixations_dir = self.root / "fixations"
        if not self.fixations_dir.is_dir():
            raise DataError(self.fixations_dir, "fixations folder not found",
                            expected="fixations/NAME.csv with 0-based x,y columns for every stimulus")
        self._stimuli = find_stimuli(self.stimuli_dir)
        self._maps = self._index_maps() if self.maps_dir.is_dir() else None
        self._check_pairing()
        all_names = sorted(self._stimuli, key=sort_key)
        self.names = all_names if split is None else read_split_file(self.root, split, set(all_names))
        self.info = _read_info(self.root / "dataset.json")

    def _index_maps(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for p in self.maps_dir.iterdir():
            if p.name.startswith(".") or not p.is_file() or p.suffix.lower() not in MAP_SUFFIXES:
                continue
            if p.stem in found:
                raise DataError(p, f"two maps share the name {p.stem!r}", expected="one map per name")
            found[p.stem] = p
        return found

    def _check_pairing(self) -> None:
        for name, stim in sorted(self._stimuli.items()):
            csv_path = self.fixations_dir / f"{name}.csv"
            if not csv_path.is_file():
                raise DataError(csv_path, f"missing fixation file for stimulus {stim.name}",
                                expected="fixations/NAME.csv for every stimulus")
            if self._maps is not None and name not in self._maps:
                raise DataError(self.maps_dir / f"{name}.png",
                                f"missing map for stimulus {stim.name} (maps/ exists, so every stimulus needs one)",
                                expected="maps/NAME.png or maps/NAME.npy")
        for p in sorted(self.fixations_dir.glob("*.csv")):
            if p.stem not in self._stimuli:
                raise DataError(self.stimuli_dir / f"{p.stem}.png", f"missing stimulus for fixation file {p.name}",
                                expected=f"stimuli/{p.stem}.(jpg|jpeg|png)")
        for name, p in sorted((self._maps or {}).items()):
            if name not in self._stimuli:
                raise DataError(self.stimuli_dir / f"{name}.png", f"missing stimulus for map {p.name}",
                                expected=f"stimuli/{name}.(jpg|jpeg|png)")

    def stimulus_path(self, name: str) -> Path:
        return self._stimuli[name]

    def load(self, name: str) -> SaliencySample:
        if name not in self._stimuli:
            raise KeyError(name)
        stim = self._stimuli[name]
        image = read_rgb(stim)
        size = (int(image.shape[0]), int(image.shape[1]))
        density = None
        map_path = self._maps.get(name) if self._maps is not None else None
        if map_path is not None:
            density = read_density_map(map_path)
            check_same_size(map_path, density, stim, size)
        csv_path = self.fixations_dir / f"{name}.csv"
        fixations, subjects, subject_ids = read_fixation_csv(csv_path, size)
        meta: dict[str, Any] = {"format": self.format_name, "stimulus": str(stim), "fixations_file": str(csv_path),
                                "map": None if map_path is None else str(map_path)}
        if subject_ids is not None:
            meta["subject_ids"] = subject_ids
        return SaliencySample(name=name, image=image, fixations=fixations, density=density, size=size,
                              subjects=subjects, meta=meta)

    def check(self) -> int:
        """Load every sample of the selection (raising on the first bad file); returns the count."""
        for name in self.names:
            self.load(name)
        return len(self.names)


def _read_info(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(path, f"unreadable dataset.json ({exc})", expected="a JSON object") from exc


def read_split_file(root: str | Path, split: str, known: set[str] | None = None) -> list[str]:
    """Names listed in ``root/splits/<split>.txt`` (blank lines and ``#`` comments skipped)."""
    path = Path(root) / "splits" / f"{split}.txt"
    if not path.is_file():
        raise DataError(path, f"split file for split {split!r} not found",
                        expected="splits/<split>.txt with one stimulus name per line")
    names: list[str] = []
    seen: set[str] = set()
    for row, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if known is not None and name not in known:
            raise DataError(path, f"name {name!r} has no stimulus", row=row,
                            expected="names of files in stimuli/ (without extension)")
        if name in seen:
            raise DataError(path, f"name {name!r} listed twice", row=row)
        seen.add(name)
        names.append(name)
    return names


def read_fixation_csv(path: str | Path, size: tuple[int, int] | None = None
                      ) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Read a folder-format fixation CSV.

    Returns ``(fixations N x 2 float64, subjects N int or None, subject_ids or None)``.
    Integer ``subject`` values are used directly; other values are mapped to indices of
    their sorted unique strings (``subject_ids`` lists them). Row numbers in errors count
    the header as row 1. With ``size = (H, W)`` every point must satisfy
    ``0 <= x < W`` and ``0 <= y < H``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "fixation file not found", expected="a CSV with a header and x,y columns")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"unreadable fixation CSV ({exc})", expected="UTF-8 text") from exc
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise DataError(path, "empty fixation file", row=1, expected="a header row with x and y columns")
    header = [h.strip().lower() for h in rows[0]]
    if "x" not in header or "y" not in header:
        raise DataError(path, f"header {rows[0]} lacks an 'x' or 'y' column", row=1,
                        expected="a header with columns x and y (0-based pixel coordinates)")
    ix, iy = header.index("x"), header.index("y")
    isub = header.index("subject") if "subject" in header else None
    xs: list[float] = []
    ys: list[float] = []
    subs: list[str] = []
    for row_no, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DataError(path, f"{len(row)} fields where the header has {len(header)}", row=row_no)
        for col, idx, out in (("x", ix, xs), ("y", iy, ys)):
            cell = row[idx].strip()
            try:
                val = float(cell)
            except ValueError:
                raise DataError(path, f"non-numeric value {cell!r}", row=row_no, column=col,
                                expected="a number") from None
            if not math.isfinite(val):
                raise DataError(path, f"non-finite value {cell!r}", row=row_no, column=col,
                                expected="a finite number")
            out.append(val)
        if isub is not None:
            subs.append(row[isub].strip())
        if size is not None:
            h, w = size
            x, y = xs[-1], ys[-1]
            if not (0 <= x < w):
                raise DataError(path, f"x={x:g} lies outside the {h}x{w} (HxW) stimulus", row=row_no,
                                column="x", expected=f"0 <= x < {w} (0-based)")
            if not (0 <= y < h):
                raise DataError(path, f"y={y:g} lies outside the {h}x{w} (HxW) stimulus", row=row_no,
                                column="y", expected=f"0 <= y < {h} (0-based)")
    fixations = np.asarray([xs, ys], dtype=np.float64).T.reshape(-1, 2)
    if isub is None:
        return fixations, None, None
    try:
        return fixations, np.asarray([int(s) for s in subs], dtype=np.int64), None
    except ValueError:
        ids = sorted(set(subs))
        lookup = {s: i for i, s in enumerate(ids)}
        return fixations, np.asarray([lookup[s] for s in subs], dtype=np.int64), ids


def _check_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\n" in name:
        raise DataError(None, f"invalid stimulus name {name!r}",
                        expected="a non-empty file name without path separators or a leading dot")


def _refuse_sibling(folder: Path, name: str, keep: str, suffixes: Sequence[str]) -> None:
    for suf in suffixes:
        other = folder / f"{name}{suf}"
        if suf != keep and other.exists():
            raise DataError(other, f"a file for {name!r} with another extension exists; writing {name}{keep} "
                            "would make the name ambiguous", expected="remove it first")


def fixations_csv_text(fixations: np.ndarray, subjects: np.ndarray | None = None) -> str:
    """CSV text of the folder format; floats use ``repr`` so they read back bit-exactly."""
    lines = ["x,y" if subjects is None else "x,y,subject"]
    if subjects is None:
        lines += [f"{float(x)!r},{float(y)!r}" for x, y in fixations]
    else:
        lines += [f"{float(x)!r},{float(y)!r},{int(s)}" for (x, y), s in zip(fixations, subjects, strict=True)]
    return "\n".join(lines) + "\n"


def write_folder_sample(root: str | Path, name: str, image: np.ndarray, fixations: np.ndarray,
                        density: np.ndarray | None = None, subjects: np.ndarray | None = None, *,
                        map_format: str = "png16") -> dict[str, Path]:
    """Write one sample in the folder format (each file atomically); returns the paths.

    ``image`` is ``H x W x 3`` (or ``H x W``) uint8 and is stored as PNG. ``fixations`` are
    0-based ``(x, y)`` inside the image. ``density`` (float, ``H x W``, finite, >= 0) is stored
    as a 16-bit PNG scaled to max 65535 (``map_format="png16"``, the map's max becomes 1 on
    load), as an 8-bit PNG (``"png8"``) or exactly as a float64 ``.npy`` (``"npy"``).
    """
    root = Path(root)
    _check_name(name)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise DataError(root / "stimuli" / f"{name}.png",
                        f"image has shape {image.shape} and dtype {image.dtype}",
                        expected="an H x W x 3 (or H x W) uint8 array")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    h, w = int(image.shape[0]), int(image.shape[1])
    csv_path = root / "fixations" / f"{name}.csv"
    fix = np.asarray(fixations, dtype=np.float64)
    if fix.size == 0:
        fix = fix.reshape(0, 2)
    if fix.ndim != 2 or fix.shape[1] != 2:
        raise DataError(csv_path, f"fixations have shape {fix.shape}", expected="an N x 2 array of (x, y)")
    for i, (x, y) in enumerate(fix):
        if not (math.isfinite(x) and math.isfinite(y) and 0 <= x < w and 0 <= y < h):
            raise DataError(csv_path, f"fixation ({x:g}, {y:g}) lies outside the {h}x{w} (HxW) image",
                            row=i + 2, expected=f"0 <= x < {w} and 0 <= y < {h}")
    if subjects is not None:
        subjects = np.asarray(subjects)
        if subjects.shape != (len(fix),) or not np.issubdtype(subjects.dtype, np.integer):
            raise DataError(csv_path, f"subjects have shape {subjects.shape} and dtype {subjects.dtype}",
                            expected=f"{len(fix)} integers, one per fixation")
    paths = {"stimulus": root / "stimuli" / f"{name}.png", "fixations": csv_path}
    if density is not None:
        suffix = ".npy" if map_format == "npy" else ".png"
        map_path = root / "maps" / f"{name}{suffix}"
        payload = _encode_map(map_path, np.asarray(density), (h, w), map_format)
        _refuse_sibling(map_path.parent, name, suffix, MAP_SUFFIXES)
    _refuse_sibling(paths["stimulus"].parent, name, ".png", IMAGE_SUFFIXES)
    atomic_write_bytes(paths["stimulus"], encode_png(image))
    atomic_write_text(csv_path, fixations_csv_text(fix, subjects))
    if density is not None:
        atomic_write_bytes(map_path, payload)
        paths["map"] = map_path
    return paths


def _encode_map(path: Path, density: np.ndarray, size: tuple[int, int], map_format: str) -> bytes:
    if density.shape != size:
        raise DataError(path, f"map has shape {density.shape} but the image is {size[0]}x{size[1]}",
                        expected="a map of the same height and width as the image")
    dens = density.astype(np.float64)
    if not np.all(np.isfinite(dens)) or dens.min() < 0:
        raise DataError(path, "map has negative or non-finite values", expected="a finite density >= 0")
    if map_format == "npy":
        buf = io.BytesIO()
        np.save(buf, dens, allow_pickle=False)
        return buf.getvalue()
    if map_format not in ("png16", "png8"):
        raise DataError(path, f"unknown map format {map_format!r}", expected="'png16', 'png8' or 'npy'")
    peak = dens.max()
    scaled = dens / peak if peak > 0 else dens
    top, dtype = (65535, np.uint16) if map_format == "png16" else (255, np.uint8)
    return encode_png(np.rint(scaled * top).astype(dtype))


def write_split(root: str | Path, split: str, names: Sequence[str]) -> Path:
    """Write ``root/splits/<split>.txt`` (one name per line, given order) atomically."""
    if not _SPLIT_NAME.match(split):
        raise DataError(None, f"invalid split name {split!r}", expected="letters, digits, '_', '-' or '.'")
    for n in names:
        _check_name(n)
    path = Path(root) / "splits" / f"{split}.txt"
    atomic_write_text(path, "".join(f"{n}\n" for n in names))
    return path
