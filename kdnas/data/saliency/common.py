"""Shared readers and checks for the saliency loaders.

Every reader turns an unreadable, truncated or malformed file into a
:class:`~kdnas.utils.errors.DataError` that names the file, so a loader never leaks a
bare PIL/scipy/h5py exception to the user.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from kdnas.utils.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_rgb(path: str | Path) -> np.ndarray:
    """Read a stimulus as ``H x W x 3`` uint8 RGB.

    Pixels are returned as stored: no EXIF rotation is applied, because the benchmark
    fixations refer to the stored pixel grid.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "stimulus file not found", expected="an RGB image (.jpg/.jpeg/.png)")
    try:
        with Image.open(path) as img:
            img.load()  # decode now so truncated files fail here, not later
            if img.mode != "RGB":
                img = img.convert("RGB")
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"unreadable or truncated image ({exc})",
                        expected="a valid .jpg/.jpeg/.png image") from exc
    return np.ascontiguousarray(arr)


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image from its header, without decoding the pixels."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
    except FileNotFoundError as exc:
        raise DataError(path, "image file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"unreadable image ({exc})", expected="a valid image") from exc
    return int(height), int(width)


def read_grey(path: str | Path, *, what: str = "map") -> np.ndarray:
    """Read an image file as a 2-D array of its raw grey levels (uint8 or uint16).

    Colour files are converted to luminance (ITU-R 601-2, PIL ``L``); 16-bit grey PNGs keep
    their 16-bit values.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} file not found")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img).astype(np.int64)
                if arr.min() < 0 or arr.max() > 65535:
                    raise DataError(path, f"{what} values outside 0..65535",
                                    expected="an 8- or 16-bit grey image")
                arr = arr.astype(np.uint16)
            elif img.mode == "F":
                raise DataError(path, f"{what} is a 32-bit float image",
                                expected="an 8- or 16-bit grey PNG, or a float .npy")
            else:
                arr = np.asarray(img.convert("L"), dtype=np.uint8)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"unreadable or truncated {what} image ({exc})",
                        expected="a valid 8- or 16-bit grey image") from exc
    return np.ascontiguousarray(arr)


def read_density_map(path: str | Path) -> np.ndarray:
    """Read an empirical saliency map as float64.

    8-bit images are divided by 255, 16-bit PNGs by 65535 (so both land in [0, 1]);
    ``.npy`` files must hold a finite, non-negative 2-D float array and are returned as is.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise DataError(path, "map file not found")
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(path, f"unreadable .npy map ({exc})",
                            expected="a 2-D float array saved with numpy.save") from exc
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
            raise DataError(path, f"map has shape {arr.shape} and dtype {arr.dtype}",
                            expected="a 2-D numeric array")
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise DataError(path, "map contains NaN or infinite values", expected="finite values")
        if arr.min() < 0:
            raise DataError(path, f"map has negative values (min {arr.min():g})",
                            expected="a non-negative density")
        return arr
    grey = read_grey(path, what="map")
    scale = 65535.0 if grey.dtype == np.uint16 else 255.0
    return grey.astype(np.float64) / scale


def check_same_size(map_path: Path, density: np.ndarray, stimulus_path: Path,
                    size: tuple[int, int]) -> None:
    """Raise when a density map's (H, W) differs from its stimulus' (H, W)."""
    if tuple(density.shape[:2]) != tuple(size):
        raise DataError(map_path, f"map is {density.shape[0]}x{density.shape[1]} (HxW) but the stimulus "
                        f"{stimulus_path.name} is {size[0]}x{size[1]}",
                        expected="a map of the same size as its stimulus")


def in_bounds(fixations: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Boolean mask of 0-based ``(x, y)`` points inside an image of ``size = (H, W)``.

    A point is inside when ``0 <= x < W`` and ``0 <= y < H``: flooring maps it onto a pixel.
    """
    h, w = size
    fx, fy = fixations[:, 0], fixations[:, 1]
    return (fx >= 0) & (fx < w) & (fy >= 0) & (fy < h) & np.isfinite(fx) & np.isfinite(fy)


def points_from_binary(mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """0-based ``(x, y)`` of every pixel ``> threshold`` of a native-size fixation map.

    Row-major order (the order ``np.nonzero`` gives). Used for datasets that only ship
    binary fixation maps at the stimulus' native size; they are never resized first.
    """
    rows, cols = np.nonzero(np.asarray(mask) > threshold)
    return np.stack([cols, rows], axis=1).astype(np.float64).reshape(-1, 2)


def fixation_count_map(fixations: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Count of fixations per pixel (float64, ``H x W``); points are floored onto pixels.

    Out-of-image points are ignored; duplicates add up.
    """
    h, w = size
    counts = np.zeros((h, w), dtype=np.float64)
    fix = np.asarray(fixations, dtype=np.float64).reshape(-1, 2)
    fix = fix[in_bounds(fix, size)]
    if len(fix):
        np.add.at(counts, (np.floor(fix[:, 1]).astype(np.int64), np.floor(fix[:, 0]).astype(np.int64)), 1.0)
    return counts


def blurred_density(fixations: np.ndarray, size: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian blur (``sigma`` px, zero padding) of the fixation count map, scaled to max 1.

    An image without fixations gives an all-zero map.
    """
    from scipy.ndimage import gaussian_filter

    if not sigma > 0:
        raise ValueError(f"blur sigma must be > 0, got {sigma}")
    dens = gaussian_filter(fixation_count_map(fixations, size), sigma=float(sigma), mode="constant",
                           truncate=4.0)
    peak = dens.max()
    return dens / peak if peak > 0 else dens


def load_mat(path: str | Path, keys: Iterable[str] | None = None) -> dict[str, Any]:
    """Load a MATLAB file: v4/v5 with ``scipy.io.loadmat``, v7.3 (HDF5) with h5py.

    v7.3 support covers plain numeric arrays (read into numpy and transposed back to
    MATLAB's row/column order); cell arrays of references need a dedicated reader (see
    ``pascal_s.read_pascal_fixcell``). With ``keys``, a missing variable is a DataError
    naming the file and the variables present.
    """
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise DataError(path, ".mat file not found")
    try:
        data = loadmat(path)
    except NotImplementedError:  # MATLAB v7.3 = HDF5
        data = _load_mat73(path)
    except Exception as exc:  # scipy raises MatReadError, IndexError, ValueError, ... on corrupt files
        raise DataError(path, f"unreadable or truncated .mat file ({type(exc).__name__}: {exc})",
                        expected="a MATLAB v5 or v7.3 .mat file") from exc
    if keys is not None:
        present = sorted(k for k in data if not k.startswith("__"))
        for key in keys:
            if key not in data:
                raise DataError(path, f"missing variable {key!r} (variables present: {present})",
                                expected=f"a .mat file with the variable {key!r}")
    return data


def _load_mat73(path: Path) -> dict[str, Any]:
    import h5py

    out: dict[str, Any] = {}
    try:
        with h5py.File(path, "r") as f:
            for key, item in f.items():
                if key.startswith("#"):
                    continue
                if isinstance(item, h5py.Dataset) and item.dtype != h5py.ref_dtype:
                    out[key] = np.asarray(item[()]).T  # HDF5 stores MATLAB arrays transposed
    except OSError as exc:
        raise DataError(path, f"unreadable .mat file ({exc})",
                        expected="a MATLAB v5 or v7.3 .mat file") from exc
    return out


def mat_field(path: Path, struct: Any, field: str) -> Any:
    """Field of a scipy-loaded MATLAB struct, with a DataError naming the file when absent."""
    names = getattr(getattr(struct, "dtype", None), "names", None) or ()
    if field not in names:
        raise DataError(path, f"struct has no field {field!r} (fields: {list(names)})",
                        expected=f"a struct with the field {field!r}")
    return struct[field]


def find_stimuli(folder: Path, *, recursive: bool = False, suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
                 what: str = "stimulus", expected: str = "a folder of images") -> dict[str, Path]:
    """Map stimulus name (path relative to ``folder`` without suffix, '/'-separated) to file.

    Hidden files (``._*`` resource forks, ``.DS_Store``) are skipped. Two files with the
    same name and different suffixes are an error, since the name would be ambiguous.
    ``what``/``expected`` word the errors (e.g. for a folder of prediction maps).
    """
    if not folder.is_dir():
        raise DataError(folder, f"{what} folder not found", expected=expected)
    files = folder.rglob("*") if recursive else folder.iterdir()
    found: dict[str, Path] = {}
    for p in files:
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() not in suffixes:
            continue
        name = p.relative_to(folder).with_suffix("").as_posix()
        if name in found:
            raise DataError(p, f"two {what} files share the name {name!r} ({found[name].name} and {p.name})",
                            expected="one file per name")
        found[name] = p
    return found


def sort_key(name: str) -> str:
    """Order of MSI-Net's sorted file lists (``sorted`` over ``NAME.ext`` strings).

    Appending '.' reproduces how a name compares once its extension follows, so that
    seeded permutations index the same list the reference used.
    """
    return name + "."


def encode_png(array: np.ndarray, compress_level: int = 6) -> bytes:
    """Encode a uint8 (grey or RGB) or uint16 (grey) array as PNG bytes (deterministic).

    ``compress_level`` trades size for speed (zlib level; 1 is about twice as fast as 6).
    """
    arr = np.ascontiguousarray(array)
    if arr.dtype == np.uint16:
        if arr.ndim != 2:
            raise ValueError("16-bit PNGs must be 2-D (grey)")
        img = Image.fromarray(arr.astype("<u2"))  # Pillow >= 10 infers mode I;16
    elif arr.dtype == np.uint8:
        img = Image.fromarray(arr)
    else:
        raise ValueError(f"cannot encode dtype {arr.dtype} as PNG")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=int(compress_level))
    return buf.getvalue()

