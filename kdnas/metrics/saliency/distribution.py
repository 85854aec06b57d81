"""Map-comparison and fixation-value metrics: CC, KLD, SIM, NSS, information gain.

Each returns a ``(B,)`` tensor of per-image values. The preset decides std ``ddof``, the
epsilons, min-max normalisation and the rule for constant or all-zero maps (documented in
:mod:`kdnas.metrics.saliency.presets`). Shapes must match exactly: resize predictions with
:func:`kdnas.metrics.saliency.resize.resize_prediction` first.

The ``*_rows`` functions work on validated ``B x N`` rows wrapped in :class:`Rows`, which
caches per-row statistics; the fast path (:func:`kdnas.metrics.saliency.fast.batch_metrics`)
shares them between metrics.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .core import (
    FixationSet,
    Scratch,
    as_maps,
    check_finite,
    check_same_shape,
    fast_log_,
    per_image_minmax,
    prepare_fixations,
    rowdot,
)
from .presets import MetricPreset, get_preset

_NAN = float("nan")
# NSS folds the z-score into per-image scalars when |mean| <= this * std (see nss_value)
_NSS_FOLD_RATIO = 100.0


def _pair(pred: Any, gt: Any, metric: str, dtype: torch.dtype) -> tuple[Rows, Rows]:
    p = as_maps(pred, name=f"{metric}: prediction", dtype=dtype)
    g = as_maps(gt, name=f"{metric}: ground truth", dtype=dtype, device=p.device)
    check_same_shape(p, g, metric=metric, names=("prediction", "ground truth"))
    sp = check_finite(p, metric=metric, name="prediction")
    sg = check_finite(g, metric=metric, name="ground truth")
    return Rows(p.flatten(1), sp), Rows(g.flatten(1), sg)


class Rows:
    """``B x N`` rows with per-row statistics computed once and shared between metrics.

    Sharing is what makes :func:`batch_metrics` cheap; the single-metric functions use the
    same code, so their values are identical to the batched ones.
    """

    def __init__(self, flat: torch.Tensor, sums: torch.Tensor | None = None, scratch: Scratch | None = None,
                 tag: str = "a"):
        self.flat = flat
        self._cache: dict[Any, torch.Tensor] = {} if sums is None else {"sum": sums}
        self.scratch = scratch
        self.tag = tag

    def set_stats(self, *, total: torch.Tensor | None = None, lo: torch.Tensor | None = None,
                  hi: torch.Tensor | None = None, raw_sq: torch.Tensor | None = None) -> Rows:
        """Record statistics computed elsewhere (a fused pass, an exact histogram).

        ``total``: row sums; ``lo``/``hi``: row extrema; ``raw_sq``: row sums of squares, which
        go through the same accuracy test as in :attr:`sum_sq` (the two-pass centred sum is
        used when the raw moments would lose digits).
        """
        for key, value in (("sum", total), ("min", lo), ("max", hi)):
            if value is not None:
                self._cache[key] = value
        if raw_sq is not None:
            self._cache["raw_sq"] = raw_sq
        return self

    def set_sum_sq(self, ss: torch.Tensor) -> Rows:
        """Record accurate per-row sums of squared deviations (e.g. from exact moments)."""
        self._cache["ss"] = ss
        self._cache["moments_ok"] = torch.tensor(True)
        return self

    def buffer(self, key: str) -> torch.Tensor | None:
        """A reusable ``B x N`` work buffer (``None`` without a scratch pool: allocate)."""
        return None if self.scratch is None else self.scratch.get(f"{self.tag}:{key}", self.flat)

    def _get(self, key: Any, fn: Any) -> torch.Tensor:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    @property
    def sum(self) -> torch.Tensor:
        return self._get("sum", lambda: self.flat.sum(dim=1))

    @property
    def min(self) -> torch.Tensor:
        return self._get("min", lambda: self.flat.amin(dim=1))

    @property
    def max(self) -> torch.Tensor:
        return self._get("max", lambda: self.flat.amax(dim=1))

    @property
    def mean(self) -> torch.Tensor:
        return self._get("mean", lambda: self.sum / self.flat.shape[1])

    @property
    def centred(self) -> torch.Tensor:
        return self._get("centred", lambda: torch.sub(self.flat, self.mean[:, None], out=self.buffer("centred")))

    @property
    def sum_sq(self) -> torch.Tensor:
        """Sum of squared deviations from the mean.

        One pass via raw moments (``sum x^2 - n mean^2``) when that loses at most ~1e-12
        relative accuracy (``sum x^2 / ss`` small enough for the dtype), else the two-pass
        centred sum for the whole chunk. :attr:`moments_ok` tells which was used.
        """
        def fn() -> torch.Tensor:
            raw = self._cache["raw_sq"] if "raw_sq" in self._cache else rowdot(self.flat, self.flat)
            ss = raw - self.sum * self.mean
            ok = moments_ok(raw, ss)
            self._cache["moments_ok"] = torch.tensor(ok)
            return ss if ok else rowdot(self.centred, self.centred)
        return self._get("ss", fn)

    @property
    def moments_ok(self) -> bool:
        self.sum_sq  # noqa: B018 - computes the flag
        return bool(self._cache["moments_ok"])

    @property
    def constant(self) -> torch.Tensor:
        """Exact test (a float mean of a constant row need not equal the constant)."""
        return self._get("const", lambda: self.min == self.max)

    def nonzero(self) -> torch.Tensor:
        """MATLAB ``any(map(:))`` per row; a non-zero sum settles it without another pass."""
        def fn() -> torch.Tensor:
            nz = self.sum != 0
            if not bool(nz.all()):
                rows = torch.nonzero(~nz)[:, 0]
                nz[rows] = (self.flat[rows] != 0).any(dim=1)
            return nz
        return self._get("nonzero", fn)

    def density(self, rule: str, minmax: bool) -> torch.Tensor:
        """The rows as distributions under a reference's rule (see :func:`to_density`)."""
        return self._get(("density", rule, minmax), lambda: _density(self, rule, minmax))


