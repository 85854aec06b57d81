"""Exact rank counting for AUC without sorting the map.

Every exact AUC variant reduces to two histograms per image: for each distinct positive
(fixated) value ``u_k``, how much negative weight lies strictly below it (``lt``) and
exactly on it (``eq``). Sorting the ``H*W`` pixels is not needed: the positives are few,
so they are sorted once and each negative is placed between them.

Integer-valued maps (8/16-bit images cast to float, the usual stored maps) are counted
with one direct histogram over their levels. Other maps use a lookup table (LUT) over
``L >= 2M`` equal-width value bins: a monotone bin index gives, for each negative, the
thresholds in lower bins, and a short branchless binary search over the thresholds sharing
its bin finishes exactly. Because the bin function is monotone and applied identically to
thresholds and negatives, the result is exact (tested against ``torch.searchsorted``, the
fallback for denormal value spans); it is 3-6x faster than a binary search per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .core import Scratch

_MAX_BINS = 1 << 22
_BIN_FACTOR = 2
# Integer-valued maps (8/16-bit images cast to float) with at most this many levels are
# counted with one direct histogram instead of a search.
_MAX_INT_LEVELS = 1 << 16
# Process at most this many values per chunk so index tensors stay cache/memory friendly.
_CHUNK_VALUES = 1 << 19


@dataclass
class Thresholds:
    """Sorted distinct positive values per image, padded with ``+inf``.

    ``values``: ``B x M``; ``weight``: summed positive weight at each value (0 on padding);
    ``count``: ``(B,)`` number of distinct values; ``entry_index``: for the positives in
    ascending order (``B x K``, ``-1`` on padding), the index of their distinct value, and
    ``entry_count`` their number per image (the MIT AUC-Judd rule walks ties one by one).
    """

    values: torch.Tensor
    weight: torch.Tensor
    count: torch.Tensor
    entry_index: torch.Tensor
    entry_count: torch.Tensor

    def rows(self, start: int, stop: int) -> Thresholds:
        """Thresholds of images ``start:stop``."""
        sl = slice(start, stop)
        return Thresholds(self.values[sl], self.weight[sl], self.count[sl], self.entry_index[sl],
                          self.entry_count[sl])


def pad_by_image(values: torch.Tensor, image: torch.Tensor, weight: torch.Tensor, batch: int,
                 fill: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scatter per-entry ``values`` (grouped by ``image``) into ``B x Kmax`` rows.

    Returns padded values (``fill`` on padding), weights (0 on padding) and per-image counts.
    """
    counts = torch.bincount(image, minlength=batch)
    kmax = int(counts.max()) if counts.numel() else 0
    kmax = max(kmax, 1)
    start = torch.cumsum(counts, 0) - counts
    pos = torch.arange(image.numel(), device=image.device) - start[image]
    out = torch.full((batch, kmax), fill, dtype=values.dtype, device=values.device)
    w = torch.zeros((batch, kmax), dtype=weight.dtype, device=weight.device)
    out[image, pos] = values
    w[image, pos] = weight
    return out, w, counts


