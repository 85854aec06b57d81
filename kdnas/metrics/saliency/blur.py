"""Blurs that turn fixation maps into empirical saliency maps.

``mit_blur`` is the MIT benchmark's ``antonioGaussian`` (Fourier-domain Gaussian with a
cut-off in cycles per image); ``gaussian_blur`` is ``scipy.ndimage.gaussian_filter``
(SALICON sigma 19, Tuebingen sigma 24/40/30 px, OSIE 24 px with zero padding).
Both work on ``B x H x W`` tensors and are exact ports (tested against the references).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .core import as_maps

# Kernels up to this many taps use direct convolution, longer ones the FFT (same values to
# ~1e-16 of the map's range; the FFT leaves +-1e-17-sized values where the direct sum gives 0).
_DIRECT_TAPS = 31


def _antonio_size(h: int, w: int) -> int:
    """antonioGaussian's working size: the larger side, rounded up to even, then to a power of two."""
    n = max(h, w)
    n = n + n % 2
    return 1 << max(0, math.ceil(math.log2(n)))


def mit_blur(fixation_map: Any, fc: float = 8.0, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """MIT ``antonioGaussian(img, fc)``: Gaussian low-pass with cut-off ``fc`` cycles per image (-6 dB).

    Let ``n`` be the larger side rounded up to even and then to a power of two. The map is
    zero-padded into a ``2n x 2n`` array at offset ``(n, n)``; the transfer function
    ``exp(-(fx^2 + fy^2) / s^2)``, ``s = 2 fc / sqrt(ln 2)``, sampled on ``fx, fy`` in
    ``-n/2 .. n/2-1``, sits in the centre of a ``2n x 2n`` array that is ``fftshift``-ed to the
    corner; the output is the real part of the inverse FFT, cropped back at ``(n, n)``. The
    filter therefore acts cyclically on the padded array and leaves tiny negative ringing.
    """
    maps = as_maps(fixation_map, name="mit_blur: fixation map", dtype=dtype)
    b, h, w = maps.shape
    n = _antonio_size(h, w)
    n2 = 2 * n
    s = (n2 // n) * fc / math.sqrt(math.log(2.0))
    # the transfer function is a product of 1-D windows, so the 2-D cyclic filter is two 1-D
    # cyclic filters; only the rows/columns holding the image are transformed (same values as
    # the full 2n x 2n FFT, ~4x less work). Stay complex until the end: the -n/2 frequency
    # makes the 1-D filters slightly non-Hermitian, exactly as in the MATLAB code.
    f = torch.arange(n, dtype=dtype, device=maps.device) - n / 2
    g = torch.zeros(n2, dtype=dtype, device=maps.device)
    g[n2 // 2 - n // 2:n2 // 2 + n // 2] = torch.exp(-(f ** 2) / s ** 2)
    g = torch.fft.fftshift(g)
    rows = torch.zeros((b, h, n2), dtype=dtype, device=maps.device)
    rows[:, :, n:n + w] = maps
    rows = torch.fft.ifft(torch.fft.fft(rows, dim=-1) * g, dim=-1)[:, :, n:n + w]
    cols = torch.zeros((b, n2, w), dtype=rows.dtype, device=maps.device)
    cols[:, n:n + h, :] = rows
    cols = torch.fft.ifft(torch.fft.fft(cols, dim=-2) * g[:, None], dim=-2)[:, n:n + h, :]
    return cols.real.contiguous()


def mit_blur_reference(fixation_map: Any, fc: float = 8.0, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Literal 2-D version of :func:`mit_blur` (full ``2n x 2n`` FFT), kept to test the fast one."""
    maps = as_maps(fixation_map, name="mit_blur: fixation map", dtype=dtype)
    b, h, w = maps.shape
    n = _antonio_size(h, w)
    n2 = 2 * n
    padded = torch.zeros((b, n2, n2), dtype=dtype, device=maps.device)
    padded[:, n:n + h, n:n + w] = maps
    f = torch.arange(n, dtype=dtype, device=maps.device) - n / 2
    s = (n2 // n) * fc / math.sqrt(math.log(2.0))
    gf = torch.exp(-(f[None, :] ** 2 + f[:, None] ** 2) / s ** 2)
    gf2 = torch.zeros((n2, n2), dtype=dtype, device=maps.device)
    gf2[n2 // 2 - n // 2:n2 // 2 + n // 2, n2 // 2 - n // 2:n2 // 2 + n // 2] = gf
    gf2 = torch.fft.fftshift(gf2)
    blurred = torch.fft.ifft2(torch.fft.fft2(padded) * gf2).real
    return blurred[:, n:n + h, n:n + w].contiguous()


def _pad_index(length: int, radius: int, mode: str, device: torch.device) -> torch.Tensor:
    """Source index for each padded position, following scipy.ndimage boundary modes."""
    i = torch.arange(-radius, length + radius, device=device)
    if mode == "reflect":  # d c b a | a b c d | d c b a
        period = 2 * length
        m = torch.remainder(i, period)
        return torch.where(m < length, m, period - 1 - m)
    if mode == "mirror":  # d c b | a b c d | c b a
        if length == 1:
            return torch.zeros_like(i)
        period = 2 * length - 2
        m = torch.remainder(i, period)
        return torch.where(m < length, m, period - m)
    if mode == "nearest":
        return i.clamp(0, length - 1)
    if mode in ("wrap", "grid-wrap"):
        return torch.remainder(i, length)
    raise ValueError(f"gaussian_blur: unsupported mode {mode!r} (use reflect, mirror, nearest, wrap or constant)")


def _blur_axis(x: torch.Tensor, kernel: torch.Tensor, mode: str, cval: float) -> torch.Tensor:
    """Correlate the last axis of ``x`` (``R x L``) with a symmetric ``kernel`` (odd length)."""
    radius = kernel.numel() // 2
    rows, length = x.shape
    if mode == "constant":
        padded = F.pad(x, (radius, radius), value=cval)
    else:
        padded = x.index_select(1, _pad_index(length, radius, mode, x.device))
    if kernel.numel() <= _DIRECT_TAPS:
        return F.conv1d(padded.unsqueeze(1), kernel.view(1, 1, -1)).squeeze(1)
    # long kernels: linear convolution through the FFT (CPU float64 conv1d is ~15x slower);
    # the kernel is symmetric, so convolution equals correlation, shifted by 2 * radius
    n = padded.shape[1] + kernel.numel() - 1
    spec = torch.fft.rfft(padded, n=n, dim=1) * torch.fft.rfft(kernel, n=n)
    full = torch.fft.irfft(spec, n=n, dim=1)
    return full[:, 2 * radius:2 * radius + length].contiguous()


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``scipy.ndimage`` Gaussian weights: radius ``int(truncate * sigma + 0.5)``, normalised to 1."""
    radius = int(truncate * float(sigma) + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 / (float(sigma) ** 2) * x ** 2)
    return (k / k.sum()).to(dtype)


def gaussian_blur(maps: Any, sigma: float, *, mode: str = "reflect", truncate: float = 4.0, cval: float = 0.0,
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``scipy.ndimage.gaussian_filter(map, sigma, mode=mode, truncate=truncate)`` for each map.

    ``sigma`` in pixels (a pair ``(sigma_y, sigma_x)`` is accepted); ``mode`` as scipy
    (``reflect`` is scipy's default and SALICON's; ``constant`` zero-pads like the OSIE recipe).
    """
    x = as_maps(maps, name="gaussian_blur: map", dtype=dtype)
    sy, sx = (sigma, sigma) if not isinstance(sigma, (tuple, list)) else sigma
    b, h, w = x.shape
    out = x
    if sx > 0:
        kx = gaussian_kernel1d(sx, truncate, dtype=dtype).to(x.device)
        out = _blur_axis(out.reshape(b * h, w), kx, mode, cval).view(b, h, w)
    if sy > 0:
        ky = gaussian_kernel1d(sy, truncate, dtype=dtype).to(x.device)
        out = _blur_axis(out.transpose(1, 2).reshape(b * w, h), ky, mode, cval).view(b, w, h).transpose(1, 2)
    return out.contiguous()
