"""AUC family: exact (Mann-Whitney) AUC, AUC-Judd, AUC-Borji and shuffled AUC.

All functions take ``pred`` (``B x H x W`` or ``H x W``) and fixations (a list of ``N x 2``
0-based ``(x, y)`` arrays or a count map) and return a ``(B,)`` tensor of per-image values.
An image without fixations scores NaN (the MIT code returns NaN there too).

Exact variants never sort the map: see :mod:`kdnas.metrics.saliency.ranking`.
Sampled variants (Borji, MIT sAUC) draw from a fresh ``torch.Generator`` seeded with
``seed`` for every image, so a value does not depend on batch size or order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .core import FixationSet, Scratch, as_maps, check_finite, is_constant, prepare_fixations, trapz_rows
from .presets import MetricPreset, get_preset
from .ranking import Thresholds, build_thresholds, pad_by_image, threshold_counts

_OCTAVE_RANGE_TOL = 3.0 * np.finfo(np.float64).eps


def _setup(pred: Any, fixations: Any, p: MetricPreset, metric: str, dtype: torch.dtype,
           collapse: bool | None = None) -> tuple[torch.Tensor, FixationSet]:
    maps = as_maps(pred, name=f"{metric}: prediction", dtype=dtype)
    check_finite(maps, metric=metric)
    collapse = (p.duplicates == "collapse") if collapse is None else collapse
    fs = prepare_fixations(fixations, tuple(maps.shape), rounding=p.coordinate_rounding, collapse=collapse,
                           metric=metric, dtype=dtype, device=maps.device)
    return maps.flatten(1), fs


def _nan_without_fixations(values: torch.Tensor, fs: FixationSet) -> torch.Tensor:
    return torch.where(fs.total > 0, values, torch.full_like(values, float("nan")))


def _distinct_per_threshold(flat: torch.Tensor, fs: FixationSet, thr_values: torch.Tensor) -> torch.Tensor:
    """Number of distinct fixated pixels whose value equals each distinct threshold (``B x M``)."""
    d = fs.collapsed()
    vals = d.values(flat)
    padded, w, _ = pad_by_image(vals, d.image, d.weight, fs.batch, float("inf"))
    k = torch.searchsorted(thr_values, padded.contiguous(), right=False)
    out = torch.zeros((fs.batch, thr_values.shape[1] + 1), dtype=flat.dtype, device=flat.device)
    out.scatter_add_(1, k, w.to(flat.dtype))
    return out[:, :-1]


def _exact_from_counts(thr_weight: torch.Tensor, lt: torch.Tensor, eq: torch.Tensor, pos_total: torch.Tensor,
                       neg_total: torch.Tensor) -> torch.Tensor:
    """Mann-Whitney AUC with ties counted 0.5, from per-threshold negative counts."""
    num = (thr_weight * (lt + 0.5 * eq)).sum(dim=1)
    return num / (pos_total * neg_total)


def auc_exact_flat(flat: torch.Tensor, fs: FixationSet, negatives: str = "all_pixels", method: str = "auto", *,
                   lo: torch.Tensor | None = None, hi: torch.Tensor | None = None,
                   thr: Thresholds | None = None, scratch: Scratch | None = None) -> torch.Tensor:
    """Exact AUC on validated ``B x N`` rows (see :func:`auc_exact`).

    ``lo``/``hi``: row extrema if known; ``thr``: thresholds already built from ``fs``;
    ``scratch``: work buffers to reuse.
    """
    if thr is None:
        thr = build_thresholds(fs.values(flat), fs.image, fs.weight, fs.batch)
    lt, eq = threshold_counts(flat, thr, method=method, lo=lo, hi=hi, scratch=scratch)
    return exact_auc_from_counts(flat, fs, thr, lt, eq, negatives)


def exact_auc_from_counts(flat: torch.Tensor, fs: FixationSet, thr: Thresholds, lt: torch.Tensor, eq: torch.Tensor,
                          negatives: str = "all_pixels") -> torch.Tensor:
    """Exact AUC from all-pixel counts at each distinct fixated value (``lt``, ``eq``)."""
    n_neg = torch.full((fs.batch,), float(fs.num_pixels), dtype=flat.dtype, device=flat.device)
    if negatives == "unfixated":
        dcount = _distinct_per_threshold(flat, fs, thr.values)
        lt = lt - (torch.cumsum(dcount, dim=1) - dcount)
        eq = eq - dcount
        n_neg = n_neg - dcount.sum(dim=1)
    auc = _exact_from_counts(thr.weight, lt, eq, fs.total, n_neg)
    return _nan_without_fixations(auc, fs)


def auc_exact(pred: Any, fixations: Any, negatives: str = "all_pixels", *, preset: str | MetricPreset = "pysaliency",
              dtype: torch.dtype = torch.float64, method: str = "auto") -> torch.Tensor:
    """Exact AUC (pysaliency ``SaliencyMapModel.AUC``): every fixation vs. every negative, ties 0.5.

    ``negatives="all_pixels"`` (pysaliency ``nonfixations='uniform'``, the Tuebingen "AUC") or
    ``"unfixated"`` (pixels without any fixation). No jitter, no thresholds grid: this is the
    area of the full ROC curve. Duplicates follow the preset (pysaliency: every fixation
    counts). ``method``: ``"auto"``/``"lut"``/``"search"`` choose the (equally exact) counting
    kernel, see :func:`kdnas.metrics.saliency.ranking.threshold_counts`.
    """
    if negatives not in ("all_pixels", "unfixated"):
        raise ValueError(f"auc_exact: negatives must be 'all_pixels' or 'unfixated', got {negatives!r}")
    p = get_preset(preset)
    flat, fs = _setup(pred, fixations, p, "auc_exact", dtype)
    return auc_exact_flat(flat, fs, negatives, method)


# ----------------------------------------------------------------------------------------
# AUC-Judd


def _add_jitter(flat: torch.Tensor, fs: FixationSet, p: MetricPreset, seed: int) -> torch.Tensor:
    out = flat.clone()
    if p.jitter_kind == "uniform":
        for b in range(fs.batch):
            g = torch.Generator(device=flat.device).manual_seed(seed)
            noise = torch.rand(flat.shape[1], generator=g, dtype=torch.float64, device=flat.device)
            out[b] += (noise * p.jitter_size).to(flat.dtype)
    else:  # numpy_normal_stream: pysaliency's RandomNoiseSaliencyMapModel, image after image
        rs = np.random.RandomState(seed)
        for b in range(fs.batch):
            if float(fs.total[b]) == 0:  # pysaliency skips images without fixations
                continue
            noise = rs.randn(fs.height, fs.width) * p.jitter_size
            out[b] += torch.from_numpy(noise.reshape(-1)).to(device=flat.device, dtype=flat.dtype)
    return out


def _minmax(flat: torch.Tensor, rule: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Min-max normalise rows; returns (normalised, constant-row mask)."""
    mn, mx = flat.amin(dim=1), flat.amax(dim=1)
    const = mn == mx
    shifted = flat - mn[:, None]
    if rule == "guard":  # SALICON: divide only when the shifted max is positive
        scale = torch.where(mx - mn > 0, mx - mn, torch.ones_like(mx))
    else:
        scale = torch.where(const, torch.ones_like(mx), mx - mn)
    return shifted / scale[:, None], const


