"""Blurs and resizing against their references.

* ``gaussian_blur`` == ``scipy.ndimage.gaussian_filter`` for every boundary mode.
* ``mit_blur`` (antonioGaussian): the separable fast path equals the literal 2-D FFT, and a
  cosine at the cut-off frequency ``fc`` keeps half its amplitude (the definition of fc).
  Its use for the MIT CC rows is validated in ``test_metrics_saliency_mit_parity.py``.
* ``resize_prediction("bicubic_matlab")`` against MATLAB ``imresize`` outputs published in
  the GNU Octave image package test-suite (uint8 results, so agreement within 1 grey level).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter, zoom

from kdnas.metrics.saliency import gaussian_blur, imresize_scale, mit_blur, resize_prediction
from kdnas.metrics.saliency.blur import mit_blur_reference

# 8 x 10 test image and MATLAB imresize results (Octave image package imresize.m tests)
IM = np.array([[116, 227, 153, 69, 146, 194, 59, 130, 139, 106],
               [2, 47, 137, 249, 90, 75, 16, 24, 158, 44],
               [155, 68, 46, 84, 166, 156, 69, 204, 32, 152],
               [71, 221, 137, 230, 210, 153, 192, 115, 30, 118],
               [107, 143, 108, 52, 51, 73, 101, 21, 175, 90],
               [54, 158, 143, 77, 26, 168, 113, 229, 165, 225],
               [9, 47, 133, 135, 130, 207, 236, 43, 19, 73],
               [129, 60, 59, 243, 64, 181, 249, 56, 32, 86]], dtype=np.float64)
MATLAB_BICUBIC_X15 = np.array([
    [116, 187, 237, 171, 94, 61, 135, 191, 187, 75, 91, 142, 140, 124, 108],
    [43, 92, 143, 149, 164, 163, 119, 123, 118, 44, 38, 80, 151, 118, 62],
    [13, 21, 47, 107, 195, 228, 115, 81, 70, 24, 19, 56, 137, 105, 48],
    [146, 98, 49, 49, 71, 107, 148, 159, 132, 58, 124, 176, 61, 85, 146],
    [118, 139, 144, 92, 116, 168, 201, 188, 159, 140, 167, 158, 27, 69, 153],
    [61, 151, 218, 145, 174, 219, 201, 164, 146, 187, 148, 84, 48, 76, 115],
    [102, 132, 151, 119, 90, 72, 72, 72, 83, 114, 60, 31, 144, 130, 80],
    [81, 121, 154, 133, 87, 41, 19, 67, 116, 95, 108, 140, 183, 180, 163],
    [37, 95, 152, 150, 117, 73, 35, 108, 179, 130, 174, 214, 153, 176, 219],
    [3, 29, 73, 131, 136, 120, 116, 162, 214, 229, 147, 54, 35, 62, 96],
    [67, 54, 51, 83, 153, 187, 111, 141, 210, 255, 149, 22, 13, 42, 74],
    [142, 99, 53, 43, 164, 237, 77, 103, 197, 254, 159, 42, 31, 59, 91]])
MATLAB_BICUBIC_X05_NOAA = np.array([[92, 164, 123, 38, 118], [139, 116, 188, 167, 69],
                                    [121, 87, 67, 108, 180], [54, 153, 141, 149, 42]])
MATLAB_BICUBIC_X05_AA = np.array([[105, 140, 126, 81, 109], [110, 134, 153, 114, 93],
                                  [108, 108, 94, 127, 146], [67, 126, 162, 149, 62]])


def _as_uint8(x: torch.Tensor) -> np.ndarray:
    return np.clip(np.round(x[0].numpy()), 0, 255)


def test_imresize_enlarging_matches_matlab() -> None:
    out = resize_prediction(IM, (12, 15), "bicubic_matlab")
    assert np.abs(_as_uint8(out) - MATLAB_BICUBIC_X15).max() <= 1
    # enlarging: Octave and MATLAB agree exactly (cubic weights already sum to one)
    torch.testing.assert_close(resize_prediction(IM, (12, 15), "bicubic_octave"), out, rtol=0, atol=1e-12)


def test_imresize_shrinking_antialiases_like_matlab() -> None:
    aa = resize_prediction(IM, (4, 5), "bicubic_matlab")
    noaa = resize_prediction(IM, (4, 5), "bicubic_noaa")
    assert np.abs(_as_uint8(aa) - MATLAB_BICUBIC_X05_AA).max() <= 1
    assert np.abs(_as_uint8(noaa) - MATLAB_BICUBIC_X05_NOAA).max() <= 1
    # integer shrink factor: the unnormalised Octave weights still sum to one
    torch.testing.assert_close(resize_prediction(IM, (4, 5), "bicubic_octave"), aa, rtol=0, atol=1e-12)


def test_imresize_properties() -> None:
    rng = np.random.default_rng(0)
    m = rng.random((2, 13, 17))
    same = resize_prediction(m, (13, 17), "bicubic_matlab")
    torch.testing.assert_close(same, torch.from_numpy(m))
    const = resize_prediction(np.full((9, 7), 4.0), (20, 3), "bicubic_matlab")  # weights sum to one
    torch.testing.assert_close(const, torch.full((1, 20, 3), 4.0, dtype=torch.float64))
    batched = resize_prediction(m, (30, 11))
    for i in range(2):
        torch.testing.assert_close(batched[i], resize_prediction(m[i], (30, 11))[0])
    # non-integer shrink: Octave (unnormalised) differs slightly from MATLAB
    diff = resize_prediction(m, (9, 11), "bicubic_octave") - resize_prediction(m, (9, 11), "bicubic_matlab")
    assert 0 < float(diff.abs().max()) < 0.05
    # imresize(A, 1/32) keeps the scale and rounds the size up
    assert imresize_scale(np.ones((480, 650)), 1 / 32).shape == (1, 15, 21)


def test_scipy_zoom_modes_reproduce_the_references() -> None:
    rng = np.random.default_rng(1)
    m = rng.random((24, 32))
    np.testing.assert_allclose(resize_prediction(m, (48, 64), "cubic_zoom")[0].numpy(),
                               zoom(m, (2.0, 2.0), order=3), atol=1e-12)
    np.testing.assert_allclose(resize_prediction(m, (30, 40), "bilinear_zoom")[0].numpy(),
                               zoom(m, (30 / 24, 40 / 32), order=1, mode="nearest"), atol=1e-12)
    assert resize_prediction(m, (48, 64), preset="salicon").shape == (1, 48, 64)
    assert resize_prediction(m, (12, 16), "bilinear").shape == (1, 12, 16)
    assert resize_prediction(m, (12, 16), "nearest").shape == (1, 12, 16)


@pytest.mark.parametrize("mode", ["reflect", "constant", "nearest", "mirror", "wrap"])
@pytest.mark.parametrize("sigma", [0.8, 3.0, 19.0])
def test_gaussian_blur_equals_scipy(mode: str, sigma: float) -> None:
    rng = np.random.default_rng(2)
    m = rng.random((2, 40, 57))
    got = gaussian_blur(m, sigma, mode=mode).numpy()
    for i in range(2):
        np.testing.assert_allclose(got[i], gaussian_filter(m[i], sigma, mode=mode), rtol=0, atol=1e-12)


def test_gaussian_blur_anisotropic_and_truncate() -> None:
    rng = np.random.default_rng(3)
    m = rng.random((30, 30))
    np.testing.assert_allclose(gaussian_blur(m, (2.0, 5.0), truncate=2.5)[0].numpy(),
                               gaussian_filter(m, (2.0, 5.0), truncate=2.5), atol=1e-12)


def test_mit_blur_fast_path_equals_the_literal_fft() -> None:
    rng = np.random.default_rng(4)
    for shape, fcs in (((37, 21), (2.0, 8.0, 30.0)), ((64, 64), (2.0, 8.0, 30.0)), ((240, 320), (8.0,))):
        m = (rng.random((2, *shape)) < 0.02).astype(np.float64)
        for fc in fcs:
            torch.testing.assert_close(mit_blur(m, fc), mit_blur_reference(m, fc), rtol=0, atol=1e-14)


def test_mit_blur_halves_a_cosine_at_the_cutoff() -> None:
    """fc is the -6 dB frequency in cycles per image: amplitude 1 -> 0.5 away from the borders."""
    n, fc = 256, 8
    x = np.arange(n)
    wave = np.cos(2 * np.pi * fc * x / n)[None, :].repeat(n, axis=0)
    out = mit_blur(wave, fc=fc)[0].numpy()
    centre = out[96:160, 96:160] / wave[96:160, 96:160].clip(0.5, None)
    peaks = wave[96:160, 96:160] > 0.99
    np.testing.assert_allclose(centre[peaks], 0.5, atol=0.01)
    low = mit_blur(np.cos(2 * np.pi * 1 * x / n)[None, :].repeat(n, axis=0), fc=fc)[0].numpy()
    assert low[128, 0 + 128] == pytest.approx(np.cos(2 * np.pi * 128 / n) * 2 ** (-(1 / fc) ** 2), abs=0.01)