def build_thresholds(values: torch.Tensor, image: torch.Tensor, weight: torch.Tensor,
                     batch: int) -> Thresholds:
    """Sorted distinct positive values per image from per-entry values (entries grouped by image)."""
    ints = _integer_thresholds(values, image, weight, batch)
    if ints is not None:
        return ints
    if batch == 1 and values.device.type == "cpu" and values.numel():
        return _row_thresholds(values, weight)
    padded, w, counts = pad_by_image(values, image, weight, batch, float("inf"))
    srt, perm = torch.sort(padded, dim=1)  # tie order is irrelevant: ties are aggregated
    w_sorted = torch.gather(w, 1, perm)
    kmax = srt.shape[1]
    valid = torch.arange(kmax, device=srt.device)[None, :] < counts[:, None]
    new = torch.ones_like(valid)
    new[:, 1:] = srt[:, 1:] != srt[:, :-1]
    uidx = torch.cumsum(new.long(), dim=1) - 1
    m = torch.where(counts > 0, uidx.gather(1, (counts - 1).clamp(min=0)[:, None])[:, 0] + 1,
                    torch.zeros_like(counts))
    mmax = max(int(m.max()) if m.numel() else 0, 1)
    # padding entries write into a dummy column that is dropped afterwards
    col = torch.where(valid, uidx, torch.full_like(uidx, mmax))
    vals = torch.full((batch, mmax + 1), float("inf"), dtype=values.dtype, device=values.device)
    vals.scatter_(1, col, torch.where(valid, srt, torch.full_like(srt, float("inf"))))
    pw = torch.zeros((batch, mmax + 1), dtype=weight.dtype, device=weight.device)
    pw.scatter_add_(1, col, torch.where(valid, w_sorted, torch.zeros_like(w_sorted)))
    return Thresholds(vals[:, :mmax].contiguous(), pw[:, :mmax].contiguous(), m,
                      torch.where(valid, uidx, torch.full_like(uidx, -1)), counts)


def _row_thresholds(values: torch.Tensor, weight: torch.Tensor) -> Thresholds:
    """:func:`build_thresholds` for one image on the CPU: a NumPy sort, no padding (same result)."""
    a, w = values.detach().numpy(), weight.detach().numpy()
    unit = bool((w == 1).all())
    order = None if unit else np.argsort(a, kind="stable")
    s = np.sort(a) if unit else a[order]
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] != s[:-1]
    starts = np.flatnonzero(new)
    if unit:  # summed weight = run length
        summed = np.diff(np.append(starts, len(s))).astype(w.dtype)
    else:
        summed = np.add.reduceat(w[order], starts)
    entry_index = np.cumsum(new) - 1  # distinct index of each positive, in ascending order
    m, k = len(starts), len(s)
    return Thresholds(torch.from_numpy(s[starts]).view(1, m), torch.from_numpy(summed).view(1, m),
                      torch.tensor([m]), torch.from_numpy(entry_index).view(1, k), torch.tensor([k]))


def _integer_thresholds(values: torch.Tensor, image: torch.Tensor, weight: torch.Tensor,
                        batch: int) -> Thresholds | None:
    """:func:`build_thresholds` without a sort when every value is an integer in a small range."""
    if not values.numel():
        return None
    vmin, vmax = values.min(), values.max()
    span = float(vmax - vmin)
    if not span < _MAX_INT_LEVELS or bool((torch.frac(values) != 0).any()):
        return None
    levels = int(span) + 1
    key = image * levels + (values - vmin).to(torch.int64)
    per_level = torch.bincount(key, minlength=batch * levels).view(batch, levels)
    wsum = torch.bincount(key, weights=weight.to(torch.float64), minlength=batch * levels).view(batch, levels)
    present = per_level > 0
    m = present.sum(dim=1)
    mmax = max(int(m.max()), 1)
    rows, lev = torch.nonzero(present, as_tuple=True)  # row-major: rows, then ascending values
    col = (torch.cumsum(present, dim=1) - 1)[rows, lev]
    vals = torch.full((batch, mmax), float("inf"), dtype=values.dtype, device=values.device)
    vals[rows, col] = vmin + lev.to(values.dtype)
    pw = torch.zeros((batch, mmax), dtype=weight.dtype, device=weight.device)
    pw[rows, col] = wsum[rows, lev].to(weight.dtype)
    # entries in ascending order: each distinct value repeated as often as it occurs
    reps = per_level[rows, lev]
    counts = torch.bincount(image, minlength=batch)
    kmax = max(int(counts.max()), 1)
    erow = torch.repeat_interleave(rows, reps)
    epos = torch.arange(erow.numel(), device=values.device) - (torch.cumsum(counts, 0) - counts)[erow]
    entry_index = torch.full((batch, kmax), -1, dtype=torch.long, device=values.device)
    entry_index[erow, epos] = torch.repeat_interleave(col, reps)
    return Thresholds(vals, pw, m, entry_index, counts)