def auc_judd(pred: Any, fixations: Any, preset: str | MetricPreset = "mit", jitter: bool | None = None, *,
             seed: int | None = None, dtype: torch.dtype = torch.float64, method: str = "auto") -> torch.Tensor:
    """AUC-Judd: thresholds at the fixated values, negatives = unfixated pixels.

    ``mit``: ``AUC_Judd.m`` — fixations as a binary map, tp = i/Nfix and
    fp = (#{S >= t_i} - i)/(Npix - Nfix) for the i-th largest fixated value, trapezoid area.
    ``pysaliency``: ``SaliencyMapModel.AUC_Judd`` — every fixation counts, tie-aware counts.
    ``jitter=None`` uses the preset default: ``mit`` (and ``salicon``) are deterministic, as
    ``AUC_Judd(..., jitter=0)`` (the reference CSV values); ``pysaliency`` jitters as
    ``AUC_Judd(jitter=True)`` does (N(0,1)*1e-7, seed 42). ``jitter=True`` under ``mit``
    adds MIT's own default tie-breaking noise U(0,1)/1e7, seeded with ``seed`` (default: the
    preset's ``jitter_seed``) for every image. A constant map without jitter scores 0.5.
    """
    p = get_preset(preset)
    jitter = p.judd_jitter if jitter is None else bool(jitter)
    collapse = True if p.judd_rule == "mit" else p.duplicates == "collapse"
    flat, fs = _setup(pred, fixations, p, "auc_judd", dtype, collapse=collapse)
    return auc_judd_flat(flat, fs, p, jitter=jitter, seed=seed, method=method)


