"""Fused engine behind :func:`kdnas.metrics.saliency.fast.batch_metrics`.

Per chunk of images (one 480 x 640 map, or many small ones) only the passes over pixels
run: extrema, sums, sums of squares, the prediction/ground-truth dot product, and the KLD
and SIM passes. Per-image scalars go through plain Python arithmetic, and everything that
works on fixations or per-image values (NSS, AUC, the CC formula, guards) runs once for the
whole batch at the end. KLD and SIM are evaluated on the raw maps with the normalisation
folded into per-image scalars, so no normalised copy of either map is made. With
``pa = (p - sa) / Sa`` and ``pb = (g - sb) / Sb`` (shift and sum of the preset's density rule):

* KLD ``sum(pb log(eps_l + pb / (pa + eps_q)))`` equals ``sum(gs log(eps_l + gs / d)) / Sb``
  with ``gs = g - sb`` and ``d = (p - sa + eps_q Sa) Sb / Sa``: one multiply-add, one
  division, one log and one dot product (plus the subtractions when a shift is not 0);
* SIM ``sum(min(pa, pb))`` equals ``1 - sum|g - k p - c0| / (2 |Sb|)`` with ``k = Sb / Sa``
  and ``c0 = sb - k sa``, because ``min(x, y) = (x + y - |x - y|) / 2`` and both sum to one.

Integer-valued predictions (8/16-bit maps cast to float: the maps as stored) get one
histogram over their levels; it gives the exact AUC (every fixation's count of pixels below
and equal to its level) and, exactly, the sums and sums of squares for CC and NSS.

Reassociation moves values by a few units in the last place (~1e-15): batch_metrics equals
the single-metric functions to 1e-12 (tested). Images the folded formulas do not cover
(all-zero or constant maps, shifts that would cancel digits, raw moments that would lose
digits) are scored with the single-metric code.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .auc import auc_exact_flat, auc_judd_flat
from .core import FixationSet, Scratch, fast_log_, rowdot
from .distribution import Rows, cc_rows, cc_value, kld_rows, nss_value, sim_rows
from .presets import MetricPreset
from .ranking import _MAX_INT_LEVELS, build_thresholds

# folded sums S = sum - n * shift lose digits when |sum| + n |shift| >> |S|; past this factor
# the image takes the single-metric path (which sums the shifted map)
_MAX_CANCELLATION = 100.0
# about this many values per row, spread over the map, are tested for a fractional part
# before the full pass (rejects continuous maps cheaply)
_PROBE = 256
# sub-histograms that consecutive pixels of one image are spread over (see integer_histogram)
_SPREAD = 8
_INT16_MAX = 32767


def extrema(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``(min, max)``; one fused pass for a single row (NaN propagates to both)."""
    if flat.shape[0] == 1:
        mn, mx = torch.aminmax(flat)
        return mn.view(1), mx.view(1)
    return flat.amin(dim=1), flat.amax(dim=1)