def _keys(v: torch.Tensor, lo: torch.Tensor, scale: torch.Tensor, nbins: int,
          scratch: Scratch | None = None) -> torch.Tensor:
    """Bin key ``row * nbins + trunc(min((v - lo) * scale, nbins - 1))`` of every value, int32.

    Monotone non-decreasing in ``v`` within a row: a subtraction and a product, each
    correctly rounded (two separate kernels, so no fused multiply-add that a vectorised and a
    scalar loop might apply differently), then clamping and truncation all preserve order,
    so ``u <= v`` implies ``key(u) <= key(v)`` for thresholds and pixels alike.
    """
    x = torch.sub(v, lo[:, None], out=None if scratch is None else scratch.get("rank:x", v))
    x.mul_(scale[:, None]).clamp_(min=0, max=nbins - 1)  # min: padded values may lie below lo
    key = x.to(torch.int32) if scratch is None else scratch.get("rank:key", v, torch.int32).copy_(x)
    if v.shape[0] > 1:
        key += torch.arange(v.shape[0], device=v.device, dtype=torch.int32)[:, None] * nbins
    return key


class _Lut:
    """Per-row lookup tables: value bin -> first threshold of the bin, plus the padded thresholds."""

    def __init__(self, thr: torch.Tensor, m: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor):
        batch, mmax = thr.shape
        device = thr.device
        valid_thr = torch.arange(mmax, device=device)[None, :] < m[:, None]
        span = hi - lo
        self.nbins = nbins = min(1 << max(8, (_BIN_FACTOR * mmax - 1).bit_length()), _MAX_BINS)
        self.scale = torch.where(span > 0, nbins / torch.where(span > 0, span, torch.ones_like(span)),
                                 torch.zeros_like(span))
        self.lo = lo
        self.ok = bool(torch.isfinite(self.scale).all())  # False for denormal spans: use the search
        if not self.ok:
            return
        # padding thresholds get an in-range stand-in and are then left out of the counts
        tkey = _keys(torch.where(valid_thr, thr, hi[:, None]), lo, self.scale, nbins)[valid_thr]
        per_key = torch.bincount(tkey, minlength=batch * nbins).view(batch, nbins)
        maxc = int(per_key.max()) if mmax else 0
        self.steps = maxc.bit_length()  # 2**steps > maxc: enough halvings to cover any bin
        self.width = mmax + (1 << self.steps)  # +inf padding keeps every probe inside its own row
        offs = torch.arange(batch, device=device)[:, None] * self.width
        self.first = (torch.cumsum(per_key, 1) - per_key + offs).to(torch.int32).flatten()
        inf = thr.new_full((batch, 1 << self.steps), float("inf"))
        self.ext = torch.cat([thr.new_full((1,), float("inf")), torch.cat([thr, inf], dim=1).flatten()])

    def rank(self, v: torch.Tensor, scratch: Scratch | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(row * width + #{u <= v}, v == u_{r-1})`` for ``v`` with one row per table row.

        ``scratch``: reusable work buffers (every pass then writes into warm memory).
        """
        vf = v.reshape(-1)
        key = _keys(v, self.lo, self.scale, self.nbins, scratch).view(-1)
        if scratch is None:
            pos, probe, hit = self.first.index_select(0, key), None, None
        else:
            pos = torch.index_select(self.first, 0, key, out=scratch.get("rank:pos", v, torch.int32).view(-1))
            probe = scratch.get("rank:probe", v).view(-1)
            hit = scratch.get("rank:hit", v, torch.bool).view(-1)
        # NumPy's comparisons into a bool buffer are ~3x torch's on the CPU
        compare = _numpy_compare if (hit is not None and v.device.type == "cpu") else _torch_compare
        for s in reversed(range(self.steps)):
            # thresholds past the value's bin are > v, so this lower-bound search is exact;
            # ext is shifted by one (+inf in front), so ext[pos + step] is threshold pos + step - 1
            step = 1 << s
            pos.add_(compare("le", torch.index_select(self.ext[step:], 0, pos, out=probe), vf, hit), alpha=step)
        # ext[pos] is threshold pos - 1 (+inf before row 0)
        eq = compare("eq", torch.index_select(self.ext, 0, pos, out=probe), vf, hit)
        return pos.view_as(v), eq.view_as(v)


def _torch_compare(op: str, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    return getattr(torch, op)(a, b, out=out)


def _numpy_compare(op: str, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    fn = np.less_equal if op == "le" else np.equal
    fn(a.numpy(), b.detach().numpy(), out=out.numpy())
    return out


def _rank_search(v: torch.Tensor, thr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    r = torch.searchsorted(thr, v.contiguous(), right=True)
    prev = torch.gather(thr, 1, (r - 1).clamp(min=0))
    eq = (r > 0) & (prev == v)
    width = thr.shape[1] + 1
    return r + torch.arange(thr.shape[0], device=thr.device)[:, None] * width, eq, width


def integer_levels(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, frac_sum: float | None = None) -> int | None:
    """Levels of the direct histogram if every value is an integer in a small range, else None.

    ``frac_sum``: the sum of ``|frac(v)|`` if already known (block-wise callers). Fractional
    parts are >= 1e-11 when non-zero in this range, so the sum is 0 exactly for integers.
    """
    if not v.numel():
        return None
    lo_min, hi_max = float(lo.min()), float(hi.max())
    if not (hi_max - lo_min) < _MAX_INT_LEVELS:
        return None
    if frac_sum is None:
        frac = torch.frac(v)  # >= 0 for non-negative values, so no abs() pass is needed then
        frac_sum = float((frac if lo_min >= 0 else frac.abs_()).sum())
    if frac_sum != 0.0:
        return None
    return int(float((hi - lo).max())) + 1


class RankCounter:
    """Counts of negatives below / equal to each threshold, accumulated over blocks of values.

    Build once per set of rows (``thr`` rows ``start:stop``), then :meth:`add` blocks of
    negatives with one row per threshold row, then :meth:`result`. ``levels`` selects the
    direct integer histogram (all values integers in ``[lo, lo + levels)``); otherwise a LUT
    (or the binary search, ``method="search"``) places each value. All modes are exact.
    """

    def __init__(self, thr: Thresholds, lo: torch.Tensor, hi: torch.Tensor, *, levels: int | None = None,
                 method: str = "lut"):
        self.thr, self.lo, self.levels = thr, lo, levels
        self.batch, self.mmax = thr.values.shape
        self.dtype = thr.values.dtype
        self.lut = None
        if levels is None and method == "lut":
            self.lut = _Lut(thr.values, thr.count, lo, hi)
            if not self.lut.ok:
                self.lut = None
        if levels is not None:
            self.width = levels
        elif self.lut is not None:
            self.width = self.lut.width
        else:
            self.width = self.mmax + 1
        cells = self.batch * self.width * (1 if levels is not None else 2)
        self.hist = torch.zeros(cells, dtype=torch.float64, device=thr.values.device)

    def add(self, v: torch.Tensor, weight: torch.Tensor | None = None, scratch: Scratch | None = None) -> None:
        """Count a ``B x n`` block of negative values (optional weights)."""
        w = None if weight is None else weight.reshape(-1).to(torch.float64)
        if self.levels is not None:
            if scratch is not None and self.batch == 1 and bool(self.lo[0] == 0):
                k = scratch.get("rank:int", v, torch.int32).copy_(v)  # common 8-bit case: no shift
            else:
                k = (v - self.lo[:, None]).clamp_(0, self.levels - 1).to(torch.int32)
            if self.batch > 1:
                k = k + torch.arange(self.batch, device=v.device, dtype=torch.int32)[:, None] * self.levels
            key = k.flatten()
        else:
            if self.lut is not None:
                pos, is_eq = self.lut.rank(v, scratch)
            else:
                pos, is_eq, _ = _rank_search(v, self.thr.values)
            # one histogram over (rank, equal) pairs
            key = torch.add(is_eq, pos, alpha=2, out=pos if scratch is not None else None).flatten()
        counts = torch.bincount(key, weights=w, minlength=self.hist.numel())
        self.hist += counts

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lt, eq)``: ``B x M`` negative weight below / equal to each threshold."""
        if self.levels is not None:
            return level_counts(self.hist.view(self.batch, self.levels).to(self.dtype), self.thr.values, self.lo)
        hist = self.hist.view(self.batch, self.width, 2).to(self.dtype)
        lt = torch.cumsum(hist.sum(dim=2), dim=1)[:, :self.mmax]
        return lt, hist[:, 1:self.mmax + 1, 1].contiguous()


def level_counts(hist: torch.Tensor, thr_values: torch.Tensor,
                 lo: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lt, eq)`` at each threshold from per-row histograms over integer levels.

    ``hist``: ``B x L`` weight of the values ``lo + l`` (``lo`` per row, 0 if ``None``);
    ``thr_values``: ``B x M`` integer thresholds in that range, ``+inf`` on padding (which
    gets ``lt`` = the row total and ``eq`` = 0). Returns two ``B x M`` tensors in ``hist``'s dtype.
    """
    below = torch.cumsum(hist, dim=1) - hist  # weight strictly below each level
    valid = thr_values.isfinite()
    shifted = thr_values if lo is None else thr_values - lo[:, None]
    lvl = torch.where(valid, shifted, torch.zeros_like(thr_values)).to(torch.int64).clamp_(0, hist.shape[1] - 1)
    total = hist.sum(dim=1, keepdim=True)
    lt = torch.where(valid, below.gather(1, lvl), total.expand_as(lvl))
    eq = torch.where(valid, hist.gather(1, lvl), torch.zeros_like(lt))
    return lt, eq


def threshold_counts(v: torch.Tensor, thr: Thresholds, *, weight: torch.Tensor | None = None,
                     lo: torch.Tensor | None = None, hi: torch.Tensor | None = None,
                     method: str = "auto", scratch: Scratch | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative weight strictly below (``lt``) and equal to (``eq``) each distinct positive value.

    ``v``: ``B x N`` negative values (e.g. all pixels); ``weight``: ``B x N`` or ``None``
    (weight 1). ``lo``/``hi``: per-image bounds of ``v`` and of the thresholds (computed if
    omitted). ``method``: ``"auto"`` (direct histogram for integer-valued maps with a small
    range, else LUT), ``"lut"`` or ``"search"`` (``torch.searchsorted``); all are exact.
    Returns two ``B x M`` tensors in ``v``'s dtype. ``scratch``: work buffers to reuse
    (a fresh pool per call when omitted).
    """
    batch, n = v.shape
    scratch = Scratch() if scratch is None else scratch
    if lo is None or hi is None:
        lo, hi = v.amin(dim=1), v.amax(dim=1)
    levels = integer_levels(v, lo, hi) if method == "auto" else None
    lt = torch.zeros((batch, thr.values.shape[1]), dtype=v.dtype, device=v.device)
    eq = torch.zeros_like(lt)
    rows = max(1, _CHUNK_VALUES // max(n, 1))
    for s in range(0, batch, rows):
        e = min(batch, s + rows)
        counter = RankCounter(thr.rows(s, e), lo[s:e], hi[s:e], levels=levels,
                              method="search" if method == "search" else "lut")
        counter.add(v[s:e], None if weight is None else weight[s:e], scratch)
        lt[s:e], eq[s:e] = counter.result()
    return lt, eq