def auc_judd_flat(flat: torch.Tensor, fs: FixationSet, p: MetricPreset, *, jitter: bool, seed: int | None = None,
                  method: str = "auto") -> torch.Tensor:
    """AUC-Judd on validated rows; ``fs`` must be collapsed for the MIT rule."""
    dtype = flat.dtype
    if jitter:
        flat = _add_jitter(flat, fs, p, p.jitter_seed if seed is None else int(seed))
    const = is_constant(flat)
    if p.judd_rule == "mit":
        flat, _ = _minmax(flat, "nan")
    thr = build_thresholds(fs.values(flat), fs.image, fs.weight, fs.batch)
    lt, eq = threshold_counts(flat, thr, method=method)
    n_pix = float(fs.num_pixels)
    if p.judd_rule == "mit":
        n_fix = thr.entry_count.to(dtype)[:, None]
        k = thr.entry_index.shape[1]
        asc = torch.arange(k, device=flat.device)[None, :]
        valid = asc < thr.entry_count[:, None]
        i_desc = (n_fix - asc).to(dtype)
        above = n_pix - lt.gather(1, thr.entry_index.clamp(min=0))
        tp = torch.where(valid, i_desc / n_fix, torch.zeros_like(i_desc))
        fp = torch.where(valid, (above - i_desc) / (n_pix - n_fix), torch.zeros_like(i_desc))
    else:
        dcount = _distinct_per_threshold(flat, fs, thr.values)
        lt_neg = lt - (torch.cumsum(dcount, dim=1) - dcount)
        n_neg = (n_pix - dcount.sum(dim=1))[:, None]
        tp = torch.flip(torch.cumsum(torch.flip(thr.weight, [1]), 1), [1]) / fs.total[:, None]
        fp = (n_neg - lt_neg) / n_neg
    # descending thresholds; padding columns become (0, 0) points that add no area
    tp, fp = torch.flip(tp, [1]), torch.flip(fp, [1])
    zeros = torch.zeros((fs.batch, 1), dtype=dtype, device=flat.device)
    ones = torch.ones_like(zeros)
    auc = trapz_rows(torch.cat([zeros, tp, ones], 1), torch.cat([zeros, fp, ones], 1))
    auc = torch.where(const, torch.full_like(auc, 0.5), auc)
    return _nan_without_fixations(auc, fs)


# ----------------------------------------------------------------------------------------
# thresholded ROC with sampled negatives (Borji, MIT sAUC, SALICON AUC/sAUC)