def _density(r: Rows, rule: str, minmax: bool) -> torch.Tensor:
    flat, n = r.flat, r.flat.shape[1]
    if rule == "mit":
        nz = r.nonzero()
        if minmax:
            # (m - min) / (max - min), then / sum: the (max - min) cancels, so divide the
            # shifted map by its own sum; a zero map stays zero, a constant one gives 0/0 = NaN
            shifted = flat - torch.where(nz, r.min, torch.zeros_like(r.min))[:, None]
            s = shifted.sum(dim=1)
            denom = torch.where(nz, torch.where(r.constant, torch.zeros_like(s), s), torch.ones_like(s))
            return shifted.div_(denom[:, None])
        # multiplying by the reciprocal is ~2x faster than dividing and differs by <= 1 ulp
        inv = 1.0 / torch.where(nz, r.sum, torch.ones_like(r.sum))
        return torch.mul(flat, inv[:, None], out=r.buffer(f"density:{rule}"))
    # pysaliency convert_saliency_map_to_density: shift negative maps, zero map -> uniform
    neg = r.min < 0
    if bool(neg.any()):
        flat = flat - torch.where(neg, r.min, torch.zeros_like(r.min))[:, None]
        s = flat.sum(dim=1)
    else:
        s = r.sum
    zero = s == 0
    out = torch.mul(flat, (1.0 / torch.where(zero, torch.ones_like(s), s))[:, None], out=r.buffer(f"density:{rule}"))
    if bool(zero.any()):
        out[zero] = 1.0 / n
    return out


