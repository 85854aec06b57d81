"""Scoring explanations against boxes: localisation, faithfulness, teacher-student agreement.

Protocol (recorded with every table):

* Images are resized to the run's input size (the *frame*; bilinear with antialiasing, as in
  training) and their boxes scaled by the same factors; CAMs come out at the frame size.
* Pairs: for each image, the classes that are GT-positive **and** have at least one box of that
  class. Images of the training split are excluded (and counted).
* Per pair: localisation (:mod:`.localization`), optionally faithfulness (:mod:`.faithfulness`),
  and with a teacher, the teacher's own localisation and the agreement of the two maps
  (:mod:`.agreement`; the teacher explains the same image at its own input size, its map is
  resized to the student's frame).
* Per class: the mean over its pairs; the summary is the unweighted mean over classes (macro).
  Reference rows score the same pairs with a centre Gaussian and a uniform map.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdnas.data.types import Box, CXRSample
from kdnas.explain.agreement import agreement_keys, map_agreement
from kdnas.explain.cams import explain_pairs, method_name
from kdnas.explain.faithfulness import ROAD_PERCENTILES, faithfulness_scores
from kdnas.explain.localization import BASELINES, IOU_HIT_THRESHOLDS, localization_scores
from kdnas.utils.errors import ConfigError, KdnasError
from kdnas.utils.io import atomic_write_json, atomic_write_text


@dataclass
class ExplainedModel:
    """A model with the labels of its outputs and the (H, W) image size it is fed."""

    model: nn.Module
    label_names: list[str]
    input_size: tuple[int, int]
    name: str = "model"
    target_layer: str | nn.Module = "auto"


@dataclass
class _Item:
    name: str
    image: np.ndarray  # decoded grey image (native size)
    classes: list[int]
    boxes: dict[int, list[Box]] = field(default_factory=dict)  # in the frame


def to_frame(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Grey ``H x W`` image -> ``1 x h x w`` tensor at ``size`` (bilinear, antialias: training's resize)."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    if tuple(t.shape[-2:]) != tuple(size):
        t = F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return t[0]


def _items(samples: Iterable[CXRSample], label_names: Sequence[str], frame: tuple[int, int],
           exclude: set[str], limit: int | None, stats: dict[str, int],
           only: Sequence[str] | None = None) -> Iterable[_Item]:
    col = {n: j for j, n in enumerate(label_names) if only is None or n in only}
    for sample in samples:
        if limit is not None and stats["images"] >= limit:
            return
        stats["seen"] += 1
        h, w = sample.image.shape[:2]
        sx, sy = frame[1] / w, frame[0] / h
        boxes: dict[int, list[Box]] = {}
        for b in sample.boxes:
            k = col.get(b.label)
            if k is not None and np.asarray(sample.labels)[k] == 1:
                boxes.setdefault(k, []).append(b.scaled(sx, sy))
        if not boxes:
            continue
        if sample.name in exclude:
            stats["excluded_training"] += 1
            continue
        stats["images"] += 1
        yield _Item(sample.name, sample.image, sorted(boxes), boxes)


def _batched(it: Iterable[_Item], n: int) -> Iterable[list[_Item]]:
    batch: list[_Item] = []
    for item in it:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def evaluate_explanations(student: ExplainedModel, samples: Iterable[CXRSample], method: str = "gradcam",
                          teacher: ExplainedModel | None = None, exclude: Iterable[str] = (),
                          limit: int | None = None, batch_size: int = 8, tolerance: float = 0.0,
                          thresholds: Sequence[str] = ("0.5max",),
                          hit_ious: Sequence[float] = IOU_HIT_THRESHOLDS,
                          road_percentiles: Sequence[int] | None = ROAD_PERCENTILES,
                          faithfulness: bool = True, agreement_topk: float = 0.2, seed: int = 0,
                          max_rows: int = 64, labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Score ``student``'s CAMs on ``samples`` (e.g. a dataset split with boxes); see the module doc.

    ``labels`` restricts scoring to these classes (default: all of the student's labels);
    ``limit`` caps the number of images scored; ``exclude`` holds image names to skip (the
    training split); ``road_percentiles=None`` or ``faithfulness=False`` skip ROAD / all
    faithfulness metrics.

    Returns a dict with ``protocol``, ``per_class`` / ``mean`` (the student), ``baselines``,
    ``teacher`` (localisation and ``agreement``, when a teacher is given) and ``pairs`` (one row
    per scored image-class pair).
    """
    method = method_name(method)
    if labels is not None:
        unknown = [lab for lab in labels if lab not in student.label_names]
        if unknown:
            raise ConfigError(f"label(s) {unknown} not among the model's labels: {', '.join(student.label_names)}")
    frame = tuple(int(v) for v in student.input_size)
    stats = {"seen": 0, "images": 0, "excluded_training": 0}
    rows: list[dict[str, Any]] = []
    base_rows: dict[str, list[dict[str, Any]]] = {b: [] for b in BASELINES}
    t_rows: list[dict[str, Any]] = []
    baseline_maps = {b: fn(frame) for b, fn in BASELINES.items()}
    protocol_cam: dict[str, Any] = {}
    keys: dict[str, list[str]] = {"localization": [], "faithfulness": [], "agreement": []}
    t_protocol: dict[str, Any] = {}
    loc_kw = {"tolerance": tolerance, "thresholds": tuple(thresholds), "hit_ious": tuple(hit_ious)}
    items = _items(samples, student.label_names, frame, set(exclude), limit, stats, labels)
    for batch in _batched(items, batch_size):
        frames = torch.stack([to_frame(it.image, frame) for it in batch])
        pairs = [(i, k) for i, it in enumerate(batch) for k in it.classes]
        maps, logits, protocol_cam = explain_pairs(student.model, frames, pairs, method, student.target_layer,
                                                   max_rows=max_rows)
        batch_rows = []
        for r, (i, k) in enumerate(pairs):
            item = batch[i]
            loc = localization_scores(maps[r], item.boxes[k], **loc_kw)
            keys["localization"] = keys["localization"] or list(loc)
            row = {"image": item.name, "label": student.label_names[k], "logit": float(logits[i, k]),
                   "n_boxes": len(item.boxes[k]), **loc}
            batch_rows.append(row)
            for b, bmap in baseline_maps.items():
                base_rows[b].append({"image": item.name, "label": row["label"],
                                     **localization_scores(bmap, item.boxes[k], **loc_kw)})
        if faithfulness:
            faith = faithfulness_scores(student.model, frames[[i for i, _ in pairs]], maps, [k for _, k in pairs],
                                        road_percentiles, seed=seed, max_rows=max_rows)
            keys["faithfulness"] = list(faith)
            for r, row in enumerate(batch_rows):
                row.update({m: float(v[r]) for m, v in faith.items()})
        if teacher is not None:
            t_protocol = _teacher_pass(teacher, batch, pairs, maps, student.label_names, method, frame, batch_rows,
                                       t_rows, loc_kw, agreement_topk, max_rows) or t_protocol
            keys["agreement"] = list(agreement_keys(agreement_topk))
        rows += batch_rows
    if not rows:
        raise KdnasError(f"no image-class pairs to score: {stats['seen']} images read, none with a box of a "
                         f"GT-positive class among {student.label_names}"
                         + (f" outside the training split ({stats['excluded_training']} excluded)"
                            if stats["excluded_training"] else ""))
    order = [lab for lab in student.label_names if labels is None or lab in labels]
    loc_metrics, faith_metrics, agree_metrics = keys["localization"], keys["faithfulness"], keys["agreement"]
    result: dict[str, Any] = {
        "protocol": {
            **protocol_cam, "frame": list(frame),
            "frame_note": "images resized to the run's input size (bilinear, antialias); boxes scaled alike",
            "pairs": "GT-positive classes with >= 1 box of that class; training-split images excluded",
            "pixel_rule": "pixel centre inside a box (or within the tolerance); sub-pixel boxes claim their "
                          "centre pixel; class mask = union of its boxes",
            "ties": "pointing-game hit = share of the maximal pixels inside the mask",
            "tolerance_px": tolerance, "thresholds": list(thresholds), "hit_ious": list(hit_ious),
            "faithfulness": ({"target": "logit of class k", "road_percentiles": list(road_percentiles or []),
                              "road_imputer": "pytorch-grad-cam NoisyLinearImputer (noise 0.01)", "seed": seed}
                             if faithfulness else None),
            "aggregation": "mean over pairs per class, then unweighted mean over classes",
            "baselines": {"centre": "Gaussian at the frame centre, sigma = 0.25 x side",
                          "uniform": "constant map (chance level)"},
            "images_read": stats["seen"], "images_scored": stats["images"],
            "excluded_training_images": stats["excluded_training"], "n_pairs": len(rows)},
        "metrics": {"localization": loc_metrics, "faithfulness": faith_metrics},
        **summarise(rows, loc_metrics + faith_metrics, order),
        "baselines": {b: summarise(br, loc_metrics, order) for b, br in base_rows.items()},
        "pairs": rows,
    }
    if teacher is not None:
        result["protocol"]["teacher"] = {"name": teacher.name, "frame": list(teacher.input_size), **t_protocol,
                                         "to_student_frame": "cv2 bilinear resize of the [0, 1] map",
                                         "agreement_topk": agreement_topk,
                                         "agreement_note": "pairs where either map is constant have no rank "
                                                           "correlation: left out of its means (n_defined counts "
                                                           "the rest)"}
        result["metrics"]["agreement"] = agree_metrics
        agreement = summarise(rows, agree_metrics, order)
        # a constant map has no ranking: count the pairs whose correlations are defined
        for entry, sel in [*((agreement["per_class"][c], [r for r in rows if r["label"] == c])
                             for c in agreement["per_class"]), (agreement["mean"], rows)]:
            entry["n_defined"] = int(sum(np.isfinite(r.get("spearman", np.nan)) for r in sel))
        result["teacher"] = {**summarise(t_rows, loc_metrics, order), "agreement": agreement, "pairs": t_rows}
    return result


