"""Chest X-ray evaluation of a trained multi-label run (``kdnas evaluate --task cxr``).

Protocol (metrics.md §16, cxr-kd.md §9): per-label AUROC (Mann-Whitney, ties 0.5) over the
entries whose label is known, NaN where a label lacks positives or negatives (excluded from the
macro mean, with the reason); 95% percentile intervals from a bootstrap that resamples patients
(images when the dataset has no patient IDs); average precision; expected calibration error
(pooled and per label). The evaluation unit is the image. Uncertain (-1) entries are not scored.
All numbers come from :mod:`kdnas.metrics.multilabel` in float64 on the CPU.

Outputs in ``out/``: ``cxr_eval.json`` (summary, NaN written as null), ``per_image.csv``,
``roc.png`` and ``bootstrap_replicates.csv`` (per-replicate values), all written atomically.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from kdnas.metrics.multilabel import (
    average_precision,
    bootstrap_auroc_ci,
    expected_calibration_error,
    paired_bootstrap_diff,
    roc_curves,
)
from kdnas.utils.errors import ConfigError, DataError
from kdnas.utils.io import atomic_save, atomic_write_json, atomic_write_text

SPLIT_CHOICES = ("train", "val", "test", "all")
ECE_BINS = 15
ALPHA = 0.05
JSON_NAME, PER_IMAGE_NAME, ROC_NAME, REPLICATES_NAME = "cxr_eval.json", "per_image.csv", "roc.png", \
    "bootstrap_replicates.csv"


# -- run and data -------------------------------------------------------------------------------
def _load_multilabel_run(run: Path, device: torch.device):
    """``(model, task, cfg)`` of a trained multi-label run.

    The label list comes from the run's best checkpoint record, so the run's training data need
    not be present; ``pretrained`` is not loaded (the trained weights replace it anyway).
    """
    from kdnas.api import load_model, load_run_config

    run = Path(run)
    if not run.is_dir():
        raise DataError(run, "run directory not found", expected="a kdnas run folder (config.yaml, checkpoints/)")
    cfg = load_run_config(run)
    if cfg.task != "multilabel":
        raise ConfigError(f"run {run} is a {cfg.task!r} run; --task cxr needs a multilabel (chest X-ray) run")
    model, task = load_model(run, device=str(device))  # labels come from the run's checkpoint record
    return model, task, cfg


def _open_data(cfg, data: Path | None, format: str | None, split: str, options: dict):
    """The dataset split to score and the protocol entry describing it."""
    from kdnas.data.cxr import open_cxr_dataset
    from kdnas.tasks.multilabel_data import open_cxr_split

    if split not in SPLIT_CHOICES:
        raise ConfigError(f"split must be one of {', '.join(SPLIT_CHOICES)}, got {split!r}")
    if data is None:
        if format is not None:
            raise ConfigError("format applies to data: give the dataset folder as well (--data)")
        d = cfg.data
        named = {"train": d.train_split, "val": d.val_split, "test": d.test_split, "all": None}[split]
        if split == "test" and d.test_split is None:
            raise ConfigError("this run has no test split configured (data.test_split); choose val or pass --data")
        d = d.model_copy(update={"options": {**d.options, **options}})
        base = open_cxr_split(d, named)
        source = {"source": "run config", "format": d.format, "root": None if d.root is None else str(d.root),
                  "builtin": dict(d.builtin) if d.format == "builtin" else None}
    else:
        from kdnas.data.cxr import CXR_FORMATS

        data = Path(data)
        fmt = format or (cfg.data.format if cfg.data.format != "builtin" else None)
        if fmt is None or str(fmt).strip().lower() not in CXR_FORMATS:
            raise ConfigError(f"{'unknown CXR format ' + repr(fmt) if fmt else 'a format is required'} for data "
                              f"{data}; valid: {', '.join(CXR_FORMATS)}")
        if not data.exists():
            raise DataError(data, "dataset folder not found", expected=f"a {fmt} dataset folder")
        base = open_cxr_dataset(data, fmt, None if split == "all" else split, **options)
        source = {"source": "data", "format": str(fmt).strip().lower(), "root": str(data)}
    info = {k: v for k, v in base.split_info.items()}
    skipped = list(getattr(base, "skipped", []))
    source.update(split=split, split_name=getattr(base, "split", None), options=dict(options), split_info=info,
                  labels=list(base.label_names), skipped=len(skipped),
                  skipped_examples=[f"{n}: {why}" for n, why in skipped[:3]])
    return base, source


def _predict(model, task, base, input_size, batch_size: int, limit: int | None, device) -> dict[str, Any]:
    from kdnas.tasks.multilabel_data import CXRTrainingSet, collate_cxr

    ds = CXRTrainingSet(base, tuple(input_size), None, 0, limit)
    if len(ds) == 0:
        raise DataError(getattr(base, "root", None), f"no images to evaluate in split {base.split!r}",
                        expected="at least one image (check split, views, images_dir)")
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate_cxr)
    return task.predict(model, loader, device)


def _patient_ids(base, n: int) -> list[str | None]:
    ids = base.patient_ids() if callable(getattr(base, "patient_ids", None)) else [None] * n
    return [None if p in (None, "") else str(p) for p in ids[:n]]


def _box_counts(base, n: int, mapping: dict[str, str]) -> dict[str, Any]:
    """Radiologist boxes of the evaluated labels among the scored images (localisation is scored elsewhere)."""
    counts: dict[str, int] = {}
    with_boxes = 0
    for rec in list(getattr(base, "records", []))[:n]:
        mine = [mapping[b.label] for b in rec.boxes if b.label in mapping]
        with_boxes += bool(mine)
        for target in mine:
            counts[target] = counts.get(target, 0) + 1
    return {"images_with_boxes": with_boxes, "boxes": dict(sorted(counts.items()))}


def _truth(labels: np.ndarray, ds_labels: list[str], eval_labels: list[str], fmt: str | None, path):
    """Dataset labels mapped by name onto the evaluated labels; -1 (uncertain) becomes unscored."""
    from kdnas.data.cxr.harmonise import harmonise_labels

    y = harmonise_labels(labels, ds_labels, eval_labels, format_name=fmt).astype(np.float64)
    uncertain = y == -1
    known = ~np.isnan(y) & ~uncertain
    soft = known & (y != 0) & (y != 1)
    if soft.any():
        i, j = map(int, np.argwhere(soft)[0])
        raise DataError(path, f"label {eval_labels[j]!r} of image {i} is the soft value {y[i, j]}",
                        expected="hard labels 0/1 for evaluation (use a hard uncertainty policy, e.g. 'ignore')")
    return np.where(uncertain, np.nan, y), uncertain.sum(axis=0)


# -- metrics -------------------------------------------------------------------------------------
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def _score(y: np.ndarray, logits: np.ndarray, groups, n_boot: int, seed: int) -> dict[str, Any]:
    """AUROC with CIs (ranked on logits), AP, ECE (on probabilities) for one model."""
    boot = bootstrap_auroc_ci(y, logits, groups=groups, n_boot=n_boot, seed=seed, alpha=ALPHA)
    probs = _sigmoid(logits)
    ap = average_precision(y, logits)
    defined = ~np.isnan(boot["per_label"])
    return {"boot": boot, "ap": ap, "probs": probs,
            "mean_ap": float(ap[defined].mean()) if defined.any() else math.nan,
            "ece": expected_calibration_error(y, probs, n_bins=ECE_BINS, average=None),
            "ece_pooled": expected_calibration_error(y, probs, n_bins=ECE_BINS, average="pooled"),
            "ece_macro": expected_calibration_error(y, probs, n_bins=ECE_BINS, average="macro")}


def _exclusion(mapped: bool, n_pos: int, n_neg: int) -> str | None:
    """Why a label's AUROC is undefined (None when it is defined); counts are in the per-label entry."""
    if not mapped:
        return "not in dataset"
    if n_pos + n_neg == 0:
        return "no known labels"
    if n_pos == 0:
        return "no positives"
    if n_neg == 0:
        return "no negatives"
    return None