def to_density(flat: torch.Tensor, rule: str, *, minmax: bool) -> torch.Tensor:
    """Turn ``B x N`` maps into distributions with a reference's rule.

    ``mit``: optional min-max (only for non-zero maps, as ``similarity.m``), then divide by
    the sum when the map is not all zero (an all-zero map stays zero).
    ``pysaliency``: ``convert_saliency_map_to_density`` — shift a negative map to min 0,
    divide by the sum; an all-zero map becomes uniform.
    """
    return _density(Rows(flat), rule, minmax)


def _mit_sum_normalise(flat: torch.Tensor) -> torch.Tensor:
    """MATLAB ``if any(map(:)), map = map / sum(map(:)); end`` (an all-zero map stays zero)."""
    return _density(Rows(flat), "mit", False)


def _mit_minmax(flat: torch.Tensor) -> torch.Tensor:
    """``(m - min) / (max - min)`` exactly as MATLAB computes it (a constant map becomes NaN)."""
    mn, mx = per_image_minmax(flat)
    return (flat - mn[:, None]) / (mx - mn)[:, None]


def moments_ok(raw: torch.Tensor, ss: torch.Tensor) -> bool:
    """Whether ``ss = sum x^2 - n mean^2`` keeps ~1e-12 relative accuracy (``sum x^2 / ss`` small)."""
    max_ratio = (1e-12 if ss.dtype == torch.float64 else 1e-6) / torch.finfo(ss.dtype).eps
    return bool((ss * max_ratio >= raw).all()) and bool((ss > 0).all())


def cc_rows(ra: Rows, rb: Rows, p: MetricPreset) -> torch.Tensor:
    if ra.moments_ok and rb.moments_ok:
        # |error| <= eps * sqrt(sum a^2 sum b^2 / (ss_a ss_b)) <= ~1e-12 under the moments_ok bound
        cross = rowdot(ra.flat, rb.flat) - ra.sum * rb.mean
    else:
        cross = rowdot(ra.centred, rb.centred)
    return cc_value(cross, ra.sum_sq, rb.sum_sq, ra.constant, rb.constant, p)


def cc_value(cross: torch.Tensor, ss_a: torch.Tensor, ss_b: torch.Tensor, ca: torch.Tensor, cb: torch.Tensor,
             p: MetricPreset) -> torch.Tensor:
    """Pearson r from the centred cross product and sums of squares, with the preset's constant-map rule."""
    r = cross / torch.sqrt(ss_a * ss_b)
    nan = torch.full_like(r, _NAN)
    if p.cc_constant == "pysaliency":
        return torch.where(ca & ~cb, torch.zeros_like(r), torch.where(ca | cb, nan, r))
    if p.cc_constant == "zero":
        return torch.where(ca | cb, torch.zeros_like(r), r)
    return torch.where(ca | cb, nan, r)


def kld_rows(ra: Rows, rb: Rows, p: MetricPreset) -> torch.Tensor:
    pa = ra.density(p.density, False)
    pb = rb.density(p.density, False)
    ratio = torch.add(pa, p.kld_quotient_eps, out=ra.buffer("work"))
    # eps_log + pb / (pa + eps_q) in one pass, written over the denominator
    torch.addcdiv(torch.tensor(p.kld_log_eps, dtype=pa.dtype, device=pa.device), pb, ratio, out=ratio)
    return rowdot(pb, fast_log_(ratio))


def sim_rows(ra: Rows, rb: Rows, p: MetricPreset) -> torch.Tensor:
    pa = ra.density(p.density, p.sim_minmax)
    pb = rb.density(p.density, p.sim_minmax)
    return torch.minimum(pa, pb, out=ra.buffer("work")).sum(dim=1)


def nss_rows(r: Rows, fs: FixationSet, p: MetricPreset) -> torch.Tensor:
    return nss_value(r.flat, fs, r.mean, r.sum_sq, r.constant, p)


