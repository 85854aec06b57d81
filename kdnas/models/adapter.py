"""Input adapters: one decoded grey image feeds models that expect different inputs.

A teacher and a student see the same geometric view of an image (so KD targets stay aligned) but
each gets its own channels, resolution and intensity normalisation (cxr-kd.md §6). The adapter is
part of the model, so an exported ONNX file takes the plain [0, 1] grey image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalization_of(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean/std a model was pretrained with (timm ``pretrained_cfg``), ImageNet otherwise."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))


class InputAdapter(nn.Module):
    """``B x 1 x H x W`` grey image in [0, 1] -> resized, channel-replicated, normalised model input."""

    def __init__(self, model: nn.Module, in_chans: int = 3, input_size: tuple[int, int] | None = None,
                 mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None):
        super().__init__()
        self.model = model
        self.in_chans = in_chans
        self.input_size = None if input_size is None else tuple(input_size)
        default_mean, default_std = normalization_of(model)
        mean, std = list(mean or default_mean), list(std or default_std)
        if in_chans == 1:  # a grey model: average the RGB statistics
            mean, std = [sum(mean) / len(mean)], [sum(std) / len(std)]
        self.register_buffer("mean", torch.tensor(mean[:in_chans]).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std[:in_chans]).view(1, -1, 1, 1), persistent=False)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False, antialias=True)
        if x.shape[1] == 1 and self.in_chans > 1:
            x = x.expand(-1, self.in_chans, -1, -1)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.prepare(x))
