"""The saliency task: data wiring, the SalNAS loss, validation metrics and model selection."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from kdnas.config.schema import SaliencyExperiment
from kdnas.tasks.saliency_data import SaliencyTrainingSet, collate_saliency, open_saliency_split

MATLAB_EPS = 2.220446049250313e-16


# ----------------------------------------------------------------------------- loss (salnas.md §8)
def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).float()


def kld_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MIT KL(target || pred) per image: both sum-normalised, eps inside the log and the quotient."""
    p, q = _flat(pred), _flat(target)
    p = p / p.sum(1, keepdim=True).clamp_min(MATLAB_EPS)
    q = q / q.sum(1, keepdim=True).clamp_min(MATLAB_EPS)
    return (q * torch.log(MATLAB_EPS + q / (p + MATLAB_EPS))).sum(1)


def cc_loss_term(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pearson CC per image (unbiased std; an eps keeps constant maps finite instead of NaN, D13)."""
    a, b = _flat(pred), _flat(target)
    a = (a - a.mean(1, keepdim=True)) / (a.std(1, keepdim=True) + MATLAB_EPS)
    b = (b - b.mean(1, keepdim=True)) / (b.std(1, keepdim=True) + MATLAB_EPS)
    return (a * b).sum(1) / torch.sqrt((a * a).sum(1) * (b * b).sum(1)).clamp_min(MATLAB_EPS)


def nss_loss_term(pred: torch.Tensor, fixations: torch.Tensor) -> torch.Tensor:
    """NSS per image on the binary fixation map (count > 0), z-scored with unbiased std + eps."""
    s, f = _flat(pred), (_flat(fixations) > 0).float()
    s = (s - s.mean(1, keepdim=True)) / (s.std(1, keepdim=True) + MATLAB_EPS)
    return (s * f).sum(1) / f.sum(1).clamp_min(1.0)


def saliency_loss(pred: torch.Tensor, target: torch.Tensor, fixations: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """SalNAS training loss ``KLD + (1 - CC) + (1 - sigmoid(NSS))``, per image, batch mean, fp32.

    ``target`` is the GT density, or the Self-KD mixed map; NSS always uses the real fixations.
    """
    with torch.autocast(device_type=pred.device.type, enabled=False):
        pred = pred.float()
        kld = kld_loss(pred, target).mean()
        cc = cc_loss_term(pred, target).mean()
        nss = nss_loss_term(pred, fixations)
        loss = kld + (1 - cc) + (1 - torch.sigmoid(nss)).mean()
    return loss, {"kld": kld.detach(), "cc": cc.detach(), "nss": nss.mean().detach()}


def selection_score(metrics: dict[str, float]) -> float:
    """SalNAS model selection, lower is better: (1-CC) + KLD + (1-sigmoid(NSS)) + (1-SIM) + (1-AUC_Judd)."""
    sig = 1.0 / (1.0 + math.exp(-metrics["NSS"]))
    return (1 - metrics["CC"]) + metrics["KLD"] + (1 - sig) + (1 - metrics["SIM"]) + (1 - metrics["AUC_Judd"])


# ----------------------------------------------------------------------------- post-processing
def gaussian_blur_maps(maps: torch.Tensor, sigma: float, kernel: int | None = None) -> torch.Tensor:
    """Separable Gaussian blur of ``B x H x W`` maps with reflect borders (kornia GaussianBlur2d
    semantics; the reference uses kernel 11, sigma 10.5 at its output size)."""
    if not sigma or sigma <= 0:
        return maps
    kernel = kernel or 2 * math.ceil(3 * sigma) + 1
    half = kernel // 2
    x = torch.arange(kernel, dtype=maps.dtype, device=maps.device) - half
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    out = maps[:, None]
    mode_w = "reflect" if out.shape[-1] > half else "replicate"  # reflect needs pad < size
    mode_h = "reflect" if out.shape[-2] > half else "replicate"
    out = F.conv2d(F.pad(out, (half, half, 0, 0), mode=mode_w), g.view(1, 1, 1, -1))
    out = F.pad(out, (0, 0, half, half), mode=mode_h)
    return F.conv2d(out, g.view(1, 1, -1, 1))[:, 0]


# ----------------------------------------------------------------------------- task
class SaliencyTask:
    name = "saliency"

    def __init__(self, cfg: SaliencyExperiment):
        self.cfg = cfg
        data = cfg.data
        self.input_size = tuple(data.input_size)
        self.target_size = tuple(data.target_size or data.input_size)

    # model ----------------------------------------------------------------
    def build_model(self, pretrained: bool = True) -> nn.Module:
        """The configured model; ``pretrained=False`` skips initial weights (a checkpoint follows)."""
        from kdnas.models.registry import create_model

        m = self.cfg.model
        kwargs: dict[str, Any] = dict(m.kwargs)
        if m.name.startswith("salnas"):
            kwargs.setdefault("space", m.space or "salnas")
            if m.name == "salnas":
                kwargs.setdefault("subnet", m.subnet or "max")
        if m.pretrained and pretrained:
            kwargs["pretrained"] = m.pretrained
        return create_model(m.name, **kwargs)

    def input_shape(self) -> tuple[int, int, int]:
        return (3, *self.input_size)

    def metadata(self) -> dict[str, Any]:
        """Stored with checkpoints so inference uses the training preprocessing (D10)."""
        return {"task": self.name, "input_size": list(self.input_size), "target_size": list(self.target_size),
                "normalize": self.cfg.data.normalize, "blur_sigma": self.cfg.eval.blur_sigma,
                "blur_kernel": self.cfg.eval.blur_kernel}

    # data -----------------------------------------------------------------
    def datasets(self, calib_images: int | None, calib_split: str = "train") -> dict[str, Dataset]:
        d, seed = self.cfg.data, self.cfg.seed
        common = dict(input_size=self.input_size, target_size=self.target_size, density_sigma=d.density_sigma,
                      normalize=d.normalize, seed=seed, limit=d.limit)
        out: dict[str, Dataset] = {
            "train": SaliencyTrainingSet(open_saliency_split(d, d.train_split), augment=d.augment, **common),
            "val": SaliencyTrainingSet(open_saliency_split(d, d.val_split), **common),
        }
        if d.test_split:
            out["test"] = SaliencyTrainingSet(open_saliency_split(d, d.test_split), **common)
        # BN calibration: a fixed seeded subset, evaluation preprocessing (no augmentation)
        calib_base = open_saliency_split(d, d.train_split if calib_split == "train" else d.val_split)
        n = len(calib_base) if d.limit is None else min(d.limit, len(calib_base))
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=g).tolist()
        out["calib"] = SaliencyTrainingSet(calib_base, indices=sorted(order[: calib_images or n]), **common)
        return out

    collate = staticmethod(collate_saliency)

    # steps ----------------------------------------------------------------
    def forward(self, model: nn.Module, batch: dict) -> torch.Tensor:
        return model(batch["image"], output_size=self.target_size)

    def loss(self, pred: torch.Tensor, batch: dict, target: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        return saliency_loss(pred, batch["density"] if target is None else target, batch["fixations"])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader, device: torch.device) -> tuple[dict[str, Any], list[dict]]:
        """Per-image metrics at the training output size after the configured blur (protocol
        ``fast_val``; native-resolution benchmark scoring is ``kdnas evaluate``)."""
        from kdnas.metrics.saliency import batch_metrics

        ev = self.cfg.eval
        model.eval()
        rows: list[dict] = []
        for batch in loader:
            pred = self.forward(model, {**batch, "image": batch["image"].to(device)}).float()
            pred = gaussian_blur_maps(pred, ev.blur_sigma or 0, ev.blur_kernel).cpu().double()
            values = batch_metrics(pred, batch["density"].double(), batch["fixations"].double(),
                                   metrics=tuple(ev.metrics), preset=ev.preset)
            for j, name in enumerate(batch["name"]):
                rows.append({"name": name, **{k: float(v[j]) for k, v in values.items()}})
        summary: dict[str, Any] = {k: float(sum(r[k] for r in rows) / len(rows)) for k in ev.metrics}
        summary["n_images"] = len(rows)
        summary["protocol"] = {"preset": ev.preset, "resolution": list(self.target_size), "blur_sigma": ev.blur_sigma,
                               "averaging": "per image", "note": "fast_val: scored at the model output size"}
        return summary, rows

    def selection_score(self, metrics: dict[str, Any]) -> float:
        return selection_score(metrics)
