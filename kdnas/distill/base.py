"""Distillation strategies plug into the trainer through one small interface.

Per training step the trainer calls ``teacher_output(batch, epoch)`` once (teachers run once per
batch, not once per sandwich subnet) and then ``loss(task, pred, batch, teacher_out)`` for every
subnet. After validation ``on_validation_end`` lets a strategy update its teacher (Self-KD).
Teacher state goes into the checkpoint through ``state_tensors``/``state_meta``.
"""

from __future__ import annotations

from typing import Any

import torch


class Distiller:
    kind = "none"

    def setup(self, trainer: Any) -> None:
        """Build teachers once the student and the data exist."""

    def teacher_output(self, batch: dict, epoch: int) -> Any:
        return None

    def loss(self, task: Any, pred: torch.Tensor, batch: dict, teacher_out: Any) -> tuple[torch.Tensor, dict]:
        return task.loss(pred, batch)

    def on_validation_end(self, trainer: Any, epoch: int, improved: bool) -> None:
        """Called on every rank after each validation with the (broadcast) improvement flag."""

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def state_meta(self) -> dict[str, Any]:
        return {}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what ``state_tensors``/``state_meta`` saved."""

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}


def build_distiller(cfg: Any, task: Any) -> Distiller:
    kind = cfg.distill.kind
    if kind == "none":
        return Distiller()
    if kind == "self_kd":
        from kdnas.distill.self_kd import SelfKD

        return SelfKD(cfg.distill, task)
    if kind == "teacher":
        from kdnas.distill.multilabel_kd import TeacherKD

        return TeacherKD(cfg.distill, task)
    raise ValueError(f"unknown distill.kind {kind!r}")