def nss_value(flat: torch.Tensor | None, fs: FixationSet, mean: torch.Tensor, sum_sq: torch.Tensor,
              const: torch.Tensor, p: MetricPreset, *, values: torch.Tensor | None = None) -> torch.Tensor:
    """NSS from per-row mean and sum of squared deviations, with the preset's constant-map rule.

    ``values``: the map values at ``fs``'s entries when already gathered (``flat`` unused).
    """
    n = fs.num_pixels
    std = torch.sqrt(sum_sq / max(n - p.std_ddof, 1))
    std = torch.where(const, torch.ones_like(std), std)
    vals = fs.values(flat) if values is None else values
    if bool((mean.abs() <= _NSS_FOLD_RATIO * std).all()):
        # (mean of the values - mean) / std: one segment sum instead of a z-score per fixation;
        # reassociation costs ~eps * |mean| / std, ~1e-13 at most under this bound
        weighted = vals if fs.unit_weights else vals * fs.weight
        out = (fs.per_image_sum(weighted) / fs.total - mean) / std
    else:
        z = (vals - mean.index_select(0, fs.image)) / std.index_select(0, fs.image)
        out = fs.per_image_sum(z * fs.weight) / fs.total
    # constant map: pysaliency/SALICON skip the division (NSS 0); MATLAB divides by 0 (NaN)
    fill = 0.0 if p.nss_constant == "zero" else _NAN
    return torch.where(const & (fs.total > 0), torch.full_like(out, fill), out)


