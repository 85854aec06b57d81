"""Explanations for trained kdnas CXR runs (the Python API behind ``kdnas explain``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kdnas.explain.evaluate import ExplainedModel, evaluate_explanations
from kdnas.explain.faithfulness import ROAD_PERCENTILES
from kdnas.explain.localization import IOU_HIT_THRESHOLDS
from kdnas.utils.errors import ConfigError


def load_cxr_run(run_dir: str | Path, device: str = "cpu", target_layer: str = "auto") -> tuple[ExplainedModel, Any]:
    """The run's model (eval mode) as an :class:`ExplainedModel`, and its task; only CXR
    (multi-label) runs qualify."""
    from kdnas.api import load_model, load_run_config

    cfg = load_run_config(run_dir)
    if cfg.task != "multilabel":
        raise ConfigError(f"{run_dir} is a {cfg.task!r} run; explanations are for chest X-ray (multilabel) runs")
    model, task = load_model(run_dir, device=device)
    labels = list(task.label_names)
    return ExplainedModel(model, labels, tuple(task.input_size), name=str(run_dir), target_layer=target_layer), task


def check_labels(labels: Sequence[str] | None, valid: Sequence[str]) -> list[str] | None:
    """``labels`` validated against the run's label names (``None`` = all)."""
    if labels is None or len(labels) == 0:
        return None
    unknown = [lab for lab in labels if lab not in valid]
    if unknown:
        raise ConfigError(f"label(s) {', '.join(map(repr, unknown))} not in the run's labels: {', '.join(valid)}")
    return list(labels)


def evaluate_run(run_dir: str | Path, split: str = "test", method: str = "gradcam",
                 teacher_dir: str | Path | None = None, labels: Sequence[str] | None = None,
                 limit: int | None = None, target_layer: str = "auto", teacher_target_layer: str = "auto",
                 tolerance: float = 0.0, thresholds: Sequence[str] = ("0.5max",),
                 hit_ious: Sequence[float] = IOU_HIT_THRESHOLDS,
                 road_percentiles: Sequence[int] | None = ROAD_PERCENTILES, faithfulness: bool = True,
                 batch_size: int = 8, device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """Score a run's explanations on one of its splits against the dataset's boxes.

    Images of the run's training split are excluded. With ``teacher_dir`` (another CXR run with
    overlapping labels), the teacher's maps are scored too and compared with the student's.
    """
    student, task = load_cxr_run(run_dir, device, target_layer)
    labels = check_labels(labels, student.label_names)
    sets = task.datasets(calib_images=1)
    if split not in sets:
        raise ConfigError(f"split {split!r} is not configured for run {run_dir}; available: "
                          f"{', '.join(s for s in sets if s != 'calib')}")
    data = sets[split]
    # boxed images the model was trained on say nothing about localisation: always excluded
    train_names = {r.name for r in sets["train"].base.records}
    teacher = None
    if teacher_dir is not None:
        teacher, _ = load_cxr_run(teacher_dir, device, teacher_target_layer)
        if not set(teacher.label_names) & set(labels or student.label_names):
            raise ConfigError(f"teacher {teacher_dir} shares no label with the student "
                              f"(teacher: {teacher.label_names}; student: {student.label_names})")
    samples = (data.base[i] for i in data.indices)
    result = evaluate_explanations(student, samples, method=method, teacher=teacher, exclude=train_names,
                                   limit=limit, batch_size=batch_size, tolerance=tolerance,
                                   thresholds=thresholds, hit_ious=hit_ious, road_percentiles=road_percentiles,
                                   faithfulness=faithfulness, seed=seed, labels=labels)
    result["protocol"].update(run=str(run_dir), split=split, dataset=type(data.base).__name__,
                              dataset_root=str(getattr(data.base, "root", "")))
    return result