def _teacher_pass(teacher: ExplainedModel, batch: list[_Item], pairs: list[tuple[int, int]], maps: np.ndarray,
                  labels: Sequence[str], method: str, frame: tuple[int, int], batch_rows: list[dict[str, Any]],
                  t_rows: list[dict[str, Any]], loc_kw: dict[str, Any], topk: float, max_rows: int) -> dict[str, Any]:
    t_col = {n: j for j, n in enumerate(teacher.label_names)}
    keep = [r for r, (_, k) in enumerate(pairs) if labels[k] in t_col]
    if not keep:
        return {}
    t_frames = torch.stack([to_frame(it.image, teacher.input_size) for it in batch])
    t_pairs = [(pairs[r][0], t_col[labels[pairs[r][1]]]) for r in keep]
    t_maps, _, proto = explain_pairs(teacher.model, t_frames, t_pairs, method, teacher.target_layer,
                                     max_rows=max_rows)
    for j, r in enumerate(keep):
        t_map = t_maps[j]
        if t_map.shape != tuple(frame):
            t_map = np.clip(cv2.resize(t_map, (frame[1], frame[0]), interpolation=cv2.INTER_LINEAR), 0, 1)
        i, k = pairs[r]
        t_rows.append({"image": batch[i].name, "label": labels[k],
                       **localization_scores(t_map, batch[i].boxes[k], **loc_kw)})
        batch_rows[r].update(map_agreement(maps[r], t_map, topk))
    return {"method": proto["method"], "target_layer": proto["target_layer"]}


