"""``batch_metrics``: every per-image saliency metric of a batch in one call.

The trainer calls this each validation epoch on model-output-size maps; the benchmark
(``benchmarks/saliency_metrics.py``) times it against pysaliency. Inputs are validated and
converted once, then :class:`kdnas.metrics.saliency.fused.FusedEngine` runs the passes over
pixels chunk by chunk (one 480 x 640 map, or ~40 maps of 96 x 128, so the passes stay in
cache), sharing per-image statistics between the metrics, and computes everything per
fixation once for the whole batch. The values are those of the individual metric functions
to 1e-12 (tested). AUC-Judd follows the preset's jitter default (``mit``/``salicon``:
none, ``pysaliency``: seeded, as pysaliency's ``AUC_Judd``); AUC-Borji and sAUC are seeded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .auc import auc_borji, auc_shuffled
from .core import as_maps, check_same_shape, prepare_fixations
from .distribution import info_gain
from .fused import FusedEngine
from .presets import MetricPreset, get_preset

MAP_METRICS = ("CC", "KLD", "SIM")
FIXATION_METRICS = ("NSS", "AUC_Judd", "AUC", "AUC_Borji", "sAUC", "IG")
ALL_METRICS = MAP_METRICS + FIXATION_METRICS
DEFAULT_METRICS = ("CC", "KLD", "NSS", "SIM", "AUC_Judd")
# computed chunk by chunk by the fused engine; the sampled AUCs and IG run on the whole batch
ENGINE_METRICS = ("CC", "KLD", "SIM", "NSS", "AUC", "AUC_Judd")
# values per chunk: one 480 x 640 map, or ~40 maps of 96 x 128 (keeps passes in cache)
_CHUNK_VALUES = 1 << 19


def batch_metrics(pred: Any, density: Any = None, fixations: Any = None,
                  metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS, preset: str | MetricPreset = "mit", *,
                  dtype: torch.dtype = torch.float64, judd_jitter: bool | None = None, seed: int | None = None,
                  baseline: Any = None, other_fixations: Any = None) -> dict[str, torch.Tensor]:
    """Per-image metrics for a batch: ``{name: tensor (B,)}``.

    ``pred``/``density``: ``B x H x W`` (same size; no resizing here). ``fixations``: list of
    ``N_i x 2`` 0-based ``(x, y)`` or a ``B x H x W`` count map. Metric names: ``CC``, ``KLD``,
    ``SIM`` (need ``density``), ``NSS``, ``AUC_Judd``, ``AUC`` (exact, all-pixel negatives),
    ``AUC_Borji``, ``sAUC`` (needs ``other_fixations``), ``IG`` (needs ``baseline``).
    ``judd_jitter``: ``None`` follows the preset (see :func:`kdnas.metrics.saliency.auc.auc_judd`).
    """
    p = get_preset(preset)
    judd_jitter = p.judd_jitter if judd_jitter is None else bool(judd_jitter)
    names = list(metrics)
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"batch_metrics: unknown metrics {unknown}; choose from {list(ALL_METRICS)}")
    integral = _integer_dtype(pred)
    # integer maps (8/16-bit, as stored) are converted chunk by chunk, not as a whole batch
    maps = as_maps(pred, name="batch_metrics: prediction", dtype=None if integral else dtype).contiguous()
    shape = tuple(maps.shape)
    need_gt = [m for m in names if m in MAP_METRICS]
    need_fix = [m for m in names if m in FIXATION_METRICS]
    gt = None
    if need_gt:
        if density is None:
            raise ValueError(f"batch_metrics: {need_gt} need a density map")
        gt = as_maps(density, name="batch_metrics: density", dtype=dtype, device=maps.device).contiguous()
        check_same_shape(maps, gt, metric="batch_metrics", names=("prediction", "density"))
    flat_all = maps.flatten(1)
    fs = judd_fs = None
    if need_fix:
        if fixations is None:
            raise ValueError(f"batch_metrics: {need_fix} need fixations")
        fs = prepare_fixations(fixations, shape, rounding=p.coordinate_rounding,
                               collapse=(p.duplicates == "collapse"), metric="batch_metrics", dtype=dtype,
                               device=maps.device)
        judd_fs = fs.collapsed() if (p.judd_rule == "mit" and p.duplicates != "collapse") else fs
        if "sAUC" in names and other_fixations is None:
            raise ValueError("batch_metrics: sAUC needs other_fixations")
        if "IG" in names and baseline is None:
            raise ValueError("batch_metrics: IG needs a baseline (a centre-bias map or 'uniform')")

    result: dict[str, torch.Tensor] = {}
    if set(names) & set(ENGINE_METRICS):
        engine = FusedEngine(names, p, flat_all, gt.flatten(1) if gt is not None else None, fs, judd_fs,
                             judd_jitter=judd_jitter, seed=seed, integral=integral, dtype=dtype)
        rows_per_chunk = max(1, _CHUNK_VALUES // flat_all.shape[1])
        for s in range(0, shape[0], rows_per_chunk):
            engine.add(s, min(shape[0], s + rows_per_chunk))
        result = engine.finish()
    if set(names) & {"AUC_Borji", "sAUC", "IG"}:
        maps = maps.to(dtype)
    if "AUC_Borji" in names:
        result["AUC_Borji"] = auc_borji(maps, fixations, p, seed=seed, dtype=dtype)
    if "sAUC" in names:
        result["sAUC"] = auc_shuffled(maps, fixations, other_fixations, p, seed=seed, dtype=dtype)
    if "IG" in names:
        result["IG"] = info_gain(maps, fixations, baseline, p, dtype=dtype)
    return {m: result[m] for m in names}



def _integer_dtype(x: Any) -> bool:
    """An integer array or tensor (8/16-bit maps as stored): its values need no integrality test."""
    if isinstance(x, torch.Tensor):
        return not (x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool)
    return isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.integer)
