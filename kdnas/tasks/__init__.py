"""Tasks own their data, losses and metrics; the engine (trainer, distillers, NAS) is shared."""

from __future__ import annotations

from typing import Any


def build_task(cfg: Any):
    if cfg.task == "saliency":
        from kdnas.tasks.saliency import SaliencyTask

        return SaliencyTask(cfg)
    if cfg.task == "multilabel":
        from kdnas.tasks.multilabel import MultiLabelTask

        return MultiLabelTask(cfg)
    raise ValueError(f"unknown task {cfg.task!r}")
