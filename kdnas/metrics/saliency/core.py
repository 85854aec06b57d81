"""Batched primitives shared by the saliency metrics: input coercion, guards, fixations.

Maps are handled as ``B x H x W`` tensors (a single ``H x W`` map is a batch of one).
Fixations are 0-based ``(x, y)`` coordinates per image, or a ``B x H x W`` count map;
both become a :class:`FixationSet`: flat pixel indices grouped by image, with a weight
per entry (the fixation count, or 1 after duplicates collapse).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

ArrayLike = Any  # torch.Tensor | np.ndarray | nested sequences


def as_maps(x: ArrayLike, *, name: str, dtype: torch.dtype | None = torch.float64,
            device: torch.device | str | None = None) -> torch.Tensor:
    """Return ``x`` as a ``B x H x W`` floating tensor (``H x W`` becomes ``1 x H x W``).

    Integer inputs (8-bit maps) are cast to ``dtype`` first: the MIT code on uint8 maps
    gives wrong AUC values through integer arithmetic (metrics.md pitfall 12).
    ``dtype=None`` keeps the input's dtype (for callers that convert chunk by chunk).
    """
    if isinstance(x, np.ndarray):
        # read-only arrays (e.g. memory-mapped or cached) are copied: torch wants writable memory
        t = torch.from_numpy(np.ascontiguousarray(x) if x.flags.writeable else np.array(x))
    elif isinstance(x, torch.Tensor):
        t = x
    else:
        t = torch.as_tensor(np.asarray(x))
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3:
        raise ValueError(f"{name}: expected an H x W or B x H x W map, got shape {tuple(t.shape)}")
    if t.shape[1] == 0 or t.shape[2] == 0:
        raise ValueError(f"{name}: empty map of shape {tuple(t.shape)}")
    return t.to(device=device if device is not None else t.device, dtype=dtype)


def check_finite(maps: torch.Tensor, *, metric: str, name: str = "prediction") -> torch.Tensor:
    """Raise ``ValueError`` naming the metric and the first image holding NaN or inf.

    Returns the per-image sums (``(B,)``), which callers reuse.
    """
    # a NaN or inf always makes the row sum non-finite, so one cheap reduction clears the
    # common case; the element-wise test only runs when a sum is not finite
    sums = maps.flatten(1).sum(dim=1)
    if bool(torch.isfinite(sums).all()):
        return sums
    bad = ~torch.isfinite(maps).flatten(1).all(dim=1)
    if bool(bad.any()):
        idx = int(torch.nonzero(bad)[0, 0])
        kind = "NaN" if bool(torch.isnan(maps[idx]).any()) else "infinite values"
        raise ValueError(f"{metric}: {name} of image {idx} contains {kind}")
    return sums


def check_same_shape(a: torch.Tensor, b: torch.Tensor, *, metric: str, names: tuple[str, str]) -> None:
    """Raise ``ValueError`` stating both shapes when two map batches differ."""
    if a.shape != b.shape:
        raise ValueError(f"{metric}: {names[0]} has shape {tuple(a.shape)} but {names[1]} has shape "
                         f"{tuple(b.shape)}; resize the prediction first (resize_prediction) — kdnas never "
                         "resizes ground truth or fixations")


def per_image_minmax(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``(min, max)`` of a ``B x N`` tensor (separate reductions: faster than aminmax on CPU)."""
    return flat.amin(dim=1), flat.amax(dim=1)


def fast_log_(x: torch.Tensor) -> torch.Tensor:
    """In-place natural log; on the CPU in float64 it uses NumPy's vectorised kernel (~3x torch's there)."""
    if x.device.type == "cpu" and x.dtype == torch.float64 and not x.requires_grad and x.is_contiguous():
        arr = x.numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            np.log(arr, out=arr)
        return x
    return x.log_()


def is_constant(flat: torch.Tensor) -> torch.Tensor:
    """Boolean ``(B,)``: the row holds one value (exact test; a float mean would not be)."""
    mn, mx = per_image_minmax(flat)
    return mn == mx