def _threshold_grid(maxima: torch.Tensor, step: float, grid: str) -> torch.Tensor:
    """``S x K`` ascending thresholds per split, ``+inf`` where the split's range has ended.

    ``octave``: ``0:step:max`` (Octave range: k*step, tolerant count, last element clamped
    to ``max``); ``arange``: ``np.arange(0, max, step)`` (k*step < max, end excluded).
    """
    top = float(maxima.max()) if maxima.numel() else 0.0
    kmax = int(math.floor(top / step + 1 + _OCTAVE_RANGE_TOL)) + 1
    k = torch.arange(kmax, dtype=torch.float64, device=maxima.device)
    values = (k * step)[None, :].expand(maxima.shape[0], kmax)
    m = maxima.to(torch.float64)[:, None]
    if grid == "octave":
        n = torch.floor((m + step) / step + _OCTAVE_RANGE_TOL)
        inside = k[None, :] < n
        values = torch.where(k[None, :] == n - 1, torch.minimum(values, m), values)
    else:
        n = torch.ceil(m / step)
        inside = k[None, :] < n
    return torch.where(inside, values, torch.full_like(values, float("inf")))


def _step_rocs(pos: torch.Tensor, pos_w: torch.Tensor, samples: torch.Tensor, sample_w: torch.Tensor | None,
              step: float, grid: str) -> torch.Tensor:
    """AUC of every split (``(S,)``): TP/FP at fixed thresholds, (0,0) and (1,1) added, trapezoid rule.

    ``pos``: positive values (``P``) with weights; ``samples``: ``S x n`` negative values per
    split (weights ``S x n`` or ``None``). Counts use ``>=`` like every reference.
    """
    dt = torch.float64
    pos = pos.to(dt)
    samples = samples.to(dt)
    maxima = torch.maximum(samples.max(dim=1).values, pos.max())
    thr = _threshold_grid(maxima, step, grid)  # S x K ascending
    ps, perm = torch.sort(pos)
    cw = torch.cat([torch.zeros(1, dtype=dt, device=pos.device), torch.cumsum(pos_w.to(dt)[perm], 0)])
    below = torch.searchsorted(ps, thr.contiguous(), right=False)  # positives < threshold
    tp = (cw[-1] - cw[below]) / cw[-1]
    ss, sperm = torch.sort(samples, dim=1)
    if sample_w is None:
        sw_cum = torch.arange(samples.shape[1] + 1, dtype=dt, device=pos.device)[None, :].expand(
            samples.shape[0], -1)
    else:
        sw = torch.gather(sample_w.to(dt), 1, sperm)
        sw_cum = torch.cat([torch.zeros((samples.shape[0], 1), dtype=dt, device=pos.device),
                            torch.cumsum(sw, 1)], 1)
    sbelow = torch.searchsorted(ss.contiguous(), thr.contiguous(), right=False)
    total = sw_cum[:, -1:]
    fp = (total - torch.gather(sw_cum, 1, sbelow)) / total
    tp, fp = torch.flip(tp, [1]), torch.flip(fp, [1])
    zeros = torch.zeros((samples.shape[0], 1), dtype=dt, device=pos.device)
    ones = torch.ones_like(zeros)
    return trapz_rows(torch.cat([zeros, tp, ones], 1), torch.cat([zeros, fp, ones], 1))


def _image_slices(fs: FixationSet) -> list[slice]:
    counts = torch.bincount(fs.image, minlength=fs.batch).tolist()
    out, start = [], 0
    for c in counts:
        out.append(slice(start, start + c))
        start += c
    return out