def integer_histogram(flat: torch.Tensor, lo: list[float], hi: list[float], scratch: Scratch, *,
                      integral: bool = False) -> tuple[str, torch.Tensor | None]:
    """Histogram of a chunk whose values are all integers in ``[0, 2**16)``.

    Returns ``("int", hist)`` with ``hist`` ``rows x levels`` (int64, level ``l`` = value
    ``l``; levels past the maximum may be present and empty), ``("float", None)`` when some
    value has a fractional part, or ``("unknown", None)`` when the range (negative values,
    too many levels) rules the histogram out untested. ``integral``: the values are known to
    be integers (the input had an integer dtype), so the test is skipped.
    """
    rows = flat.shape[0]
    if min(lo) < 0 or not max(hi) < _MAX_INT_LEVELS:
        return "unknown", None
    if not integral:
        if bool(torch.frac(flat[:, ::max(1, flat.shape[1] // _PROBE)]).any()):
            return "float", None
        # fractional parts are >= 0 here and a positive one keeps the sum positive: an exact test
        if float(torch.frac(flat, out=scratch.get("fused:work", flat)).sum()) != 0.0:
            return "float", None
    levels = int(max(hi)) + 1
    stride = max(256, 1 << (levels - 1).bit_length())  # one pattern for every 8-bit map
    if rows == 1 and _SPREAD * stride <= _INT16_MAX + 1:
        # neighbouring pixels share levels, and counting into the same bin back to back
        # serialises on that bin: pixel i counts into sub-histogram i % _SPREAD instead
        key = scratch.get("fused:key", flat, torch.int16).copy_(flat)  # exact: integers in range
        key += _spread_pattern(flat.shape[1], stride, scratch, flat.device)
        hist = torch.bincount(key.view(-1), minlength=_SPREAD * stride).view(_SPREAD, stride)
        return "int", hist.sum(dim=0, keepdim=True)  # levels past the maximum stay empty
    kind = torch.int16 if rows * levels <= _INT16_MAX else torch.int32
    key = scratch.get("fused:key", flat, kind).copy_(flat)
    if rows > 1:
        key += torch.arange(rows, dtype=kind, device=flat.device)[:, None] * levels
    return "int", torch.bincount(key.view(-1), minlength=rows * levels).view(rows, levels)


def _spread_pattern(n: int, stride: int, scratch: Scratch, device: torch.device) -> torch.Tensor:
    """``(i % _SPREAD) * stride`` for ``i < n`` (int16, ``1 x n``), kept in ``scratch``."""
    key = f"fused:spread:{stride}"
    pattern = scratch.cached.get(key)
    if pattern is None or pattern.shape[1] != n or pattern.device != device:
        pattern = ((torch.arange(n, device=device) % _SPREAD) * stride).to(torch.int16).view(1, n)
        scratch.cached[key] = pattern
    return pattern


def density_affine(total: float, lo: float, hi: float, n: int, rule: str, minmax: bool) -> tuple[float, float] | None:
    """``(shift, scale)`` with the preset's density ``(map - shift) / scale``, or ``None``.

    ``mit``: divide by the sum (min-max first when ``minmax``); ``pysaliency``: shift a
    negative map to min 0, divide by the sum. ``None`` leaves the image to the single-metric
    code: zero sums (all-zero maps, MIT's 0/0), constant maps under min-max, and shifts
    whose folded sum ``total - n * shift`` would cancel digits.
    """
    if rule == "mit":
        shift = lo if minmax else 0.0
        if minmax and lo == hi:
            return None
    else:
        shift = lo if lo < 0 else 0.0
    scale = total - n * shift
    if scale == 0 or not math.isfinite(scale) or abs(total) + n * abs(shift) > _MAX_CANCELLATION * abs(scale):
        return None
    return shift, scale


def _column(values: list[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)[:, None]


class FusedEngine:
    """Accumulates one batch's metrics chunk by chunk; :meth:`finish` returns ``{name: (B,)}``.

    ``fs``: the batch's fixations (duplicates per preset), ``judd_fs``: the ones AUC-Judd
    uses; ``flat_all``/``gflat_all``: the whole ``B x N`` batch (the single-metric fallback
    rereads the images it handles); ``integral``: the predictions came as integers.
    ``flat_all`` may keep an integer dtype (8-bit maps as stored): each chunk is then
    converted to ``dtype`` in a reused buffer instead of materialising the whole batch.
    """

    def __init__(self, names: list[str], p: MetricPreset, flat_all: torch.Tensor, gflat_all: torch.Tensor | None,
                 fs: FixationSet | None, judd_fs: FixationSet | None, *, judd_jitter: bool, seed: int | None,
                 integral: bool = False, dtype: torch.dtype | None = None):
        self.names, self.p = names, p
        self.flat_all, self.gflat_all = flat_all, gflat_all
        self.fs, self.judd_fs = fs, judd_fs
        self.judd_jitter, self.seed, self.integral = judd_jitter, seed, integral
        self.dtype = flat_all.dtype if dtype is None else dtype
        self.batch, self.n = flat_all.shape
        self.scratch = Scratch()
        self.want = set(names)
        self.pred_sq = bool(self.want & {"CC", "NSS"})
        self.stats: dict[str, list[float]] = {k: [] for k in ("lo", "hi", "sum", "sq", "glo", "ghi", "gsum", "gsq",
                                                              "cross", "kld", "sim")}
        self.fix_values: list[torch.Tensor] = []
        self.hists: list[tuple[int, torch.Tensor]] = []
        self.auc: dict[int, torch.Tensor] = {}
        self.judd: list[torch.Tensor] = []
        self.eps_l = torch.tensor(p.kld_log_eps, dtype=self.dtype, device=flat_all.device)
        # pysaliency's jitter is one noise stream over the batch: drawn chunk by chunk it would
        # depend on the chunking, so that AUC-Judd is computed on the whole batch at the end
        self._judd_whole_batch = judd_jitter and p.jitter_kind == "numpy_normal_stream"

    # -- per chunk -----------------------------------------------------------------------
    def add(self, start: int, stop: int) -> None:
        """Run the pixel passes of images ``start:stop``."""
        pf = self.flat_all[start:stop]
        if pf.dtype != self.dtype:
            pf = self.scratch.get("fused:pred", pf, self.dtype).copy_(pf)
        gf = None if self.gflat_all is None else self.gflat_all[start:stop]
        lo_t, hi_t = extrema(pf)
        lo, hi, *g_ext = torch.stack([lo_t, hi_t, *(extrema(gf) if gf is not None else ())]).tolist()
        self._require_finite(lo, hi, "prediction", start)
        if gf is not None:
            self._require_finite(g_ext[0], g_ext[1], "density", start)
        kind, hist = (integer_histogram(pf, lo, hi, self.scratch, integral=self.integral) if "AUC" in self.want
                      else ("unknown", None))
        cols: list[tuple[str, torch.Tensor]] = []
        if hist is not None:  # exact moments from the histogram: no pass over the map
            moments = hist.to(torch.float64) @ self._powers(hist.shape[1], hist.device)
            cols += [("sum", moments[:, 0]), ("sq", moments[:, 1])]
            self.hists.append((start, hist))
        else:
            cols.append(("sum", pf.sum(dim=1)))
            if self.pred_sq:
                cols.append(("sq", rowdot(pf, pf)))
        if gf is not None:
            cols.append(("gsum", gf.sum(dim=1)))
            if "CC" in self.want:
                cols += [("gsq", rowdot(gf, gf)), ("cross", rowdot(pf, gf))]
        table = torch.stack([c.to(torch.float64) for _, c in cols], 1).tolist()
        st = self.stats
        st["lo"] += lo
        st["hi"] += hi
        for j, (name, _) in enumerate(cols):
            st[name] += [row[j] for row in table]
        if gf is not None:
            st["glo"] += g_ext[0]
            st["ghi"] += g_ext[1]
            self._map_passes(pf, gf, start)
        if self.fs is not None:
            # the chunk is in cache now: gather its fixated values here, score them at the end
            a, b = self.fs.offsets[start], self.fs.offsets[stop]
            self.fix_values.append(self.flat_all.view(-1).index_select(0, self.fs.keys[a:b]).to(self.dtype))
            if "AUC" in self.want and hist is None:
                fsc = self.fs.rows(start, stop)
                thr = build_thresholds(self.fix_values[-1], fsc.image, fsc.weight, fsc.batch)
                self.auc[start] = auc_exact_flat(pf, fsc, "all_pixels", "lut" if kind == "float" else "auto",
                                                 lo=lo_t, hi=hi_t, thr=thr, scratch=self.scratch)
            if "AUC_Judd" in self.want and not self._judd_whole_batch:
                self.judd.append(auc_judd_flat(pf, self.judd_fs.rows(start, stop), self.p, jitter=self.judd_jitter,
                                               seed=self.seed))

    def _powers(self, levels: int, device: torch.device) -> torch.Tensor:
        """``levels x 2`` matrix ``[l, l^2]`` (float64): histogram -> sum, sum of squares."""
        key = f"fused:powers:{levels}"
        if key not in self.scratch.cached:
            lev = torch.arange(levels, dtype=torch.float64, device=device)
            self.scratch.cached[key] = torch.stack([lev, lev * lev], 1)
        return self.scratch.cached[key]

    def _require_finite(self, lo: list[float], hi: list[float], name: str, offset: int) -> None:
        # extrema propagate NaN and show infinities: finite extrema clear the whole image
        for k, (a, b) in enumerate(zip(lo, hi, strict=True)):
            if not (math.isfinite(a) and math.isfinite(b)):
                row = (self.flat_all if name == "prediction" else self.gflat_all)[offset + k]
                what = "NaN" if bool(torch.isnan(row).any()) else "infinite values"
                raise ValueError(f"batch_metrics: {name} of image {offset + k} contains {what}")

    def _map_passes(self, pf: torch.Tensor, gf: torch.Tensor, start: int) -> None:
        """KLD and SIM passes of one chunk (per-image partial sums; NaN where not covered)."""
        p, st, n = self.p, self.stats, self.n
        rows = range(start, start + pf.shape[0])
        shifted = None  # (shifts, g - shifts) kept from KLD for SIM
        if "KLD" in self.want:
            a = [density_affine(st["sum"][i], st["lo"][i], st["hi"][i], n, p.density, False) for i in rows]
            b = [density_affine(st["gsum"][i], st["glo"][i], st["ghi"][i], n, p.density, False) for i in rows]
            ok = [x is not None and y is not None for x, y in zip(a, b, strict=True)]
            a = [x if good else (0.0, 1.0) for x, good in zip(a, ok, strict=True)]
            b = [y if good else (0.0, 1.0) for y, good in zip(b, ok, strict=True)]
            gs = gf
            if any(sb for sb, _ in b):
                shifts = [sb for sb, _ in b]
                gs = torch.sub(gf, _column(shifts, gf), out=self.scratch.get("fused:g", gf))
                shifted = (shifts, gs)
            # d = ((p - sa) + eps_q Sa) Sb / Sa, so that gs / d = Sb * pb / (pa + eps_q). The shift
            # is subtracted first, exactly like the reference: at the map's minimum pa + eps_q is
            # eps_q itself, and folding -sa into the eps term would cancel its digits
            inv_c = [sb_scale / sa_scale for (_, sa_scale), (_, sb_scale) in zip(a, b, strict=True)]
            offs = [p.kld_quotient_eps * sa_scale * r for (_, sa_scale), r in zip(a, inv_c, strict=True)]
            work = self.scratch.get("fused:work", pf)
            shifts = [sa for sa, _ in a]
            base = torch.sub(pf, _column(shifts, pf), out=work) if any(shifts) else pf
            if len(inv_c) == 1:  # scalar coefficients take torch's fast path
                d = torch.add(torch.tensor(offs[0], dtype=pf.dtype, device=pf.device), base, alpha=inv_c[0], out=work)
            else:
                d = torch.addcmul(_column(offs, pf).expand_as(pf), base, _column(inv_c, pf), out=work)
            ratio = fast_log_(torch.addcdiv(self.eps_l, gs, d, out=d))
            part = rowdot(gs, ratio).tolist()
            st["kld"] += [v / sb_scale if good else math.nan for v, (_, sb_scale), good in zip(part, b, ok, strict=True)]
        if "SIM" in self.want:
            a = [density_affine(st["sum"][i], st["lo"][i], st["hi"][i], n, p.density, p.sim_minmax) for i in rows]
            b = [density_affine(st["gsum"][i], st["glo"][i], st["ghi"][i], n, p.density, p.sim_minmax) for i in rows]
            ok = [x is not None and y is not None for x, y in zip(a, b, strict=True)]
            a = [x if good else (0.0, 1.0) for x, good in zip(a, ok, strict=True)]
            b = [y if good else (0.0, 1.0) for y, good in zip(b, ok, strict=True)]
            k = [sb_scale / sa_scale for (_, sa_scale), (_, sb_scale) in zip(a, b, strict=True)]
            reuse = shifted is not None and shifted[0] == [sb for sb, _ in b]
            base = shifted[1] if reuse else gf
            c0 = [(0.0 if reuse else sb) - kk * sa for (sa, _), (sb, _), kk in zip(a, b, k, strict=True)]
            work = self.scratch.get("fused:work", pf)
            if len(k) == 1:
                diff = torch.add(base, pf, alpha=-k[0], out=work)
            else:
                diff = torch.addcmul(base, pf, _column([-kk for kk in k], pf), out=work)
            if any(c0):
                diff.sub_(_column(c0, pf))
            part = diff.abs_().sum(dim=1).tolist()
            st["sim"] += [1.0 - v / (2.0 * abs(sb_scale)) if good else math.nan
                          for v, (_, sb_scale), good in zip(part, b, ok, strict=True)]

    # -- whole batch ---------------------------------------------------------------------
    def finish(self) -> dict[str, torch.Tensor]:
        """Per-image values of every requested metric handled here."""
        st, dev = self.stats, self.flat_all.device
        vec = {k: torch.tensor(v, dtype=torch.float64, device=dev) for k, v in st.items() if v}
        out: dict[str, torch.Tensor] = {}
        if self.pred_sq:
            pred, pred_exact = self._rows(vec["sum"], vec["lo"], vec["hi"], vec["sq"], self.flat_all)
        if "CC" in self.want:
            gt, gt_exact = self._rows(vec["gsum"], vec["glo"], vec["ghi"], vec["gsq"], self.gflat_all)
            cross = vec["cross"] - vec["sum"] * vec["gsum"] / self.n
            cc = cc_value(cross, pred.sum_sq, gt.sum_sq, pred.constant, gt.constant, self.p)
            # the raw cross moment shares the digits the raw squares lose: single-metric code there
            out["CC"] = self._fallback(cc, ~(pred_exact & gt_exact), lambda ra, rb: cc_rows(ra, rb, self.p))
        for name, fn in (("KLD", kld_rows), ("SIM", sim_rows)):
            if name in self.want:
                v = vec[name.lower()]
                out[name] = self._fallback(v, torch.isnan(v), lambda ra, rb, fn=fn: fn(ra, rb, self.p))
        values = torch.cat(self.fix_values) if self.fs is not None else None
        if "NSS" in self.want:
            out["NSS"] = nss_value(None, self.fs, pred.mean, pred.sum_sq, pred.constant, self.p, values=values)
        if "AUC" in self.want:
            out["AUC"] = self._auc(values)
        if "AUC_Judd" in self.want:
            out["AUC_Judd"] = (auc_judd_flat(self.flat_all.to(self.dtype), self.judd_fs, self.p, jitter=True,
                                             seed=self.seed)
                               if self._judd_whole_batch else torch.cat(self.judd))
        return {k: v.to(self.dtype) for k, v in out.items()}

    def _rows(self, total: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, raw_sq: torch.Tensor,
              flat: torch.Tensor) -> tuple[Rows, torch.Tensor]:
        """Per-image statistics with accurate sums of squared deviations, and where the raw moments held."""
        r = Rows(flat).set_stats(total=total, lo=lo, hi=hi)
        ss = raw_sq - total * (total / self.n)
        exact = moments_ok_rows(raw_sq, ss, self.dtype)
        if not bool(exact.all()):  # two-pass centred sums where the raw moments lose digits
            ss = ss.clone()
            for i in torch.nonzero(~exact)[:, 0].tolist():
                centred = flat[i:i + 1].to(torch.float64) - r.mean[i]
                ss[i] = rowdot(centred, centred)[0]
        r.set_sum_sq(ss)
        return r, exact

    def _fallback(self, values: torch.Tensor, bad: torch.Tensor,
                  fn: Callable[[Rows, Rows], torch.Tensor]) -> torch.Tensor:
        """Single-metric values for the images the folded formulas do not cover."""
        if not bool(bad.any()):
            return values
        idx = torch.nonzero(bad)[:, 0]
        values = values.clone()
        values[idx] = fn(Rows(self.flat_all[idx].to(self.dtype)), Rows(self.gflat_all[idx])).to(values.dtype)
        return values

    def _auc(self, values: torch.Tensor) -> torch.Tensor:
        """Exact all-pixel AUC: integer images from their histograms, the others as computed per chunk."""
        fs, dev = self.fs, values.device
        out = torch.full((self.batch,), math.nan, dtype=torch.float64, device=dev)
        for start, v in self.auc.items():
            out[start:start + v.shape[0]] = v.to(torch.float64)
        if self.hists:
            levels = max(h.shape[1] for _, h in self.hists)
            score = torch.zeros((self.batch, levels), dtype=torch.float64, device=dev)
            if all(h.shape == (1, levels) for _, h in self.hists):  # one map per chunk, same width
                rows = torch.tensor([start for start, _ in self.hists], device=dev)
                score[rows] = torch.cat([h for _, h in self.hists]).to(torch.float64)
            else:
                for start, h in self.hists:
                    score[start:start + h.shape[0], :h.shape[1]] = h.to(torch.float64)
            # a fixation on level l outranks the pixels below l and ties with those on l
            score = torch.cumsum(score, dim=1).sub_(score, alpha=0.5)
            # entries of images counted otherwise get any in-range level: their rows are dropped below
            lvl = values.clamp(0, levels - 1).to(torch.int64)
            weighted = score.view(-1).index_select(0, fs.image * levels + lvl)
            if not bool((fs.weight == 1).all()):
                weighted = weighted * fs.weight.to(torch.float64)
            auc = fs.per_image_sum(weighted) / (fs.total.to(torch.float64) * self.n)
            for start, h in self.hists:
                out[start:start + h.shape[0]] = auc[start:start + h.shape[0]]
        return torch.where(fs.total > 0, out, torch.full_like(out, math.nan))


def moments_ok_rows(raw: torch.Tensor, ss: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Per image: ``ss = sum x^2 - n mean^2`` keeps ~1e-12 (float32 data: ~1e-6) relative accuracy.

    The per-image version of :func:`kdnas.metrics.saliency.distribution.moments_ok`.
    """
    max_ratio = (1e-12 if dtype == torch.float64 else 1e-6) / torch.finfo(dtype).eps
    return (ss * max_ratio >= raw) & (ss > 0)
