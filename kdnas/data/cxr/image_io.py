"""Reading radiographs: PNG (8/16-bit, grey or RGB), JPEG and DICOM to one grey float image.

Every reader returns a float32 ``H x W`` array in [0, 1]. Intensities are divided by the
largest value the file's bit depth can hold (255, 65535, or ``2**BitsStored - 1`` when the
stored precision is known), never by the image's own maximum, so a dark film stays dark.
DICOM MONOCHROME1 (white = low value) is inverted so that bone is bright in every output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdnas.utils.errors import DataError

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXPECTED = "a readable 8/16-bit PNG, JPEG or DICOM radiograph"


def _sniff(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(132)
    except IsADirectoryError as exc:
        raise DataError(path, "is a directory, not an image file", expected=_EXPECTED) from exc
    except OSError as exc:
        raise DataError(path, f"cannot be opened: {exc.strerror or exc}", expected=_EXPECTED) from exc


def _validate_bits(path: Path, bits_stored: int | None, container_bits: int) -> float:
    """The value that maps to 1.0: ``2**bits - 1`` for the stored precision."""
    if bits_stored is None:
        return float(2**container_bits - 1)
    bits = int(bits_stored)
    if not 1 <= bits <= container_bits:
        raise DataError(path, f"BitsStored {bits_stored} does not fit a {container_bits}-bit image",
                        expected=f"1..{container_bits}")
    return float(2**bits - 1)


def _to_grey(path: Path, arr: np.ndarray) -> np.ndarray:
    """Collapse colour channels: exact copy when R = G = B, ITU-R 601 luma otherwise."""
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise DataError(path, f"unsupported pixel array shape {arr.shape}", expected="H x W or H x W x 3")
    rgb = arr[..., :3]  # alpha (if any) carries no radiographic information
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0]
    # JPEG chroma subsampling makes grey radiographs slightly colourful; luma is the faithful grey.
    weights = np.array([0.299, 0.587, 0.114])
    return rgb.astype(np.float64) @ weights


def _scale(path: Path, arr: np.ndarray, maxval: float) -> np.ndarray:
    """Divide by ``maxval``; values above it (wrong BitsStored) are an error, not silently clipped."""
    peak = float(arr.max()) if arr.size else 0.0
    if peak > maxval:
        raise DataError(path, f"pixel value {peak:g} exceeds the stated maximum {maxval:g}",
                        expected="pixel values within the stored bit depth (check BitsStored)")
    out = arr.astype(np.float32) / np.float32(maxval)
    return out


def _png_header(head: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from the IHDR chunk, or None if not a PNG."""
    if not head.startswith(_PNG_SIGNATURE) or len(head) < 26 or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _read_png16_colour(path: Path) -> np.ndarray:
    # Pillow reduces 16-bit RGB PNGs to 8 bits; OpenCV keeps the full precision.
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DataError(path, "corrupt or truncated 16-bit colour PNG", expected=_EXPECTED)
    if arr.ndim == 3:
        arr = arr[..., [2, 1, 0] + ([3] if arr.shape[2] == 4 else [])]  # BGR(A) -> RGB(A)
    return arr


def _read_pillow(path: Path, head: bytes, bits_stored: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    png = _png_header(head)
    if png is not None and png[0] == 16 and png[1] in (2, 4, 6):
        arr = _read_png16_colour(path)
        return _scale(path, _to_grey(path, arr), _validate_bits(path, bits_stored, 16))
    try:
        with Image.open(path) as im:
            im.load()  # decode now so truncation surfaces here, inside the try
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                mode = im.mode
            if mode == "CMYK":
                im = im.convert("RGB")
                mode = "RGB"
            arr = np.asarray(im)
    except UnidentifiedImageError as exc:
        raise DataError(path, "not a recognised image file (corrupt or wrong format)", expected=_EXPECTED) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(path, f"corrupt or truncated image ({exc})", expected=_EXPECTED) from exc
    if mode in ("L", "LA", "RGB", "RGBA"):
        container = 8
    elif mode.startswith("I;16"):
        container = 16
    elif mode == "I":
        # 32-bit integer images: accept only data that fits 16 bits (e.g. 16-bit TIFF/PNG read as I).
        container = 16
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 65535):
            raise DataError(path, f"32-bit integer pixels outside 0..65535 (mode {mode})",
                            expected="8- or 16-bit unsigned grey levels")
    elif mode == "1":
        return np.asarray(arr, dtype=np.float32)
    else:
        raise DataError(path, f"unsupported image mode {mode!r}", expected="grey (L, I;16) or RGB pixels")
    if mode == "LA":
        arr = arr[..., 0]
    return _scale(path, _to_grey(path, arr), _validate_bits(path, bits_stored, container))


