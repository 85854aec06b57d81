"""Resizing predictions to the stimulus size, with each reference's interpolation.

Only predictions are resized; ground-truth maps and fixation coordinates never are.

Interpolation modes:

``bicubic_matlab`` (``mit``)
    MATLAB ``imresize(map, [H W])`` (default ``'bicubic'``): Keys cubic kernel a = -0.5,
    output pixel ``x`` samples input coordinate ``x/scale + 0.5(1 - 1/scale)`` (1-based),
    symmetric edge extension (the edge pixel repeats), and **antialiasing when shrinking**:
    the kernel is stretched by ``1/scale`` and the weights of each output pixel are
    renormalised to sum to one. Implemented as two dense weight matrices
    (``W_rows @ map @ W_cols^T``), exact to float rounding (tested against MATLAB outputs).
``bicubic_octave``
    GNU Octave image package >= 2.14 ``imresize``: identical, except that antialiased
    weights are not renormalised. Equal to ``bicubic_matlab`` when enlarging or shrinking by
    an integer factor; it is what produced the reference CSV values under Octave.
``bicubic_noaa``
    MATLAB ``imresize(..., 'Antialiasing', false)``.
``bilinear_zoom`` (``pysaliency``)
    ``scipy.ndimage.zoom(map, factors, order=1, mode='nearest')`` — pysaliency's
    ``ResizingSaliencyMapModel`` (the Tuebingen benchmark itself requires exact-size maps).
``cubic_zoom`` (``salicon``)
    ``scipy.ndimage.zoom(map, factors, order=3)`` as the SALICON API does (in float64; the
    API zooms the decoded 8-bit map, which re-quantises and clips the overshoot).
``bilinear`` / ``nearest``
    ``torch.nn.functional.interpolate`` (``align_corners=False``; ``nearest-exact``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .core import as_maps, check_finite
from .presets import MetricPreset, get_preset

MODES = ("bicubic_matlab", "bicubic_octave", "bicubic_noaa", "bilinear_zoom", "cubic_zoom", "bilinear", "nearest")
#: one line per interpolation mode, for reports (``resize_prediction`` documents them in full)
MODE_DESCRIPTIONS: dict[str, str] = {
    "bicubic_matlab": "MATLAB imresize bicubic (a=-0.5, antialiased when shrinking, symmetric edges)",
    "bicubic_octave": "GNU Octave imresize bicubic (antialias weights not renormalised)",
    "bicubic_noaa": "MATLAB imresize bicubic without antialiasing",
    "bilinear_zoom": "scipy.ndimage.zoom order=1, mode='nearest' (pysaliency ResizingSaliencyMapModel)",
    "cubic_zoom": "scipy.ndimage.zoom order=3 (SALICON API)",
    "bilinear": "torch bilinear, align_corners=False",
    "nearest": "torch nearest-exact",
}


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def imresize_weights(in_len: int, out_len: int, *, antialias: bool = True, normalize: bool = True,
                     scale: float | None = None) -> np.ndarray:
    """``out_len x in_len`` matrix of MATLAB ``imresize`` bicubic weights along one axis.

    ``scale`` defaults to ``out_len / in_len`` (``imresize(A, [M N])``); pass it for
    ``imresize(A, scale)``, where MATLAB uses the given factor and ``ceil(in * scale)`` outputs.
    """
    scale = out_len / in_len if scale is None else float(scale)
    width = 4.0
    if scale < 1 and antialias:
        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * x)
        width = width / scale
    else:
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    weights = kernel(u[:, None] - idx)
    if normalize:
        weights = weights / weights.sum(axis=1, keepdims=True)
    # symmetric extension with the edge repeated: [1..n, n..1] periodically (1-based)
    aux = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    src = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_len)[:, None], src.shape)
    np.add.at(mat, (rows, src), weights)
    return mat


def _resize_matrix(maps: torch.Tensor, size: tuple[int, int], antialias: bool, normalize: bool,
                   scale: float | None = None) -> torch.Tensor:
    b, h, w = maps.shape
    out = maps
    if w != size[1] or (scale is not None and scale != 1):
        wc = torch.from_numpy(imresize_weights(w, size[1], antialias=antialias, normalize=normalize, scale=scale))
        out = torch.matmul(out, wc.to(device=maps.device, dtype=maps.dtype).T)
    if h != size[0] or (scale is not None and scale != 1):
        wr = torch.from_numpy(imresize_weights(h, size[0], antialias=antialias, normalize=normalize, scale=scale))
        out = torch.matmul(wr.to(device=maps.device, dtype=maps.dtype), out)
    return out


def imresize_scale(maps: Any, scale: float, *, antialias: bool = True, normalize: bool = True,
                   dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """MATLAB ``imresize(map, scale)`` (bicubic): output ``ceil(size * scale)``, weights at ``scale``."""
    x = as_maps(maps, name="imresize_scale: map", dtype=dtype)
    size = (math.ceil(x.shape[1] * scale), math.ceil(x.shape[2] * scale))
    return _resize_matrix(x, size, antialias, normalize, scale=scale)


def _resize_zoom(maps: torch.Tensor, size: tuple[int, int], order: int, mode: str) -> torch.Tensor:
    from scipy.ndimage import zoom

    b, h, w = maps.shape
    arr = maps.detach().cpu().to(torch.float64).numpy()
    factors = (size[0] / h, size[1] / w)
    out = np.stack([zoom(arr[i], factors, order=order, mode=mode) for i in range(b)])
    if out.shape[1:] != tuple(size):
        raise ValueError(f"resize_prediction: scipy zoom produced {out.shape[1:]} instead of {tuple(size)} "
                         f"from {h} x {w}")
    return torch.from_numpy(out).to(device=maps.device, dtype=maps.dtype)


def resize_prediction(pred: Any, size: tuple[int, int], mode: str | None = None, *,
                      preset: str | MetricPreset = "mit", dtype: torch.dtype = torch.float64,
                      keep_constant: bool = True) -> torch.Tensor:
    """Resize ``B x H x W`` (or ``H x W``) predictions to ``size = (height, width)``.

    ``mode`` defaults to the preset's interpolation (``mit``: ``bicubic_matlab``,
    ``pysaliency``: ``bilinear_zoom``, ``salicon``: ``cubic_zoom``); see the module docstring.
    A map already at ``size`` is returned unchanged (cast to ``dtype``).

    A map that is constant as given stays exactly constant (``keep_constant``, default):
    interpolation would otherwise add ~1e-16 rounding noise (MATLAB's normalised kernels) or
    bend it at the borders (Octave's unnormalised shrink, SALICON's zero-padded spline), and a
    constant prediction would no longer score the documented constant-map values (e.g. NSS
    NaN under ``mit``). Constancy is tested exactly, on the map before resizing.
    """
    mode = get_preset(preset).interpolation if mode is None else mode
    if mode not in MODES:
        raise ValueError(f"resize_prediction: unknown interpolation {mode!r}; choose one of {list(MODES)}")
    maps = as_maps(pred, name="resize_prediction: prediction", dtype=dtype)
    check_finite(maps, metric="resize_prediction")
    size = (int(size[0]), int(size[1]))
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"resize_prediction: target size must be positive, got {size}")
    if tuple(maps.shape[1:]) == size:
        return maps
    out = _resize(maps, size, mode)
    if keep_constant:
        flat = maps.flatten(1)
        const = flat.amin(dim=1) == flat.amax(dim=1)
        if bool(const.any()):
            out[const] = flat[const, :1, None].expand(-1, size[0], size[1]).to(out.dtype)
    return out


def _resize(maps: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """``B x H x W`` maps resized with one of :data:`MODES`."""
    if mode == "bicubic_matlab":
        return _resize_matrix(maps, size, antialias=True, normalize=True)
    if mode == "bicubic_octave":
        return _resize_matrix(maps, size, antialias=True, normalize=False)
    if mode == "bicubic_noaa":
        return _resize_matrix(maps, size, antialias=False, normalize=True)
    if mode == "bilinear_zoom":
        return _resize_zoom(maps, size, order=1, mode="nearest")
    if mode == "cubic_zoom":
        return _resize_zoom(maps, size, order=3, mode="constant")
    if mode == "bilinear":
        return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return F.interpolate(maps[:, None], size=size, mode="nearest-exact")[:, 0]