class Scratch:
    """Reusable work buffers for a sequence of same-sized chunks.

    Freshly allocated multi-megabyte tensors may be page-faulted in on first touch; reusing
    a few buffers across chunks keeps the per-pixel passes in warm memory.
    """

    def __init__(self) -> None:
        self._bufs: dict[str, torch.Tensor] = {}
        #: constant tensors built once per batch (e.g. index patterns)
        self.cached: dict[str, torch.Tensor] = {}

    def get(self, key: str, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """A buffer shaped like ``like`` (rows may be fewer than the first request's)."""
        dtype = like.dtype if dtype is None else dtype
        buf = self._bufs.get(key)
        rows, cols = like.shape
        if buf is None or buf.dtype != dtype or buf.shape[1] != cols or buf.shape[0] < rows or buf.device != like.device:
            buf = torch.empty((rows, cols), dtype=dtype, device=like.device)
            self._bufs[key] = buf
        return buf[:rows]


def rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row dot products of two ``B x N`` tensors.

    float64: BLAS, no temporaries (sequential accumulation is accurate to ~N * 1e-16).
    Lower precisions: an explicit product and torch's cascaded sum, because a float32 BLAS
    dot over 3e5 pixels can lose four digits.
    """
    if a.dtype != torch.float64:
        return (a * b).sum(dim=1)
    if a.shape[0] == 1:
        return torch.dot(a.view(-1), b.view(-1)).view(1)
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)


def trapz_rows(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Trapezoid rule along the last dimension (``numpy.trapezoid(y, x)`` / MATLAB ``trapz(x, y)``)."""
    dx = x[..., 1:] - x[..., :-1]
    return (dx * (y[..., 1:] + y[..., :-1])).sum(dim=-1) / 2


# ----------------------------------------------------------------------------------------
# fixations


@dataclass
class FixationSet:
    """Fixations of a batch as flat pixel indices grouped by image.

    ``image[k]`` is the batch index and ``flat[k] = y * W + x`` the pixel of entry ``k``;
    ``weight[k]`` its count (1 when duplicates collapse). Entries are sorted by image.
    ``total[b]`` is the summed weight of image ``b`` (0 when it has no fixations).
    """

    image: torch.Tensor
    flat: torch.Tensor
    weight: torch.Tensor
    total: torch.Tensor
    batch: int
    height: int
    width: int
    _offsets: list[int] | None = field(default=None, repr=False, compare=False)
    _keys: torch.Tensor | None = field(default=None, repr=False, compare=False)
    _unit: bool | None = field(default=None, repr=False, compare=False)

    @property
    def num_pixels(self) -> int:
        return self.height * self.width

    @property
    def offsets(self) -> list[int]:
        """Entry offsets: image ``b``'s entries are ``offsets[b]:offsets[b + 1]``."""
        if self._offsets is None:
            counts = torch.bincount(self.image, minlength=self.batch)
            self._offsets = [0, *torch.cumsum(counts, 0).tolist()]
        return self._offsets

    @property
    def unit_weights(self) -> bool:
        """Every entry has weight 1 (coordinates, or collapsed duplicates)."""
        if self._unit is None:
            self._unit = bool((self.weight == 1).all())
        return self._unit

    @property
    def keys(self) -> torch.Tensor:
        """Flat index of every entry into the ``B * H * W`` batch (``image * H * W + flat``)."""
        if self._keys is None:
            self._keys = self.image * self.num_pixels + self.flat
        return self._keys

    def rows(self, start: int, stop: int) -> FixationSet:
        """The fixations of images ``start:stop`` (entries are grouped by image, so a slice)."""
        if (start, stop) == (0, self.batch):
            return self
        a, b = self.offsets[start], self.offsets[stop]
        return FixationSet(self.image[a:b] - start, self.flat[a:b], self.weight[a:b], self.total[start:stop],
                           stop - start, self.height, self.width)

    def values(self, flat_maps: torch.Tensor) -> torch.Tensor:
        """Map values at every entry, from ``B x (H*W)`` maps."""
        return flat_maps.reshape(-1).index_select(0, self.keys)

    def per_image_sum(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of per-entry values ``x`` within each image -> ``(B,)`` (accumulated in float64)."""
        if x.device.type != "cpu" or x.requires_grad or not x.numel():
            out = torch.zeros(self.batch, dtype=torch.float64, device=x.device)
            return out.index_add_(0, self.image, x.to(torch.float64)).to(x.dtype)
        # entries are grouped by image: segment sums, several times cheaper than index_add_ on the CPU
        offsets = np.asarray(self.offsets)
        filled = offsets[1:] > offsets[:-1]  # reduceat would return an element for an empty segment
        out = np.zeros(self.batch)
        out[filled] = np.add.reduceat(x.detach().to(torch.float64).contiguous().numpy(), offsets[:-1][filled])
        return torch.from_numpy(out).to(x.dtype)

    def collapsed(self) -> FixationSet:
        """Distinct fixated pixels with weight 1 (a binary fixation map)."""
        keys = self.image * self.num_pixels + self.flat
        cells = self.batch * self.num_pixels
        if cells <= (1 << 28):  # a pixel mask is cheaper than sorting the keys
            mask = torch.zeros(cells, dtype=torch.bool, device=keys.device)
            mask[keys] = True
            # NumPy's flatnonzero is several times torch.nonzero's speed on the CPU
            uniq = (torch.from_numpy(np.flatnonzero(mask.numpy())) if mask.device.type == "cpu"
                    else torch.nonzero(mask)[:, 0])
        else:
            uniq = torch.unique(keys)
        image = torch.div(uniq, self.num_pixels, rounding_mode="floor")
        weight = torch.ones(uniq.numel(), dtype=self.weight.dtype, device=uniq.device)
        total = torch.bincount(image, minlength=self.batch).to(self.weight.dtype)
        return FixationSet(image, uniq - image * self.num_pixels, weight, total, self.batch, self.height, self.width)

    def count_map(self) -> torch.Tensor:
        """``B x H x W`` tensor of summed weights."""
        out = torch.zeros(self.batch * self.num_pixels, dtype=self.weight.dtype, device=self.weight.device)
        out.index_add_(0, self.image * self.num_pixels + self.flat, self.weight)
        return out.view(self.batch, self.height, self.width)

    def pixel_mask(self) -> torch.Tensor:
        """``B x (H*W)`` boolean map of fixated pixels."""
        mask = torch.zeros(self.batch * self.num_pixels, dtype=torch.bool, device=self.flat.device)
        mask[self.image * self.num_pixels + self.flat] = True
        return mask.view(self.batch, self.num_pixels)


def _coords_to_pixels(xy: torch.Tensor, height: int, width: int, rounding: str, *, metric: str,
                      image: torch.Tensor) -> torch.Tensor:
    """0-based ``(x, y)`` float coordinates -> flat pixel indices, with bounds checks.

    ``image`` holds each point's image index (used in error messages).
    """
    if xy.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=xy.device)
    finite = torch.isfinite(xy).all(dim=1)
    if not bool(finite.all()):
        k = int(torch.nonzero(~finite)[0, 0])
        raise ValueError(f"{metric}: fixations of image {int(image[k])} contain NaN or infinite coordinates")
    # valid: inside the image, [0, W) x [0, H); "round" (pixel centres at integers, like
    # MATLAB round) also accepts [-0.5, 0) and clips [W - 0.5, W) to the last pixel, as the
    # OSIE/MIT recipes round and clip
    lower = 0.0 if rounding == "floor" else -0.5
    x, y = xy[:, 0], xy[:, 1]
    bad = (x < lower) | (x >= width) | (y < lower) | (y >= height)
    pix = torch.floor(xy) if rounding == "floor" else torch.floor(xy + 0.5)
    px, py = pix[:, 0].long().clamp_(0, width - 1), pix[:, 1].long().clamp_(0, height - 1)
    if bool(bad.any()):
        k = int(torch.nonzero(bad)[0, 0])
        first = int(torch.nonzero(image == image[k])[0, 0])
        raise ValueError(
            f"{metric}: fixation {k - first} of image {int(image[k])} at (x={float(xy[k, 0]):.6g}, "
            f"y={float(xy[k, 1]):.6g}) lies outside the {height} x {width} map (0-based (x, y) coordinates "
            f"with {rounding!r} pixel rounding expected; convert 1-based dataset coordinates in the loader)")
    return py * width + px


def _pixels_in_bounds(xy: np.ndarray, height: int, width: int, rounding: str) -> np.ndarray | None:
    """Flat pixel indices (int64) of ``N x 2`` 0-based ``(x, y)``, or ``None`` if any point is invalid.

    The fast path of :func:`_coords_to_pixels` (same pixels): a few vectorised NumPy passes,
    with the bounds checked on the column extrema (NaN fails every comparison).
    """
    if not len(xy):
        return np.zeros(0, dtype=np.int64)
    x, y = np.ascontiguousarray(xy.T)
    lower = 0.0 if rounding == "floor" else -0.5
    if not (x.min() >= lower and x.max() < width and y.min() >= lower and y.max() < height):
        return None
    if rounding == "floor":
        px, py = np.floor(x), np.floor(y)
    else:  # half up; [W - 0.5, W) rounds to W and is clipped to the last pixel, as in _coords_to_pixels
        px = np.minimum(np.floor(x + 0.5), width - 1)
        py = np.minimum(np.floor(y + 0.5), height - 1)
    py *= width
    py += px
    return py.astype(np.int64)


def _looks_like_count_map(fix: Any, shape: tuple[int, int, int]) -> bool:
    if isinstance(fix, (list, tuple)):
        return False
    s = tuple(fix.shape)
    return s == shape or (shape[0] == 1 and s == shape[1:])


def prepare_fixations(fixations: Any, shape: tuple[int, int, int], *, rounding: str, collapse: bool,
                      metric: str, dtype: torch.dtype = torch.float64,
                      device: torch.device | str | None = None) -> FixationSet:
    """Turn any accepted fixation input into a :class:`FixationSet` for maps of ``shape`` (B, H, W).

    Accepted: a list of ``B`` arrays/tensors of shape ``N_i x 2`` holding 0-based ``(x, y)``;
    a single ``N x 2`` array when ``B == 1``; or a ``B x H x W`` (``H x W`` for one image)
    count map (non-negative; duplicates are the counts). ``collapse`` keeps distinct pixels.
    """
    b, h, w = shape
    if not isinstance(fixations, (list, tuple)) and not isinstance(fixations, (np.ndarray, torch.Tensor)):
        raise ValueError(f"{metric}: fixations must be a list of N x 2 (x, y) arrays or a count map, "
                         f"got {type(fixations).__name__}")
    if not isinstance(fixations, (list, tuple)) and _looks_like_count_map(fixations, shape):
        counts = torch.as_tensor(np.asarray(fixations) if isinstance(fixations, np.ndarray) else fixations)
        counts = counts.to(device=device, dtype=dtype).reshape(b, h * w)
        if not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
            raise ValueError(f"{metric}: fixation count map must be finite and non-negative")
        nz = torch.nonzero(counts > 0)
        image, flat = nz[:, 0], nz[:, 1]
        weight = counts[image, flat]
    else:
        if not isinstance(fixations, (list, tuple)):
            fixations = [fixations] if b == 1 else None
            if fixations is None:
                raise ValueError(f"{metric}: for a batch of {b} maps pass a list of {b} N x 2 fixation arrays "
                                 f"or a {b} x {h} x {w} count map")
        if len(fixations) != b:
            raise ValueError(f"{metric}: got fixations for {len(fixations)} images but {b} maps")
        arrays = []
        for i, f in enumerate(fixations):
            a = f.detach().cpu().numpy() if isinstance(f, torch.Tensor) else np.asarray(f)
            a = a.astype(np.float64, copy=False)
            if a.size == 0:
                a = a.reshape(0, 2)
            if a.ndim != 2 or a.shape[1] != 2:
                raise ValueError(f"{metric}: fixations of image {i} must have shape N x 2 (x, y), "
                                 f"got {tuple(a.shape)}")
            arrays.append(a)
        counts = np.array([len(a) for a in arrays], dtype=np.int64)
        xy_np = np.concatenate(arrays) if arrays else np.zeros((0, 2))
        image = torch.repeat_interleave(torch.arange(b), torch.from_numpy(counts)).to(device)
        flat_np = _pixels_in_bounds(xy_np, h, w, rounding)
        if flat_np is None:  # something is out of bounds or not finite: find it and say so
            flat = _coords_to_pixels(torch.from_numpy(xy_np).to(device), h, w, rounding, metric=metric, image=image)
        else:
            flat = torch.from_numpy(flat_np).to(device)
        weight = torch.ones(flat.numel(), dtype=dtype, device=flat.device)
        total = torch.from_numpy(counts).to(device=device, dtype=dtype)
        fs = FixationSet(image, flat, weight, total, b, h, w)
        return fs.collapsed() if collapse else fs
    total = torch.zeros(b, dtype=dtype, device=weight.device).index_add_(0, image, weight)
    fs = FixationSet(image, flat, weight, total, b, h, w)
    return fs.collapsed() if collapse else fs


def fixation_map(fixations: Sequence[ArrayLike] | ArrayLike, size: tuple[int, int], *,
                 rounding: str = "floor", binary: bool = False,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Rasterise 0-based ``(x, y)`` coordinates into a ``B x H x W`` count map at ``size`` (H, W).

    ``fixations`` is a list of ``N_i x 2`` arrays (one per image) or one ``N x 2`` array.
    Coordinates must already be in the frame of ``size`` (rescale coordinates, never
    binary maps). ``binary=True`` gives a 0/1 map (duplicates collapsed).
    """
    if not isinstance(fixations, (list, tuple)):
        fixations = [fixations]
    shape = (len(fixations), int(size[0]), int(size[1]))
    fs = prepare_fixations(list(fixations), shape, rounding=rounding, collapse=binary,
                           metric="fixation_map", dtype=dtype)
    return fs.count_map()


def rescale_fixations(xy: ArrayLike, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Rescale 0-based ``(x, y)`` coordinates between frames (pixel-edge convention: x * W_to / W_from)."""
    a = np.asarray(xy, dtype=np.float64).reshape(-1, 2).copy()
    a[:, 0] *= to_size[1] / from_size[1]
    a[:, 1] *= to_size[0] / from_size[0]
    return a
