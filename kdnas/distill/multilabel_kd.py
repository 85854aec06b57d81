"""Teacher -> student distillation for multi-label classification (cxr-kd.md §3).

Labels are independent Bernoulli variables, so the soft target of class c is
``sigmoid(z_t[c] / T)`` on its own; there is never a softmax across classes (§3.3).

  L = (1 - alpha) * L_hard + alpha * L_KD
  L_hard = masked BCE on known labels (NaN / uncertain entries excluded)
  L_KD   = T^2 * mean over valid entries of BCE(sigmoid(z_s / T), sigmoid(z_t / T))   ("bernoulli")
         or mean of (z_s - z_t)^2                                                    ("logit_mse")

The T^2 factor keeps the KD gradient scale independent of T: d L_KD / d z_s = T (sigma(z_s/T) -
sigma(z_t/T)) ~ (z_s - z_t) / 4 for large T. KD is applied on every entry whose teacher output was
trained, including unknown labels, where the teacher acts as a soft labeller. Several teachers are
averaged in logit space.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from kdnas.distill.base import Distiller
from kdnas.tasks.multilabel import masked_bce
from kdnas.utils.errors import ConfigError


def bernoulli_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-class Bernoulli KD with temperature and T^2 scaling, averaged over ``mask`` entries."""
    t = float(temperature)
    soft = torch.sigmoid(teacher_logits.float() / t)
    loss = F.binary_cross_entropy_with_logits(student_logits.float() / t, soft, reduction="none")
    if mask is None:
        return loss.mean() * t * t
    return (loss * mask).sum() / mask.sum().clamp_min(1) * t * t


def logit_mse_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """Logit matching (Ba & Caruana): mean squared difference of logits over ``mask`` entries."""
    sq = (student_logits.float() - teacher_logits.float()) ** 2
    if mask is None:
        return sq.mean()
    return (sq * mask).sum() / mask.sum().clamp_min(1)


def load_run_weights(model: torch.nn.Module, run_dir: str | Path) -> None:
    """Load the best weights of a finished kdnas run (``<run>/checkpoints/best.json``) into ``model``."""
    from kdnas.train.checkpoint import load_best_weights

    model.load_state_dict(load_best_weights(Path(run_dir)))


class TeacherKD(Distiller):
    kind = "teacher"

    def __init__(self, cfg: Any, task: Any):
        self.cfg, self.task = cfg, task
        self.teachers: list[torch.nn.Module] = []
        self.cache = None  # optional TeacherCache (precomputed logits per sample index)

    def setup(self, trainer: Any) -> None:
        for tc in self.cfg.teachers:
            model = self.task.build_named_model(tc.name, tc.in_chans, tc.pretrained,
                                                tuple(tc.input_size or self.task.input_size), **tc.kwargs)
            if tc.checkpoint is not None:
                load_run_weights(model, tc.checkpoint)
            elif not tc.pretrained:
                raise ConfigError(f"teacher {tc.name!r} has neither 'checkpoint' (a trained kdnas run) nor "
                                  "'pretrained' weights; an untrained teacher would distil noise")
            model.eval().requires_grad_(False)
            self.teachers.append(model.to(trainer.device))

    @torch.no_grad()
    def live_teacher_logits(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([t(images).float() for t in self.teachers]).mean(0)

    @torch.no_grad()
    def teacher_output(self, batch: dict, epoch: int) -> torch.Tensor:
        if self.cache is not None:
            return self.cache.lookup(batch["index"]).to(batch["image"].device)
        return self.live_teacher_logits(batch["image"])

    def loss(self, task: Any, pred: torch.Tensor, batch: dict, teacher_out: Any) -> tuple[torch.Tensor, dict]:
        labels = batch["labels"].to(pred.device)
        hard = masked_bce(pred, labels)
        kd_mask = torch.isfinite(teacher_out)
        teacher_logits = torch.nan_to_num(teacher_out)
        if self.cfg.loss == "bernoulli":
            kd = bernoulli_kd_loss(pred, teacher_logits, self.cfg.temperature, kd_mask)
        else:
            kd = logit_mse_loss(pred, teacher_logits, kd_mask)
        a = self.cfg.alpha
        return (1 - a) * hard + a * kd, {"bce": hard.detach(), "kd": kd.detach()}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "loss": self.cfg.loss, "alpha": self.cfg.alpha, "temperature": self.cfg.temperature,
                "teachers": [t.name for t in self.cfg.teachers], "cached": self.cache is not None}
