"""Multi-label classification (chest X-ray): masked BCE, per-label AUROC, model selection."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from kdnas.config.schema import MultiLabelExperiment
from kdnas.tasks.multilabel_data import CXRTrainingSet, collate_cxr, open_cxr_split


def known_mask(labels: torch.Tensor) -> torch.Tensor:
    """Entries with a usable hard label: not NaN (unknown) and not -1 (uncertain, before a policy)."""
    return ~torch.isnan(labels) & (labels >= 0)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """BCE-with-logits averaged over the known entries only (never over zero-filled unknowns)."""
    mask = known_mask(labels)
    target = torch.where(mask, labels, torch.zeros_like(labels))
    loss = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none", pos_weight=pos_weight)
    return (loss * mask).sum() / mask.sum().clamp_min(1)


class MultiLabelTask:
    name = "multilabel"

    def __init__(self, cfg: MultiLabelExperiment):
        self.cfg = cfg
        self.input_size = tuple(cfg.data.input_size)
        self._label_names: list[str] | None = None

    @property
    def label_names(self) -> list[str]:
        if self._label_names is None:
            self._label_names = list(open_cxr_split(self.cfg.data, self.cfg.data.val_split).label_names)
        return self._label_names

    @label_names.setter
    def label_names(self, names: list[str]) -> None:
        """Set from a run's metadata, so a trained model loads without its training data."""
        self._label_names = list(names)

    # model ----------------------------------------------------------------
    def build_model(self, pretrained: bool = True) -> nn.Module:
        """The configured model; ``pretrained=False`` skips initial weights (a checkpoint follows)."""
        m = self.cfg.model
        return self.build_named_model(m.name, m.in_chans, m.pretrained if pretrained else None,
                                      tuple(m.input_size or self.input_size), dropout=m.dropout, **m.kwargs)

    def build_named_model(self, name: str, in_chans: int = 3, pretrained: str | None = None,
                          input_size: tuple[int, int] | None = None, dropout: float | None = None,
                          **kwargs: Any) -> nn.Module:
        """Any registered or timm model with a ``len(label_names)`` logit head, behind an input adapter."""
        from kdnas.models.adapter import InputAdapter
        from kdnas.models.registry import create_model, is_kdnas_model

        kwargs = dict(kwargs)
        if dropout is not None:
            kwargs["dropout" if is_kdnas_model(name) else "drop_rate"] = dropout
        if pretrained:
            kwargs["pretrained"] = True if pretrained == "hub" else pretrained
        backbone = create_model(name, num_classes=len(self.label_names), in_chans=in_chans, **kwargs)
        return InputAdapter(backbone, in_chans=in_chans, input_size=input_size)

    def input_shape(self) -> tuple[int, int, int]:
        return (1, *self.input_size)

    def metadata(self) -> dict[str, Any]:
        return {"task": self.name, "input_size": list(self.input_size), "labels": self.label_names,
                "input": "grey [0, 1], 1 x H x W (the model's InputAdapter normalises)"}

    # data -----------------------------------------------------------------
    def datasets(self, calib_images: int | None = None, calib_split: str = "train") -> dict[str, Dataset]:
        d, seed = self.cfg.data, self.cfg.seed
        out: dict[str, Dataset] = {
            "train": CXRTrainingSet(open_cxr_split(d, d.train_split), self.input_size, d.augment, seed, d.limit),
            "val": CXRTrainingSet(open_cxr_split(d, d.val_split), self.input_size, None, seed, d.limit),
        }
        if d.test_split:
            out["test"] = CXRTrainingSet(open_cxr_split(d, d.test_split), self.input_size, None, seed, d.limit)
        self._label_names = out["val"].label_names
        return out

    collate = staticmethod(collate_cxr)

    # steps ----------------------------------------------------------------
    def forward(self, model: nn.Module, batch: dict) -> torch.Tensor:
        return model(batch["image"])

    def loss(self, logits: torch.Tensor, batch: dict, target: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        labels = batch["labels"] if target is None else target
        loss = masked_bce(logits, labels.to(logits.device))
        return loss, {"bce": loss.detach()}

    @torch.no_grad()
    def predict(self, model: nn.Module, loader, device: torch.device) -> dict[str, Any]:
        """Logits, labels, names and patients over a loader (float64 numpy)."""
        model.eval()
        logits, labels, names, patients = [], [], [], []
        for batch in loader:
            logits.append(self.forward(model, {**batch, "image": batch["image"].to(device)}).float().cpu())
            labels.append(batch["labels"])
            names += batch["name"]
            patients += batch["patient"]
        return {"logits": torch.cat(logits).double().numpy(), "labels": torch.cat(labels).double().numpy(),
                "names": names, "patients": patients}

    def evaluate(self, model: nn.Module, loader, device: torch.device) -> tuple[dict[str, Any], list[dict]]:
        from kdnas.metrics.multilabel import mean_auroc, per_label_auroc

        out = self.predict(model, loader, device)
        y = np.where(out["labels"] < 0, np.nan, out["labels"])  # uncertain entries are not scored
        per_label = per_label_auroc(y, out["logits"])
        mean = mean_auroc(y, out["logits"])
        summary: dict[str, Any] = {"mean_auroc": float(mean["mean"]), "n_images": len(out["names"]),
                                   "labels_excluded": int(mean["n_excluded"]),
                                   "per_label_auroc": {n: float(v) for n, v in zip(self.label_names, per_label, strict=True)},
                                   "protocol": {"metric": "AUROC (Mann-Whitney, ties 0.5), macro mean over labels "
                                                "with both classes present", "input_size": list(self.input_size)}}
        probs = 1 / (1 + np.exp(-out["logits"]))
        rows = [{"name": n, "patient": p, **{f"p_{lab}": float(probs[i, j]) for j, lab in enumerate(self.label_names)}}
                for i, (n, p) in enumerate(zip(out["names"], out["patients"], strict=True))]
        return summary, rows

    def selection_score(self, metrics: dict[str, Any]) -> float:
        return -float(metrics["mean_auroc"])