def _read_dicom(path: Path, bits_stored: int | None) -> np.ndarray:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(str(path), force=path.suffix.lower() in DICOM_SUFFIXES)
    except InvalidDicomError as exc:
        raise DataError(path, f"not a valid DICOM file ({exc})", expected="a DICOM Part 10 file") from exc
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise DataError(path, f"corrupt or truncated DICOM file ({exc})", expected="a DICOM Part 10 file") from exc
    if "PixelData" not in ds:
        raise DataError(path, "DICOM file has no PixelData element", expected="an image DICOM")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types (missing decoder, truncated fragments)
        raise DataError(path, f"DICOM pixel data cannot be decoded ({type(exc).__name__}: {exc})",
                        expected="decodable pixel data (JPEG needs Pillow/pylibjpeg)") from exc
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise DataError(path, f"multi-frame DICOM ({ds.NumberOfFrames} frames)", expected="a single radiograph")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    allocated = int(ds.get("BitsAllocated", 8 * arr.dtype.itemsize))
    stored = int(ds.get("BitsStored", allocated)) if bits_stored is None else int(bits_stored)
    if not 1 <= stored <= allocated:
        raise DataError(path, f"BitsStored {stored} outside 1..BitsAllocated ({allocated})",
                        expected="a consistent DICOM header")
    if arr.ndim == 3:  # colour: pydicom 3 already converts YBR to RGB in pixel_array
        arr = _to_grey(path, arr)
    elif photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DataError(path, f"unsupported PhotometricInterpretation {photometric!r}",
                        expected="MONOCHROME1, MONOCHROME2 or RGB")
    values = arr.astype(np.float64)
    if int(ds.get("PixelRepresentation", 0)) == 1:
        values = values + 2.0 ** (stored - 1)  # signed storage: shift to 0..2**bits - 1
    maxval = float(2**stored - 1)
    if values.size and (values.min() < 0 or values.max() > maxval):
        raise DataError(path, f"pixel values {values.min():g}..{values.max():g} exceed BitsStored={stored}",
                        expected=f"0..{maxval:g}")
    if photometric == "MONOCHROME1":
        values = maxval - values
    return (values / maxval).astype(np.float32)


def read_xray(path: str | Path, bits_stored: int | None = None) -> np.ndarray:
    """Decode a radiograph to a float32 ``H x W`` array in [0, 1].

    * PNG/JPEG (Pillow): 8-bit / 255, 16-bit / 65535, or ``/(2**bits_stored - 1)`` when the stored
      precision is given (e.g. 12-bit data in a 16-bit PNG); RGB with identical channels becomes
      one channel exactly, other colour images their luma; 16-bit colour PNGs keep 16 bits.
    * DICOM (pydicom; files named ``*.dcm``/``*.dicom`` or carrying the ``DICM`` magic): the
      header's ``BitsStored`` sets the scale (``bits_stored`` overrides it), signed pixels are
      shifted, MONOCHROME1 is inverted. Compressed transfer syntaxes decode through pydicom's
      plugins (JPEG baseline via Pillow).

    Missing, truncated or corrupt files raise :class:`DataError` naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "image file not found", expected=_EXPECTED)
    head = _sniff(path)
    if len(head) == 0:
        raise DataError(path, "image file is empty", expected=_EXPECTED)
    if path.suffix.lower() in DICOM_SUFFIXES or head[128:132] == b"DICM":
        img = _read_dicom(path, bits_stored)
    else:
        img = _read_pillow(path, head, bits_stored)
    if img.ndim != 2 or img.shape[0] == 0 or img.shape[1] == 0:
        raise DataError(path, f"decoded to an unusable array of shape {img.shape}", expected="H x W pixels")
    return np.ascontiguousarray(img, dtype=np.float32)