def cc(pred: Any, gt: Any, preset: str | MetricPreset = "mit", *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Pearson linear correlation between prediction and ground-truth density.

    ``mit``: ``CC.m`` (z-scores with N-1 std, ``corr2``); a constant map gives NaN.
    ``pysaliency``: ``pysaliency.metrics.CC``; 0 if only the prediction is constant, NaN if the
    ground truth is. ``salicon``: NaN for a constant map (``np.corrcoef`` of a zero vector).
    Pearson r does not depend on the std convention, so presets differ only in the guards.
    """
    return cc_rows(*_pair(pred, gt, "cc", dtype), get_preset(preset))


def kld(pred: Any, gt: Any, preset: str | MetricPreset = "mit", *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """KL divergence ``KL(gt || pred)`` of the maps as distributions (natural log).

    ``sum(g * log(eps_log + g / (p + eps_q)))`` with the preset's epsilons.
    ``mit``: ``KLdiv.m`` — each map divided by its sum only if non-zero (an all-zero
    prediction stays zero, so the value is large but finite); no min-max. A negative
    prediction under a fixated pixel makes MATLAB return a complex number: kdnas returns NaN.
    ``pysaliency``: ``MIT_KLDiv`` — negative maps shifted, an all-zero map becomes uniform.
    """
    return kld_rows(*_pair(pred, gt, "kld", dtype), get_preset(preset))


def sim(pred: Any, gt: Any, preset: str | MetricPreset = "mit", *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Similarity (histogram intersection) ``sum(min(P, G))`` of the two maps as distributions.

    ``mit``: ``similarity.m`` — each non-zero map min-max normalised, then sum-normalised;
    an all-zero map stays zero (SIM 0); a constant non-zero map becomes NaN (0/0).
    ``pysaliency``: ``pysaliency.metrics.SIM`` — sum-normalised only, zero map -> uniform.
    """
    return sim_rows(*_pair(pred, gt, "sim", dtype), get_preset(preset))


def nss(pred: Any, fixations: Any, preset: str | MetricPreset = "mit", *,
        dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalized scanpath saliency: mean z-scored prediction at the fixations.

    ``mit``: ``NSS.m`` — std with N-1, binary fixation map (duplicates collapse); a constant
    map gives NaN. ``pysaliency``: NumPy std (N), every fixation counts, per-image mean;
    a constant map gives 0. ``salicon``: NumPy std, distinct points, constant -> 0.
    Images without fixations give NaN.
    """
    p = get_preset(preset)
    maps = as_maps(pred, name="nss: prediction", dtype=dtype)
    sums = check_finite(maps, metric="nss")
    fs = prepare_fixations(fixations, tuple(maps.shape), rounding=p.coordinate_rounding,
                           collapse=(p.duplicates == "collapse"), metric="nss", dtype=dtype, device=maps.device)
    return nss_rows(Rows(maps.flatten(1), sums), fs, p)


def _baseline_maps(baseline: Any, shape: tuple[int, int, int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if isinstance(baseline, str):
        if baseline != "uniform":
            raise ValueError(f"info_gain: baseline must be a map, a CenterBias or 'uniform', got {baseline!r}")
        return torch.full(shape, 1.0 / (shape[1] * shape[2]), dtype=dtype, device=device)
    maps = getattr(baseline, "density", baseline)
    base = as_maps(maps, name="info_gain: baseline", dtype=dtype, device=device)
    if base.shape[0] == 1 and shape[0] > 1:
        base = base.expand(shape[0], -1, -1)
    if tuple(base.shape) != shape:
        raise ValueError(f"info_gain: baseline has shape {tuple(base.shape)} but the prediction has shape "
                         f"{shape}; build the baseline at the scoring size")
    check_finite(base, metric="info_gain", name="baseline")
    return base


def info_gain(pred: Any, fixations: Any, baseline: Any = "uniform", preset: str | MetricPreset = "mit", *,
              pred_is_log_density: bool = False, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Information gain over a baseline, in bits per fixation (mean over each image's fixations).

    ``baseline``: a ``H x W`` / ``B x H x W`` map (e.g. a centre bias fitted on training
    fixations, see :func:`kdnas.metrics.saliency.baselines.center_bias_from_fixations`), an
    object with a ``density`` map, or ``"uniform"`` (density ``1/(H*W)``, used as is, never
    min-max normalised: a constant map would turn into NaN).

    ``mit``: ``InfoGain.m`` — both maps min-max normalised, sum-normalised,
    ``mean(log2(eps + p) - log2(eps + b))`` over the binary fixation map.
    ``pysaliency``: maps as densities (sum-normalised, no eps), every fixation counts; a zero
    density at a fixation gives ``-inf``. ``pred_is_log_density=True`` treats the prediction
    as a log-density (normalised with logsumexp), as for probabilistic models.
    """
    p = get_preset(preset)
    maps = as_maps(pred, name="info_gain: prediction", dtype=dtype)
    check_finite(maps, metric="info_gain")
    shape = tuple(maps.shape)
    uniform = isinstance(baseline, str) and baseline == "uniform"
    base = _baseline_maps(baseline, shape, dtype, maps.device)
    fs = prepare_fixations(fixations, shape, rounding=p.coordinate_rounding,
                           collapse=(p.duplicates == "collapse"), metric="info_gain", dtype=dtype,
                           device=maps.device)
    return info_gain_flat(maps.flatten(1), fs, base.reshape(shape[0], -1), p, uniform=uniform,
                          pred_is_log_density=pred_is_log_density)


def info_gain_flat(flat: torch.Tensor, fs: FixationSet, bflat: torch.Tensor, p: MetricPreset, *, uniform: bool,
                   pred_is_log_density: bool = False) -> torch.Tensor:
    if pred_is_log_density:
        logp = (flat - torch.logsumexp(flat, dim=1, keepdim=True)) / math.log(2.0)
        lp = fs.values(logp)
    else:
        pd = _mit_sum_normalise(_mit_minmax(flat)) if p.ig_minmax else to_density(flat, "pysaliency", minmax=False)
        lp = torch.log2(fs.values(pd) + p.ig_eps)
    if uniform:
        bd = bflat
    elif p.ig_minmax:
        bd = _mit_sum_normalise(_mit_minmax(bflat))
    else:
        bd = to_density(bflat, "pysaliency", minmax=False)
    lb = torch.log2(fs.values(bd) + p.ig_eps)
    return fs.per_image_sum((lp - lb) * fs.weight) / fs.total
