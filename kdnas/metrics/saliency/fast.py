"""``batch_metrics``: every per-image saliency metric of a batch in one call.

The trainer calls this each validation epoch on model-output-size maps. Inputs are
validated and converted once; per-row statistics (sums, extrema, moments, densities) are
computed once and shared by all metrics, and the batch is processed in chunks of images that
fit in cache (one 480 x 640 map, or ~40 maps of 96 x 128), reusing work buffers. The values are exactly those of the individual metric functions
(tested). It is deterministic: AUC-Judd runs **without jitter** by default
(``judd_jitter=True`` adds the preset's seeded jitter); AUC-Borji and sAUC use seeded
generators.
"""

from __future__ import annotations

from typing import Any

import torch

from .auc import auc_borji, auc_exact_flat, auc_judd_flat, auc_shuffled
from .core import Scratch, as_maps, check_finite, check_same_shape, prepare_fixations
from .distribution import Rows, cc_rows, info_gain, kld_rows, nss_rows, sim_rows
from .presets import MetricPreset, get_preset
from .ranking import build_thresholds

MAP_METRICS = ("CC", "KLD", "SIM")
FIXATION_METRICS = ("NSS", "AUC_Judd", "AUC", "AUC_Borji", "sAUC", "IG")
ALL_METRICS = MAP_METRICS + FIXATION_METRICS
DEFAULT_METRICS = ("CC", "KLD", "NSS", "SIM", "AUC_Judd")
# values per chunk: one 480 x 640 map, or ~40 maps of 96 x 128 (keeps passes in cache)
_CHUNK_VALUES = 1 << 19


def batch_metrics(pred: Any, density: Any = None, fixations: Any = None,
                  metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS, preset: str | MetricPreset = "mit", *,
                  dtype: torch.dtype = torch.float64, judd_jitter: bool = False, seed: int | None = None,
                  baseline: Any = None, other_fixations: Any = None) -> dict[str, torch.Tensor]:
    """Per-image metrics for a batch: ``{name: tensor (B,)}``.

    ``pred``/``density``: ``B x H x W`` (same size; no resizing here). ``fixations``: list of
    ``N_i x 2`` 0-based ``(x, y)`` or a ``B x H x W`` count map. Metric names: ``CC``, ``KLD``,
    ``SIM`` (need ``density``), ``NSS``, ``AUC_Judd``, ``AUC`` (exact, all-pixel negatives),
    ``AUC_Borji``, ``sAUC`` (needs ``other_fixations``), ``IG`` (needs ``baseline``).
    """
    p = get_preset(preset)
    names = list(metrics)
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"batch_metrics: unknown metrics {unknown}; choose from {list(ALL_METRICS)}")
    maps = as_maps(pred, name="batch_metrics: prediction", dtype=dtype)
    sums = check_finite(maps, metric="batch_metrics")
    shape = tuple(maps.shape)
    need_gt = [m for m in names if m in MAP_METRICS]
    need_fix = [m for m in names if m in FIXATION_METRICS]
    gt = gsums = None
    if need_gt:
        if density is None:
            raise ValueError(f"batch_metrics: {need_gt} need a density map")
        gt = as_maps(density, name="batch_metrics: density", dtype=dtype, device=maps.device)
        check_same_shape(maps, gt, metric="batch_metrics", names=("prediction", "density"))
        gsums = check_finite(gt, metric="batch_metrics", name="density")
    flat_all = maps.flatten(1)
    fs = judd_fs = thr = None
    if need_fix:
        if fixations is None:
            raise ValueError(f"batch_metrics: {need_fix} need fixations")
        fs = prepare_fixations(fixations, shape, rounding=p.coordinate_rounding,
                               collapse=(p.duplicates == "collapse"), metric="batch_metrics", dtype=dtype,
                               device=maps.device)
        judd_fs = fs.collapsed() if (p.judd_rule == "mit" and p.duplicates != "collapse") else fs
        if "AUC" in names:  # thresholds for the whole batch at once: one sort, few small ops
            thr = build_thresholds(fs.values(flat_all), fs.image, fs.weight, fs.batch)
        if "sAUC" in names and other_fixations is None:
            raise ValueError("batch_metrics: sAUC needs other_fixations")
        if "IG" in names and baseline is None:
            raise ValueError("batch_metrics: IG needs a baseline (a centre-bias map or 'uniform')")

    out: dict[str, list[torch.Tensor]] = {m: [] for m in names}
    gflat_all = gt.flatten(1) if gt is not None else None
    rows_per_chunk = max(1, _CHUNK_VALUES // flat_all.shape[1])
    scratch = Scratch()
    for s in range(0, shape[0], rows_per_chunk):
        e = min(shape[0], s + rows_per_chunk)
        ra = Rows(flat_all[s:e], sums[s:e], scratch, "pred")
        if gflat_all is not None:
            rb = Rows(gflat_all[s:e], gsums[s:e], scratch, "gt")
            if "CC" in names:
                out["CC"].append(cc_rows(ra, rb, p))
            if "KLD" in names:
                out["KLD"].append(kld_rows(ra, rb, p))
            if "SIM" in names:
                out["SIM"].append(sim_rows(ra, rb, p))
        if fs is not None:
            fsc = fs.rows(s, e)
            if "NSS" in names:
                out["NSS"].append(nss_rows(ra, fsc, p))
            if "AUC" in names:
                out["AUC"].append(auc_exact_flat(ra.flat, fsc, "all_pixels", lo=ra.min, hi=ra.max,
                                                 thr=thr.rows(s, e)))
            if "AUC_Judd" in names:
                out["AUC_Judd"].append(auc_judd_flat(ra.flat, judd_fs.rows(s, e), p, jitter=judd_jitter,
                                                     seed=seed))
    result = {m: torch.cat(v) for m, v in out.items() if v}
    if "AUC_Borji" in names:
        result["AUC_Borji"] = auc_borji(maps, fixations, p, seed=seed, dtype=dtype)
    if "sAUC" in names:
        result["sAUC"] = auc_shuffled(maps, fixations, other_fixations, p, seed=seed, dtype=dtype)
    if "IG" in names:
        result["IG"] = info_gain(maps, fixations, baseline, p, dtype=dtype)
    return {m: result[m] for m in names}
