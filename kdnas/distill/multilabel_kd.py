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
from kdnas.distill.cache import TeacherCache, fingerprint_modules
from kdnas.distill.feature_kd import FeatureTap, attention_transfer_loss, default_feature_layer
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
        self.cache: TeacherCache | None = None
        self.cache_note = "off"
        self.student_tap: FeatureTap | None = None
        self.teacher_tap: FeatureTap | None = None

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
        fk = self.cfg.feature_kd
        if fk is not None:
            self.student_tap = FeatureTap(trainer.model, fk.student_layer or default_feature_layer(trainer.model))
            self.teacher_tap = FeatureTap(self.teachers[0], fk.teacher_layer or default_feature_layer(self.teachers[0]))
        self._setup_cache(trainer)

    def _setup_cache(self, trainer: Any) -> None:
        mode, train_set = self.cfg.cache, trainer.sets["train"]
        reason = None
        if not getattr(train_set, "deterministic", False):
            reason = ("training augmentation changes the pixels every epoch "
                      f"({train_set.augment.model_dump() if train_set.augment is not None else 'random views'})")
        elif self.cfg.feature_kd is not None:
            reason = "feature KD needs the teacher's live intermediate features"
        if mode == "off" or (mode == "auto" and reason):
            self.cache_note = "off" if mode == "off" else f"off: {reason}; distilling from the live teacher"
            if mode == "auto" and trainer.progress:
                from tqdm.auto import tqdm

                tqdm.write(f"[kdnas] teacher cache {self.cache_note}")
            return
        if reason:
            raise ConfigError(f"distill.cache is 'on' but caching is invalid here: {reason}. Use cache: auto/off or "
                              "disable data.augment")
        from torch.utils.data import DataLoader

        base = train_set.base
        names = [r.name for r in base.records] if hasattr(base, "records") else list(map(str, range(len(base))))
        key = fingerprint_modules(self.teachers, {"names": names, "input": list(self.task.input_size),
                                                  "teachers": [t.model_dump(mode="json") for t in self.cfg.teachers]})
        loader = DataLoader(train_set, batch_size=trainer.cfg.train.eval_batch_size or trainer.cfg.train.batch_size,
                            collate_fn=self.task.collate, num_workers=trainer.cfg.train.num_workers)
        self.cache = TeacherCache.build(trainer.out_dir / "teacher_cache", key, len(base), len(self.task.label_names),
                                        loader, self.live_teacher_logits, {"teachers": [t.name for t in self.cfg.teachers]},
                                        trainer.device)
        self.cache_note = f"on: {self.cache.path}"

    @torch.no_grad()
    def live_teacher_logits(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([t(images).float() for t in self.teachers]).mean(0)

    @torch.no_grad()
    def teacher_output(self, batch: dict, epoch: int) -> torch.Tensor:
        if self.cache is not None:
            return self.cache.lookup(batch["index"]).to(batch["image"].device)
        return self.live_teacher_logits(batch["image"])

    def _hard_targets(self, labels: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """Uncertain (-1) and optionally unknown (NaN) labels become teacher probabilities."""
        if self.cfg.soft_labels == "none":
            return labels
        fill = labels < 0
        if self.cfg.soft_labels == "unknown":
            fill = fill | torch.isnan(labels)
        fill = fill & torch.isfinite(teacher_logits)
        return torch.where(fill, torch.sigmoid(teacher_logits), labels)

    def loss(self, task: Any, pred: torch.Tensor, batch: dict, teacher_out: Any) -> tuple[torch.Tensor, dict]:
        labels = batch["labels"].to(pred.device)
        kd_mask = torch.isfinite(teacher_out)
        teacher_logits = torch.nan_to_num(teacher_out)
        hard = masked_bce(pred, self._hard_targets(labels, teacher_out))
        if self.cfg.loss == "bernoulli":
            kd = bernoulli_kd_loss(pred, teacher_logits, self.cfg.temperature, kd_mask)
        else:
            kd = logit_mse_loss(pred, teacher_logits, kd_mask)
        a = self.cfg.alpha
        total, parts = (1 - a) * hard + a * kd, {"bce": hard.detach(), "kd": kd.detach()}
        if self.student_tap is not None:
            at = attention_transfer_loss(self.student_tap.spatial(), self.teacher_tap.spatial().detach(),
                                         self.cfg.feature_kd.p)
            total = total + self.cfg.feature_kd.weight * at
            parts["at"] = at.detach()
        return total, parts

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "loss": self.cfg.loss, "alpha": self.cfg.alpha, "temperature": self.cfg.temperature,
                "teachers": [t.name for t in self.cfg.teachers], "cache": self.cache_note,
                "soft_labels": self.cfg.soft_labels,
                "feature_kd": None if self.cfg.feature_kd is None else self.cfg.feature_kd.model_dump()}