def summarise(rows: list[dict[str, Any]], metrics: Sequence[str], order: Sequence[str]) -> dict[str, Any]:
    """``per_class`` (mean of each metric over the class's pairs, NaN-skipping, with ``n_pairs``) and
    ``mean`` (unweighted mean over the classes that have pairs)."""
    per_class: dict[str, dict[str, float]] = {}
    for label in order:
        sel = [r for r in rows if r["label"] == label]
        if not sel:
            continue
        entry: dict[str, float] = {"n_pairs": len(sel)}
        for m in metrics:
            vals = np.array([r.get(m, np.nan) for r in sel], dtype=np.float64)
            entry[m] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        per_class[label] = entry
    mean: dict[str, float] = {"n_pairs": len(rows), "n_classes": len(per_class)}
    for m in metrics:
        vals = np.array([c[m] for c in per_class.values()], dtype=np.float64)
        mean[m] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
    return {"per_class": per_class, "mean": mean}


# -- tables ------------------------------------------------------------------------------------
def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat rows (``model``, ``class``, metrics...) of the student, its references and the teacher."""
    metrics = [m for group in result["metrics"].values() for m in group]
    out: list[dict[str, Any]] = []

    def add(model: str, summary: dict[str, Any]) -> None:
        for label, entry in [*summary["per_class"].items(), ("mean", summary["mean"])]:
            extra = {"n_defined": entry["n_defined"]} if "n_defined" in entry else {}
            out.append({"model": model, "class": label, "n_pairs": entry["n_pairs"], **extra,
                        **{m: entry.get(m, float("nan")) for m in metrics}})

    add("student", result)
    if "teacher" in result:
        add("teacher", result["teacher"])
        add("agreement", result["teacher"]["agreement"])
    for b, summary in result["baselines"].items():
        add(f"baseline:{b}", summary)
    return out


def format_table(result: dict[str, Any], columns: Sequence[str] | None = None) -> str:
    """A plain-text table for the terminal: per-class rows of the student, then the macro means."""
    metrics = [m for group in result["metrics"].values() for m in group]
    cols = list(columns) if columns is not None else [
        m for m in metrics if m.startswith(("pointing", "energy", "iou", "hit0.25", "road_combined",
                                            "confidence_drop", "spearman", "top"))]
    rows = [r for r in table_rows(result) if r["model"] == "student"]
    rows += [{**r, "class": f"mean ({r['model']})"} for r in table_rows(result)
             if r["class"] == "mean" and r["model"] != "student"]
    head = ["class", "n", *cols]
    body = [[str(r["class"]), str(r.get("n_defined", r["n_pairs"])),  # agreement: pairs with a defined rank
             *("" if np.isnan(r.get(c, np.nan)) else f"{r[c]:.3f}" for c in cols)] for r in rows]
    widths = [max(len(h), *(len(b[j]) for b in body)) for j, h in enumerate(head)]
    p = result["protocol"]
    grid = p.get("cam_grid") or ["?", "?"]
    lines = [f"{p['method']} @ {p['target_layer']} ({grid[0]}x{grid[1]} map), frame {p['frame'][0]}x{p['frame'][1]}, "
             f"{p['images_scored']} images / {p['n_pairs']} pairs "
             f"({p['excluded_training_images']} training-split images excluded)",
             "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def write_scores(result: dict[str, Any], out_dir) -> dict[str, str]:
    """``explain_scores.json`` (everything), ``explain_scores.csv`` (the table) and
    ``explain_pairs.csv`` (one row per pair), written atomically."""
    from pathlib import Path

    out = Path(out_dir)
    files = {"json": out / "explain_scores.json", "csv": out / "explain_scores.csv",
             "pairs": out / "explain_pairs.csv"}
    atomic_write_json(files["json"], result)
    atomic_write_text(files["csv"], _csv(table_rows(result)))
    atomic_write_text(files["pairs"], _csv(result["pairs"]))
    return {k: str(v) for k, v in files.items()}


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()
