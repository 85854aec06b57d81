"""read_xray on real NIH PNGs, the real JPEG-compressed SIIM DICOM, and crafted edge cases."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from kdnas.data.cxr.image_io import read_xray
from kdnas.utils.errors import DataError

DICOM_NAME = "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"


def _write_dicom(path: Path, pixels: np.ndarray, *, photometric: str, bits_stored: int,
                 signed: bool = False) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = pixels.astype(np.int16 if signed else np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_nih_8bit_png_matches_pillow(shared_data):
    path = shared_data / "cxr/nih/images/00000001_000.png"
    img = read_xray(path)
    ref = np.asarray(Image.open(path), dtype=np.float64) / 255.0
    assert img.dtype == np.float32 and img.shape == (1024, 1024)
    np.testing.assert_allclose(img, ref, rtol=0, atol=1e-7)


def test_rgb_png_with_identical_channels_becomes_one_channel(shared_data):
    path = shared_data / "cxr/nih/images-64/00000181_061.png"
    rgb = np.asarray(Image.open(path))
    assert rgb.shape == (64, 64, 3) and (rgb[..., 0] == rgb[..., 2]).all()
    img = read_xray(path)
    assert img.shape == (64, 64)
    np.testing.assert_array_equal(img, rgb[..., 0].astype(np.float32) / np.float32(255))


def test_colour_png_uses_luma(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    expected = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0
    np.testing.assert_allclose(read_xray(tmp_path / "c.png"), expected, atol=1e-6)


def test_16bit_png_full_range_and_bits_stored(tmp_path):
    rng = np.random.default_rng(1)
    full = rng.integers(0, 65536, size=(20, 30), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "full.png"), full)
    np.testing.assert_allclose(read_xray(tmp_path / "full.png"), full / 65535.0, atol=1e-7)

    twelve = rng.integers(0, 4096, size=(20, 30), dtype=np.uint16)
    twelve[0, 0] = 4095
    cv2.imwrite(str(tmp_path / "twelve.png"), twelve)
    np.testing.assert_allclose(read_xray(tmp_path / "twelve.png", bits_stored=12), twelve / 4095.0, atol=1e-7)
    np.testing.assert_allclose(read_xray(tmp_path / "twelve.png"), twelve / 65535.0, atol=1e-7)
    # a wrong BitsStored is reported, not clipped away
    with pytest.raises(DataError, match="exceeds"):
        read_xray(tmp_path / "full.png", bits_stored=12)


def test_16bit_colour_png_keeps_precision(tmp_path):
    grey = np.arange(0, 65535, 257 * 3, dtype=np.uint16)[:80].reshape(8, 10)
    cv2.imwrite(str(tmp_path / "rgb16.png"), np.stack([grey] * 3, axis=-1))
    np.testing.assert_allclose(read_xray(tmp_path / "rgb16.png"), grey / 65535.0, atol=1e-7)


def test_jpeg_grey(tmp_path):
    x = np.tile(np.linspace(0, 255, 32), (24, 1)).astype(np.uint8)
    Image.fromarray(x).save(tmp_path / "g.jpg", quality=95)
    img = read_xray(tmp_path / "g.jpg")
    np.testing.assert_allclose(img, np.asarray(Image.open(tmp_path / "g.jpg")) / 255.0, atol=1e-7)
    assert np.abs(img - x / 255.0).max() < 0.05  # JPEG loss is small at quality 95


def test_real_jpeg_baseline_dicom(shared_data):
    img = read_xray(shared_data / "cxr/dicom" / DICOM_NAME)
    assert img.shape == (1024, 1024) and img.dtype == np.float32
    # data README: decoded with Pillow the uint8 array has min 0, max 254, mean 160.398
    assert img.min() == 0.0
    assert img.max() == pytest.approx(254 / 255, abs=1e-7)
    assert float(img.astype(np.float64).mean()) * 255 == pytest.approx(160.398, abs=1e-3)


def test_dicom_monochrome1_inverted_with_bits_stored(tmp_path):
    pix = np.array([[0, 1000, 4095], [2048, 17, 3000]], dtype=np.uint16)
    path = _write_dicom(tmp_path / "m1.dcm", pix, photometric="MONOCHROME1", bits_stored=12)
    np.testing.assert_allclose(read_xray(path), (4095 - pix) / 4095.0, atol=1e-7)
    path2 = _write_dicom(tmp_path / "m2.dcm", pix, photometric="MONOCHROME2", bits_stored=12)
    np.testing.assert_allclose(read_xray(path2), pix / 4095.0, atol=1e-7)
    # detected by the DICM magic even without a .dcm suffix
    renamed = tmp_path / "noext"
    renamed.write_bytes(path2.read_bytes())
    np.testing.assert_allclose(read_xray(renamed), pix / 4095.0, atol=1e-7)


def test_dicom_signed_pixels_are_shifted(tmp_path):
    pix = np.array([[-2048, 0, 2047]], dtype=np.int16)
    path = _write_dicom(tmp_path / "s.dcm", pix, photometric="MONOCHROME2", bits_stored=12, signed=True)
    np.testing.assert_allclose(read_xray(path), (pix + 2048) / 4095.0, atol=1e-7)


def test_dicom_bits_above_bits_stored_are_not_image_data(tmp_path):
    # bits above BitsStored (old overlay planes) are masked by pydicom, so the scale stays 0..4095
    pix = np.array([[0, 5000]], dtype=np.uint16)
    path = _write_dicom(tmp_path / "high.dcm", pix, photometric="MONOCHROME2", bits_stored=12)
    np.testing.assert_allclose(read_xray(path), (pix & 0x0FFF) / 4095.0, atol=1e-7)


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage", "truncated_png", "truncated_dcm",
                                  "not_dicom", "directory"])
def test_bad_files_raise_data_error_naming_the_file(kind, tmp_path, shared_data):
    png = (shared_data / "cxr/nih/images/00000002_000.png").read_bytes()
    dcm = (shared_data / "cxr/dicom" / DICOM_NAME).read_bytes()
    path = tmp_path / {"truncated_dcm": "x.dcm", "not_dicom": "y.dcm", "directory": "d.png"}.get(kind, "x.png")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"this is not an image" * 10)
    elif kind == "truncated_png":
        path.write_bytes(png[: len(png) // 2])
    elif kind == "truncated_dcm":
        path.write_bytes(dcm[: len(dcm) // 3])
    elif kind == "not_dicom":
        path.write_bytes(png)
    elif kind == "directory":
        path.mkdir()
    with pytest.raises(DataError) as err:
        read_xray(path)
    assert str(path) in str(err.value)
    assert err.value.path == path


def test_pydicom_agrees_on_real_dicom_header(shared_data):
    ds = pydicom.dcmread(shared_data / "cxr/dicom" / DICOM_NAME)
    assert ds.PhotometricInterpretation == "MONOCHROME2" and int(ds.BitsStored) == 8