def _clean(obj: Any) -> Any:
    """JSON-ready copy: numpy -> Python, NaN/inf -> None (strict JSON, identical on every run)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


# -- outputs -------------------------------------------------------------------------------------
def _csv_text(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in row])
    return buf.getvalue()


def _label_cell(v: float) -> Any:
    return math.nan if math.isnan(v) else int(v)


def plot_cxr_roc(curves: dict[str, dict[str, dict | None]], path: str | Path, note: str = "") -> None:
    """Per-label ROC curves (one panel per model), AUROC in the legend; undefined labels listed.

    ``curves[title] = kdnas.metrics.multilabel.roc_curves(...)``. Written atomically as PNG.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    fig = Figure(figsize=(4.6 * len(curves), 4.6))
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    for ax, (title, per_label) in zip(axes, curves.items(), strict=True):
        undefined = [name for name, c in per_label.items() if c is None]
        for name, c in per_label.items():
            if c is not None:
                ax.plot(c["fpr"], c["tpr"], lw=1.2, label=f"{name} ({c['auroc']:.3f})")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set(title=title, xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
        if undefined:
            ax.text(0.98, 0.02 if len(undefined) == len(per_label) else 0.5,
                    "AUROC undefined:\n" + "\n".join(undefined), ha="right", va="bottom", fontsize=7,
                    transform=ax.transAxes, color="0.35")
        if len(undefined) < len(per_label):
            ax.legend(fontsize=7, loc="lower right", title="label (AUROC)", title_fontsize=7)
        ax.grid(alpha=0.3)
    if note:
        import textwrap

        fig.suptitle(textwrap.fill(note, 60 * len(curves)), fontsize=8, y=1.0, va="bottom")
    atomic_save(path, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight", format="png"), suffix=".png")


def _compare_section(y: np.ndarray, logits: np.ndarray, eval_labels: list[str], common: list[str],
                     logits_b: np.ndarray, groups, n_boot: int, seed: int, auroc_a: np.ndarray):
    """The second run's metrics on the shared labels and the paired bootstrap of the difference."""
    cols = [eval_labels.index(x) for x in common]
    yc = y[:, cols]
    res_b = _score(yc, logits_b, groups, n_boot, seed)
    diff = paired_bootstrap_diff(yc, logits[:, cols], logits_b, groups=groups, n_boot=n_boot, seed=seed, alpha=ALPHA)
    a = auroc_a[cols]
    section = {
        "labels": common,
        "per_label": {x: {"auroc": res_b["boot"]["per_label"][k], "auroc_ci": res_b["boot"]["per_label_ci"][k],
                          "ap": res_b["ap"][k], "ece": res_b["ece"][k], "diff": diff["per_label_diff"][k],
                          "diff_ci": diff["per_label_ci"][k]} for k, x in enumerate(common)},
        "mean": {"auroc": res_b["boot"]["mean"], "auroc_ci": res_b["boot"]["ci"], "ap": res_b["mean_ap"],
                 "ece_pooled": res_b["ece_pooled"]},
        "diff": {"mean_auroc": diff["diff"], "ci": diff["ci"], "p_value": diff["p_value"],
                 "this_run_mean_auroc": float(a[~np.isnan(a)].mean()) if (~np.isnan(a)).any() else math.nan,
                 "definition": "mean AUROC of this run minus the compare run over the shared labels, paired "
                               "bootstrap (both models on the same resampled patients)"}}
    return section, res_b["probs"], diff["replicates"]


# -- public API ----------------------------------------------------------------------------------
def evaluate_cxr(*, run: Path, out: Path, data: Path | None = None, format: str | None = None,
                 split: str = "test", options: dict | None = None, labels: list[str] | None = None,
                 n_boot: int = 1000, seed: int = 0, batch_size: int = 32, limit: int | None = None,
                 compare: Path | None = None, device: str = "cpu") -> dict:
    """Evaluate a trained multi-label run on a CXR split; write JSON, per-image CSV and ROC plot to ``out``.

    ``data``/``format``/``options`` select another dataset (loader options as in
    :func:`kdnas.data.cxr.open_cxr_dataset`); by default the run's configured dataset and split.
    ``split`` is train, val, test or all. ``labels`` restricts scoring to these run labels (default
    all); run labels are matched by name (and common synonyms) to the dataset's labels, and those
    the dataset lacks are reported as excluded. ``compare`` is a second run scored on the same
    images: paired bootstrap of the mean-AUROC difference (this run minus ``compare``).
    Returns the summary written to ``cxr_eval.json`` (NaN as None).
    """
    from kdnas import __version__
    from kdnas.data.cxr.harmonise import label_mapping

    options = dict(options or {})
    for name, value, low in (("n_boot", n_boot, 1), ("batch_size", batch_size, 1), ("limit", limit, 1)):
        if value is not None and (not isinstance(value, int) or value < low):
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"invalid device {device!r}: {exc}") from exc
    run, out = Path(run), Path(out)
    model, task, cfg = _load_multilabel_run(run, dev)
    run_labels = list(task.label_names)
    eval_labels = run_labels if labels is None else [str(x) for x in labels]
    unknown = [x for x in eval_labels if x not in run_labels]
    if unknown or not eval_labels or len(set(eval_labels)) != len(eval_labels):
        raise ConfigError(f"labels {eval_labels} must be distinct labels of the run; the run's labels: {run_labels}")
    if compare is not None:  # fail on a bad comparison run before the costly prediction
        model_b, task_b, cfg_b = _load_multilabel_run(Path(compare), dev)
        common = [x for x in eval_labels if x in task_b.label_names]
        if not common:
            raise ConfigError(f"compare run {compare} shares no label with {eval_labels}: {task_b.label_names}")

    base, dataset = _open_data(cfg, data, format, split, options)
    ds_labels = list(base.label_names)
    fmt = getattr(base, "format_name", None)
    mapping = label_mapping(ds_labels, fmt, eval_labels)
    mapped = set(mapping.values())
    if not mapped:
        raise ConfigError(f"no label of the run matches the dataset's labels; run labels: {eval_labels}; "
                          f"dataset labels: {ds_labels}")
    input_size = tuple(cfg.data.input_size)
    pred = _predict(model, task, base, input_size, batch_size, limit, dev)
    n = len(pred["names"])
    y, n_uncertain = _truth(pred["labels"], ds_labels, eval_labels, fmt, getattr(base, "root", data))
    logits = pred["logits"][:, [run_labels.index(x) for x in eval_labels]]
    ids = _patient_ids(base, n)
    by_patient = any(p is not None for p in ids)
    groups = [p if p is not None else f"image:{name}" for p, name in zip(ids, pred["names"], strict=True)] \
        if by_patient else None
    res = _score(y, logits, groups, n_boot, seed)
    boot = res["boot"]

    per_label: dict[str, Any] = {}
    excluded: dict[str, str] = {}
    for j, lab in enumerate(eval_labels):
        col = y[:, j]
        n_pos, n_neg = int((col == 1).sum()), int((col == 0).sum())
        why = _exclusion(lab in mapped, n_pos, n_neg)
        if why is not None:
            excluded[lab] = why
        per_label[lab] = {
            "dataset_labels": sorted(s for s, t in mapping.items() if t == lab), "n_known": n_pos + n_neg,
            "n_pos": n_pos, "n_neg": n_neg, "n_uncertain": int(n_uncertain[j]),
            "prevalence": n_pos / (n_pos + n_neg) if n_pos + n_neg else math.nan,
            "auroc": boot["per_label"][j], "auroc_ci": boot["per_label_ci"][j],
            "bootstrap_undefined": int(boot["undefined_replicates"][j]),
            "ap": res["ap"][j], "ece": res["ece"][j], "excluded": why}
    n_patients = len(set(groups)) if groups is not None else n
    summary: dict[str, Any] = {
        "task": "cxr", "kdnas_version": __version__, "run": str(run),
        "model": {"name": cfg.model.name, "input_size": list(cfg.model.input_size or input_size),
                  "labels": run_labels},
        "labels": eval_labels, "n_images": n, "n_patients": n_patients,
        "n_images_without_patient_id": sum(p is None for p in ids),
        "per_label": per_label,
        "mean": {"auroc": boot["mean"], "auroc_ci": boot["ci"], "ap": res["mean_ap"], "ece_pooled": res["ece_pooled"],
                 "ece_macro": res["ece_macro"], "n_labels": len(eval_labels) - len(excluded)},
        "excluded": {"n": len(excluded), "labels": excluded},
        "boxes": _box_counts(base, n, mapping),
        "protocol": {
            "dataset": dataset, "label_mapping": dict(sorted(mapping.items())), "image_size": list(input_size),
            "evaluation_unit": "image", "limit": limit, "batch_size": batch_size,
            "labels_scored": "entries labelled 0 or 1; unknown (NaN) and uncertain (-1) entries are not scored",
            "auroc": "Mann-Whitney (ties 0.5) on logits per label; macro mean over labels with both classes present",
            "ap": "scikit-learn average precision per label; mean over the labels in the AUROC mean",
            "ece": f"{ECE_BINS} equal-width bins on sigmoid probabilities; pooled over all scored entries, "
                   "per label, and their macro mean",
            "bootstrap": {"B": n_boot, "seed": seed, "resampling_unit": "patient" if by_patient else "image",
                          "interval": f"{100 * (1 - ALPHA):g}% percentile", "method": boot["method"],
                          "n_clusters": n_patients},
            "device": str(dev)},
        "compare": None,
        "outputs": {"json": JSON_NAME, "per_image": PER_IMAGE_NAME, "roc": ROC_NAME, "replicates": REPLICATES_NAME},
    }
    curves = {f"{run.resolve().name} (n={n})": roc_curves(y, logits, eval_labels)}
    header = ["name", "patient", *eval_labels, *[f"p_{x}" for x in eval_labels]]
    rows = [[name, "" if ids[i] is None else ids[i], *[_label_cell(v) for v in y[i]], *res["probs"][i].tolist()]
            for i, name in enumerate(pred["names"])]
    rep_header = ["replicate", "mean_auroc", *[f"auroc_{x}" for x in eval_labels]]
    rep_rows = [[b, boot["replicates"][b], *boot["per_label_replicates"][b].tolist()] for b in range(n_boot)]

    if compare is not None:
        pred_b = _predict(model_b, task_b, base, tuple(cfg_b.data.input_size), batch_size, limit, dev)
        if pred_b["names"] != pred["names"]:
            raise DataError(getattr(base, "root", data), "the two runs did not see the same images in the same order")
        logits_b = pred_b["logits"][:, [list(task_b.label_names).index(x) for x in common]]
        section, probs_b, diff_reps = _compare_section(y, logits, eval_labels, common, logits_b, groups, n_boot, seed,
                                                       boot["per_label"])
        summary["compare"] = {"run": str(compare), "model": {"name": cfg_b.model.name,
                                                             "input_size": list(cfg_b.data.input_size)}, **section}
        curves[f"compare: {Path(compare).resolve().name}"] = roc_curves(y[:, [eval_labels.index(x) for x in common]],
                                                                       logits_b, common)
        header += [f"compare_p_{x}" for x in common]
        rows = [row + probs_b[i].tolist() for i, row in enumerate(rows)]
        rep_header.append("diff_mean_auroc")
        rep_rows = [row + [diff_reps[b]] for b, row in enumerate(rep_rows)]

    summary = _clean(summary)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / PER_IMAGE_NAME, _csv_text(header, rows))
    atomic_write_text(out / REPLICATES_NAME, _csv_text(rep_header, rep_rows))
    plot_cxr_roc(curves, out / ROC_NAME, note=_footer(summary))
    atomic_write_json(out / JSON_NAME, summary)
    return summary


