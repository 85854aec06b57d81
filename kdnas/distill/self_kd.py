"""Self-KD (salnas.md §9): the student learns from a mix of the ground truth and a teacher with
the student's own architecture that holds its best validation weights.

Faithful defaults reproduce the reference exactly:
  * the teacher is a copy of the supernet frozen at its max subnet, without dropout/drop-connect;
  * it is updated only after validations that improved the selection score (the first always does),
    as the equal-weight running mean of all improving checkpoints, BN buffers included
    (``teacher_update: swa_of_best``);
  * it runs with batch-statistics BN and no blur (``teacher_bn: batch``), with no gradient;
  * from epoch index ``start_epoch`` (1 = the second epoch) the target of every sandwich subnet is
    ``mix_weight * GT + (1 - mix_weight) * teacher`` in the distribution terms; NSS keeps the real
    fixations.
Options: ``teacher_update`` ``ema`` (per epoch, ``ema_decay``) or ``last_best``; ``teacher_bn``
``running`` (eval-mode BN with the teacher's running statistics).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from kdnas.distill.base import Distiller


class SelfKD(Distiller):
    kind = "self_kd"

    def __init__(self, cfg: Any, task: Any):
        self.cfg, self.task = cfg, task
        self.teacher: nn.Module | None = None
        self.n_averaged = 0

    def setup(self, trainer: Any) -> None:
        teacher = copy.deepcopy(trainer.raw_model)
        if hasattr(teacher, "sample_max_subnet"):
            teacher.sample_max_subnet()
            teacher.set_regularization(0.0, 0.0)
        for m in teacher.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.0  # batch-stat mode must not drift the averaged running stats
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        teacher.requires_grad_(False)
        self.teacher = teacher

    @torch.no_grad()
    def teacher_output(self, batch: dict, epoch: int) -> torch.Tensor | None:
        if self.teacher is None or epoch < self.cfg.start_epoch or self.n_averaged == 0:
            return None
        self.teacher.train(self.cfg.teacher_bn == "batch")
        return self.task.forward(self.teacher, batch).detach().float()

    def loss(self, task: Any, pred: torch.Tensor, batch: dict, teacher_out: Any) -> tuple[torch.Tensor, dict]:
        if teacher_out is None:
            return task.loss(pred, batch)
        w = self.cfg.mix_weight
        target = w * batch["density"].to(teacher_out) + (1 - w) * teacher_out
        return task.loss(pred, batch, target=target)

    @torch.no_grad()
    def on_validation_end(self, trainer: Any, epoch: int, improved: bool) -> None:
        student = trainer.raw_model
        mode = self.cfg.teacher_update
        if mode == "ema" and self.n_averaged > 0:
            self._blend(student, 1.0 - self.cfg.ema_decay)
            self.n_averaged += 1
        elif improved:
            # swa_of_best: w <- w + (w_new - w) / (n + 1); last_best (and the first update): a copy
            factor = 1.0 if (mode == "last_best" or self.n_averaged == 0) else 1.0 / (self.n_averaged + 1)
            self._blend(student, factor)
            self.n_averaged += 1

    def _blend(self, student: nn.Module, factor: float) -> None:
        own = self.teacher.state_dict()
        for key, value in student.state_dict().items():
            if value.dtype.is_floating_point:
                own[key].add_((value.to(own[key]) - own[key]) * factor)
            elif factor == 1.0:
                own[key].copy_(value)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        if self.teacher is None or self.n_averaged == 0:
            return {}
        return {f"teacher.{k}": v for k, v in self.teacher.state_dict().items()}

    def state_meta(self) -> dict[str, Any]:
        return {"n_averaged": self.n_averaged}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.n_averaged = int(meta.get("n_averaged", 0))
        state = {k.removeprefix("teacher."): v for k, v in tensors.items() if k.startswith("teacher.")}
        if state and self.teacher is not None:
            self.teacher.load_state_dict(state)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "mix_weight": self.cfg.mix_weight, "start_epoch": self.cfg.start_epoch,
                "teacher_update": self.cfg.teacher_update, "teacher_bn": self.cfg.teacher_bn,
                "checkpoints_averaged": self.n_averaged}