def auc_borji(pred: Any, fixations: Any, preset: str | MetricPreset = "mit", n_splits: int | None = None,
              step: float | None = None, seed: int | None = None, *, n_samples: int | str | None = None,
              dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """AUC-Borji: negatives sampled uniformly (with replacement) from all pixels, fixed thresholds.

    ``mit``: ``AUC_Borji.m`` — min-max map, per split as many samples as fixations, thresholds
    ``0:0.1:max``, mean over 100 splits. ``salicon``: the SALICON "AUC" — 100,000 samples,
    one split, ``np.arange(0, max, 0.01)``. Seeded per image; a constant map scores 0.5.
    """
    p = get_preset(preset)
    n_splits = p.borji_splits if n_splits is None else int(n_splits)
    step = p.borji_step if step is None else float(step)
    seed = p.seed if seed is None else int(seed)
    n_samples = p.borji_samples if n_samples is None else n_samples
    flat, fs = _setup(pred, fixations, p, "auc_borji", dtype)
    norm, const = _minmax(flat, p.minmax_constant)
    vals = fs.values(norm)
    out = torch.full((fs.batch,), float("nan"), dtype=dtype, device=flat.device)
    for b, sl in enumerate(_image_slices(fs)):
        if sl.stop == sl.start:
            continue
        if bool(const[b]) and p.minmax_constant == "nan":
            out[b] = 0.5
            continue
        n = int(round(float(fs.total[b]))) if n_samples == "n_fix" else int(n_samples)
        g = torch.Generator(device=flat.device).manual_seed(seed)
        idx = torch.randint(0, fs.num_pixels, (n_splits, n), generator=g, device=flat.device)
        samples = norm[b][idx]
        out[b] = _step_rocs(vals[sl], fs.weight[sl], samples, None, step, p.threshold_grid).mean().to(dtype)
    return out


def auc_shuffled(pred: Any, fixations: Any, other_fixations: Any, preset: str | MetricPreset = "mit",
                 seed: int | None = None, *, n_splits: int | None = None, step: float | None = None,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Shuffled AUC: negatives are fixations of other images, in the frame of ``pred``.

    ``other_fixations`` has the same forms as ``fixations`` (per-image ``N x 2`` arrays of the
    other images' fixations already rescaled to this map, or a count map).

    ``mit``: ``AUC_shuffled.m`` — the other map is binary; per split ``min(Nfix, Nother)``
    distinct other pixels drawn without replacement; thresholds ``0:0.1:max``; 100 splits.
    ``pysaliency``: exact AUC against every other fixation (duplicates kept), ties 0.5.
    ``salicon``: other fixation counts as weighted negatives, own fixated pixels removed,
    thresholds ``np.arange(0, max, 0.01)``, deterministic.
    """
    p = get_preset(preset)
    n_splits = p.sauc_splits if n_splits is None else int(n_splits)
    step = p.sauc_step if step is None else float(step)
    seed = p.seed if seed is None else int(seed)
    flat, fs = _setup(pred, fixations, p, "auc_shuffled", dtype)
    shape = (fs.batch, fs.height, fs.width)
    other = prepare_fixations(other_fixations, shape, rounding=p.coordinate_rounding,
                              collapse=(p.sauc_mode == "sampled"), metric="auc_shuffled (other fixations)",
                              dtype=dtype, device=flat.device)
    if p.sauc_mode == "exact":
        thr = build_thresholds(fs.values(flat), fs.image, fs.weight, fs.batch)
        neg, neg_w, _ = pad_by_image(other.values(flat), other.image, other.weight, fs.batch, 0.0)
        lo, hi = flat.amin(dim=1), flat.amax(dim=1)
        lt, eq = threshold_counts(neg, thr, weight=neg_w, lo=lo, hi=hi)
        auc = _exact_from_counts(thr.weight, lt, eq, fs.total, other.total)
        auc = torch.where(other.total > 0, auc, torch.full_like(auc, float("nan")))
        return _nan_without_fixations(auc, fs)

    norm, const = _minmax(flat, p.minmax_constant)
    vals = fs.values(norm)
    oflat = other.image * other.num_pixels + other.flat
    if p.sauc_mode == "count_weighted":
        own = fs.pixel_mask().reshape(-1)
        keep = ~own[oflat]
    out = torch.full((fs.batch,), float("nan"), dtype=dtype, device=flat.device)
    oslices = _image_slices(other)
    for b, sl in enumerate(_image_slices(fs)):
        osl = oslices[b]
        if sl.stop == sl.start or osl.stop == osl.start:
            continue
        if bool(const[b]) and p.minmax_constant == "nan":
            out[b] = 0.5
            continue
        ovals = norm.reshape(-1)[oflat[osl]]
        if p.sauc_mode == "count_weighted":
            k = keep[osl]
            if not bool(k.any()):
                continue
            samples, weights = ovals[k][None, :], other.weight[osl][k][None, :]
            out[b] = _step_rocs(vals[sl], fs.weight[sl], samples, weights, step, p.threshold_grid).mean().to(dtype)
            continue
        n_take = min(int(round(float(fs.total[b]))), ovals.numel())
        out[b] = subset_split_aucs(vals[sl], fs.weight[sl], ovals, n_take, n_splits, step, p.threshold_grid,
                                   seed).mean().to(dtype)
    return out


def subset_split_aucs(pos: torch.Tensor, pos_w: torch.Tensor, pool: torch.Tensor, n_take: int, n_splits: int,
                      step: float, grid: str, seed: int) -> torch.Tensor:
    """AUC of ``n_splits`` splits whose negatives are ``n_take`` values drawn without replacement from ``pool``.

    ``pos``/``pos_w``: positive values and weights (min-max normalised map values);
    ``step``/``grid``: the threshold grid (see :func:`_threshold_grid`). Returns ``(n_splits,)``.

    MATLAB takes the first ``n_take`` of a random permutation of the pool per split. A
    split's AUC depends on its negatives only through how many fall in each class of pool
    values that every threshold the split can use treats alike: values with the same number
    of grid points ``k * step`` at or below them, the same grid extent ``0:step:v``, and on
    the same side of the largest positive; near a grid point, where the extent's last
    threshold is clamped to the maximum itself, each distinct value is its own class. The
    class counts of a draw without replacement follow the multivariate hypergeometric
    distribution, which NumPy samples directly (seeded with ``seed``): the same distribution
    of split AUCs as permuting the pool, at a cost independent of the pool size.
    """
    dt = torch.float64
    pos, pool = pos.to(dt).cpu(), pool.to(dt).cpu()
    top = max(float(pos.max()), float(pool.max()))
    kmax = int(math.floor(top / step + 1 + _OCTAVE_RANGE_TOL)) + 1
    points = torch.arange(kmax, dtype=dt) * step  # the grid values of _threshold_grid
    below = torch.searchsorted(points, pool, right=True)
    # the grid extent n a split with maximum v would use (same arithmetic as _threshold_grid)
    extent = (torch.floor((pool + step) / step + _OCTAVE_RANGE_TOL) if grid == "octave"
              else torch.ceil(pool / step)).to(torch.int64)
    key = ((below * (kmax + 2) + extent) * 2 + (pool >= pos.max()).to(torch.int64))
    clamped = (below < extent) if grid == "octave" else torch.zeros_like(below, dtype=torch.bool)
    if bool(clamped.any()):  # the last threshold would be the value itself: one class per value
        _, rank = torch.unique(pool[clamped], return_inverse=True)
        key[clamped] = int(key.max()) + 1 + rank
    _, cls, sizes = torch.unique(key, return_inverse=True, return_counts=True)
    rep = torch.full((sizes.numel(),), -math.inf, dtype=dt).scatter_reduce_(0, cls, pool, "amax")
    rng = np.random.Generator(np.random.PCG64(seed))
    counts = torch.from_numpy(rng.multivariate_hypergeometric(sizes.numpy(), n_take, size=n_splits)).to(dt)
    # classes a split did not draw must not set its maximum: -inf sorts below every threshold
    samples = torch.where(counts > 0, rep[None, :], torch.full_like(counts, -math.inf))
    return _step_rocs(pos, pos_w.cpu(), samples, counts, step, grid)
