"""Per-stimulus scoring at native resolution, and an accumulator for whole datasets.

``score_sample`` resizes a prediction to the stimulus' size (the preset's documented
interpolation), builds the ground-truth map the preset needs (the dataset density when
there is one, otherwise the preset's blur of the fixations) and returns plain floats.
``SaliencyEvaluator`` collects per-image rows and a summary that states the protocol:
preset, interpolation, ground truth, blur, baseline, sAUC negatives and averaging.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdnas.data.types import SaliencySample
from kdnas.utils.io import atomic_write_json, atomic_write_text

from .auc import auc_borji, auc_exact, auc_judd, auc_shuffled
from .baselines import CenterBias
from .blur import gaussian_blur, mit_blur
from .core import fixation_map
from .distribution import cc, info_gain, kld, nss, sim
from .emd import emd
from .presets import MetricPreset, get_preset
from .resize import resize_prediction

#: metrics ``score_sample`` computes when none are named (sAUC and IG only with their inputs)
DEFAULT_EVAL_METRICS = ("AUC_Judd", "AUC_Borji", "sAUC", "NSS", "CC", "KLD", "SIM", "IG")
#: every metric name ``score_sample`` and :class:`SaliencyEvaluator` accept
KNOWN = ("AUC_Judd", "AUC_Borji", "sAUC", "AUC", "NSS", "CC", "KLD", "SIM", "IG", "EMD")
# add(..., baseline=_UNSET) keeps the evaluator's own baseline
_UNSET: Any = object()


def gt_description(p: MetricPreset) -> str:
    """How the preset builds the empirical map from fixations (for protocol reports)."""
    if p.gt_blur == "antonio":
        return f"MIT antonioGaussian fc={p.gt_blur_fc:g} cycles/image of the binary fixation map"
    if p.gt_blur == "gaussian":
        kind = "binary fixation map" if p.duplicates == "collapse" else "fixation count map"
        return (f"gaussian_filter sigma={p.gt_blur_sigma:g} px (reflect) of the {kind}"
                + (", then min-max" if p.gt_minmax else ""))
    return "dataset density required (gt_blur='none')"


def build_ground_truth(sample: SaliencySample, p: MetricPreset, source: str = "auto") -> tuple[torch.Tensor, str]:
    """The empirical map for CC/KLD/SIM/EMD at the stimulus size, and where it came from."""
    h, w = sample.size
    if source not in ("auto", "density", "fixations"):
        raise ValueError(f"score_sample: gt_source must be auto, density or fixations, got {source!r}")
    if source in ("auto", "density") and sample.density is not None:
        dens = torch.as_tensor(sample.density, dtype=torch.float64)
        if tuple(dens.shape) != (h, w):
            raise ValueError(f"score_sample: density of {sample.name!r} has shape {tuple(dens.shape)} but the "
                             f"stimulus is {h} x {w}")
        return dens, "dataset density"
    if source == "density":
        raise ValueError(f"score_sample: {sample.name!r} has no dataset density")
    if p.gt_blur == "none":
        raise ValueError(f"score_sample: preset {p.name!r} needs a dataset density and {sample.name!r} has none")
    fmap = fixation_map([sample.fixations], (h, w), rounding=p.coordinate_rounding,
                        binary=(p.duplicates == "collapse" or p.gt_blur == "antonio"))
    if p.gt_blur == "antonio":
        gt = mit_blur(fmap, p.gt_blur_fc)[0]
    else:
        gt = gaussian_blur(fmap, p.gt_blur_sigma)[0]
        if p.gt_minmax:
            gt = (gt - gt.min()) / (gt.max() - gt.min())
    return gt, gt_description(p)


def score_sample(pred_map: Any, sample: SaliencySample, preset: str | MetricPreset = "mit",
                 metrics: tuple[str, ...] | list[str] | None = None, baseline: Any = None,
                 other_fixations: Any = None, *, interpolation: str | None = None, gt_source: str = "auto",
                 judd_jitter: bool | None = None, seed: int | None = None) -> dict[str, float]:
    """Score one prediction against one stimulus at its native resolution.

    ``metrics`` default: AUC_Judd, AUC_Borji, NSS, CC, KLD, SIM, plus sAUC when
    ``other_fixations`` is given and IG when ``baseline`` is given (a map, a
    :class:`CenterBias` or ``"uniform"``). Also available: ``AUC`` (exact, all pixels) and
    ``EMD``. ``other_fixations``: other images' fixations in this stimulus' frame (see
    :func:`kdnas.metrics.saliency.baselines.other_image_fixations`).
    """
    p = get_preset(preset)
    if metrics is None:
        metrics = [m for m in DEFAULT_EVAL_METRICS
                   if not (m == "sAUC" and other_fixations is None) and not (m == "IG" and baseline is None)]
    unknown = [m for m in metrics if m not in KNOWN]
    if unknown:
        raise ValueError(f"score_sample: unknown metrics {unknown}; choose from {list(KNOWN)}")
    pred = resize_prediction(pred_map, sample.size, interpolation, preset=p)
    fix = [sample.fixations]
    out: dict[str, float] = {}
    gt = None
    for m in metrics:
        if m in ("CC", "KLD", "SIM", "EMD") and gt is None:
            gt, _ = build_ground_truth(sample, p, gt_source)
        if m == "AUC_Judd":
            v = auc_judd(pred, fix, p, jitter=judd_jitter, seed=seed)
        elif m == "AUC_Borji":
            v = auc_borji(pred, fix, p, seed=seed)
        elif m == "AUC":
            v = auc_exact(pred, fix, "all_pixels", preset=p)
        elif m == "sAUC":
            if other_fixations is None:
                raise ValueError("score_sample: sAUC needs other_fixations")
            # one image: an N x 2 array and an H x W count map are both accepted as is
            v = auc_shuffled(pred, fix, other_fixations, p, seed=seed)
        elif m == "NSS":
            v = nss(pred, fix, p)
        elif m == "IG":
            if baseline is None:
                raise ValueError("score_sample: IG needs a baseline (CenterBias, map or 'uniform')")
            v = info_gain(pred, fix, baseline, p)
        elif m == "CC":
            v = cc(pred, gt, p)
        elif m == "KLD":
            v = kld(pred, gt, p)
        elif m == "SIM":
            v = sim(pred, gt, p)
        else:
            v = emd(pred, gt)
        out[m] = float(v[0])
    return out


def describe_baseline(baseline: Any) -> str:
    """One line naming an IG baseline (for protocol reports)."""
    if baseline is None:
        return "none (IG not scored)"
    if isinstance(baseline, str):
        return "uniform density" if baseline == "uniform" else baseline
    if isinstance(baseline, CenterBias):
        return baseline.describe()
    return "user-supplied baseline map"


@dataclass
class SaliencyEvaluator:
    """Accumulate per-image metric rows under one protocol; write CSV + JSON atomically.

    ``baseline`` is the IG baseline for every image unless :meth:`add` is given one for
    that image (e.g. a centre bias built at each stimulus' size); the summary names every
    baseline used.
    """

    preset: str | MetricPreset = "mit"
    metrics: tuple[str, ...] | None = None
    baseline: Any = None
    interpolation: str | None = None
    gt_source: str = "auto"
    judd_jitter: bool | None = None
    seed: int | None = None
    dataset: str | None = None
    split: str | None = None
    negatives: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    _gt_sources: set[str] = field(default_factory=set)
    _baselines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._preset = get_preset(self.preset)

    def add(self, pred_map: Any, sample: SaliencySample, other_fixations: Any = None, *,
            baseline: Any = _UNSET) -> dict[str, Any]:
        """Score one stimulus and keep its row (``name``, size, fixation count, metric values).

        ``baseline``: the IG baseline for this image (a map at the stimulus size, a
        :class:`CenterBias` or ``"uniform"``); omitted, the evaluator's ``baseline`` is used.
        """
        base = self.baseline if baseline is _UNSET else baseline
        values = score_sample(pred_map, sample, self._preset, self.metrics, base, other_fixations,
                              interpolation=self.interpolation, gt_source=self.gt_source,
                              judd_jitter=self.judd_jitter, seed=self.seed)
        if "IG" in values:
            described = describe_baseline(base)
            if described not in self._baselines:
                self._baselines.append(described)
        if any(m in values for m in ("CC", "KLD", "SIM", "EMD")):
            self._gt_sources.add("dataset density" if (sample.density is not None and self.gt_source != "fixations")
                                 else gt_description(self._preset))
        row = {"name": sample.name, "height": sample.size[0], "width": sample.size[1],
               "fixations": int(len(sample.fixations)), **values}
        self.rows.append(row)
        return row

    def metric_names(self) -> list[str]:
        names: list[str] = []
        for r in self.rows:
            names += [k for k in r if k not in ("name", "height", "width", "fixations") and k not in names]
        return names

    def summary(self) -> dict[str, Any]:
        """Per-metric mean over images (NaN rows excluded and counted) plus the protocol."""
        p = self._preset
        means: dict[str, Any] = {}
        for m in self.metric_names():
            vals = [r[m] for r in self.rows if m in r]
            finite = [v for v in vals if not math.isnan(v)]
            means[m] = {"mean": (sum(finite) / len(finite)) if finite else float("nan"),
                        "n": len(finite), "n_nan": len(vals) - len(finite)}
        interp = self.interpolation or p.interpolation
        protocol = {
            "preset": p.name,
            "preset_description": p.description,
            "dataset": self.dataset,
            "split": self.split,
            "evaluation_size": "native stimulus resolution",
            "interpolation": interp,
            "ground_truth": sorted(self._gt_sources) or None,
            "baseline": "; ".join(self._baselines) if self._baselines else describe_baseline(self.baseline),
            "sauc_negatives": self.negatives or {"sampled": f"other-image fixations, binary, {p.sauc_splits} "
                                                            f"splits of min(Nfix, Nother)",
                                                 "exact": "all fixations of the other images, duplicates kept",
                                                 "count_weighted": "other-image fixation counts"}[p.sauc_mode],
            "duplicates": p.duplicates,
            "auc_judd_jitter": p.judd_jitter if self.judd_jitter is None else self.judd_jitter,
            "seed": p.seed if self.seed is None else self.seed,
            "averaging": "mean over images of per-image values",
            "preset_choices": p.describe(),
        }
        return {"n_images": len(self.rows), "metrics": means, "protocol": protocol}

    def to_csv(self) -> str:
        cols = ["name", "height", "width", "fixations"] + self.metric_names()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
        return buf.getvalue()

    def write(self, out_dir: str | Path, stem: str = "saliency_metrics") -> tuple[Path, Path]:
        """Write ``<stem>_per_image.csv`` and ``<stem>_summary.json`` atomically; return both paths."""
        out_dir = Path(out_dir)
        csv_path = out_dir / f"{stem}_per_image.csv"
        json_path = out_dir / f"{stem}_summary.json"
        atomic_write_text(csv_path, self.to_csv())
        atomic_write_json(json_path, self.summary())
        return csv_path, json_path