# -- table ---------------------------------------------------------------------------------------
def _num(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _ci(v: float | None, ci: list | None) -> str:
    if v is None:
        return "undefined"
    lo, hi = ci if ci else (None, None)
    return f"{v:.3f} [{_num(lo)}, {_num(hi)}]"


def _footer(summary: dict) -> str:
    p = summary["protocol"]
    d, b = p["dataset"], p["bootstrap"]
    built = d.get("builtin") or {}
    where = d.get("root") or ("synthetic " + ", ".join(f"{k}={v}" for k, v in built.items()) if built else "")
    method = (d.get("split_info") or {}).get("method")
    return (f"protocol: {d['format']} {where} split {d['split']}{f' ({method})' if method else ''}, "
            f"{summary['n_images']} images / {summary['n_patients']} patients, input "
            f"{'x'.join(map(str, p['image_size']))}, unit {p['evaluation_unit']}, AUROC on logits, "
            f"{b['interval']} bootstrap CI (B={b['B']}, seed {b['seed']}, resampling by {b['resampling_unit']}), "
            f"ECE {ECE_BINS} bins")


def format_cxr_table(summary: dict) -> str:
    """Fixed-width table: label, n+, AUROC [95% CI], AP, ECE; the mean row, exclusions, comparison, protocol."""
    labels = summary["labels"]
    w = max(12, *(len(x) for x in labels))
    head = f"{'label':<{w}}  {'n+':>6}  {'n':>6}  {'AUROC [95% CI]':<26}  {'AP':>6}  {'ECE':>6}"
    lines = [head, "-" * len(head)]
    for lab in labels:
        r = summary["per_label"][lab]
        auroc = _ci(r["auroc"], r["auroc_ci"]) if r["excluded"] is None else f"excluded: {r['excluded']}"
        lines.append(f"{lab:<{w}}  {r['n_pos']:>6}  {r['n_known']:>6}  {auroc:<26}  {_num(r['ap']):>6}  "
                     f"{_num(r['ece']):>6}")
    m = summary["mean"]
    lines.append("-" * len(head))
    mean_name = f"mean ({m['n_labels']}/{len(labels)})"
    lines.append(f"{mean_name:<{w}}  {'':>6}  {summary['n_images']:>6}  {_ci(m['auroc'], m['auroc_ci']):<26}  "
                 f"{_num(m['ap']):>6}  {_num(m['ece_pooled']):>6}  (ECE pooled)")
    ex = summary["excluded"]
    if ex["n"]:
        lines.append(f"{ex['n']} label(s) excluded from the mean: "
                     + "; ".join(f"{k} ({v})" for k, v in ex["labels"].items()))
    c = summary.get("compare")
    if c:
        d = c["diff"]
        lines.append(f"compare {c['run']}: mean AUROC {_ci(c['mean']['auroc'], c['mean']['auroc_ci'])} over "
                     f"{len(c['labels'])} shared label(s); difference (this - compare) "
                     f"{_ci(d['mean_auroc'], d['ci'])}, paired bootstrap p = {_num(d['p_value'])}")
    lines.append(_footer(summary))
    return "\n".join(lines)
