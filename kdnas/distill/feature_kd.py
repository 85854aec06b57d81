"""Attention-transfer feature KD (Zagoruyko & Komodakis) through forward hooks, with no model edits.

A spatial attention map is the channel mean of |feature|^p, flattened and L2-normalised per image.
It needs no projection between different channel counts, and it bridges CNN and Transformer
features: ViT tokens (prefix tokens dropped) and Swin's channels-last grids are turned into
channels-first maps first. The teacher's map is resized to the student's spatial size.
Aligning attention also aligns teacher and student heatmaps (cxr-kd.md §8.5).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kdnas.utils.errors import ConfigError


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "model", model)  # InputAdapter -> backbone


def default_feature_layer(model: nn.Module) -> str:
    """The deepest spatial feature of a backbone, by name (EEEA-Net-C2, timm CNN/ViT/Swin)."""
    net = unwrap(model)
    names = dict(net.named_modules())
    for candidate in ("final_expand", "norm", "layers.3", "layer4", "features", "stages.3", "blocks"):
        if candidate in names and candidate != "":
            if candidate == "norm" and not hasattr(net, "patch_embed"):
                continue
            return candidate
    info = getattr(net, "feature_info", None)
    if info is not None:
        return info[-1]["module"]
    raise ConfigError(f"cannot choose a feature layer for {type(net).__name__}; set distill.feature_kd layers")


def to_spatial(feature: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """A B x C x H x W map from a CNN feature, ViT tokens (B x N x C) or a Swin grid (B x H x W x C)."""
    if isinstance(feature, (tuple, list)):
        feature = feature[0]
    net = unwrap(model)
    if feature.ndim == 4:
        # timm Swin keeps channels last; a channels-first CNN map has C == feature.shape[1]
        num_features = getattr(net, "num_features", None)
        if feature.shape[-1] == num_features and feature.shape[1] != num_features:
            return feature.permute(0, 3, 1, 2)
        return feature
    if feature.ndim == 3:
        tokens = feature[:, getattr(net, "num_prefix_tokens", 1):]
        side = int(math.isqrt(tokens.shape[1]))
        grid = getattr(getattr(net, "patch_embed", None), "grid_size", None) or (side, tokens.shape[1] // side)
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)
    raise ValueError(f"cannot turn a feature of shape {tuple(feature.shape)} into a spatial map")


def attention_map(feature: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    am = feature.float().abs().pow(p).mean(1)
    return F.normalize(am.flatten(1), dim=1).view_as(am)


def attention_transfer_loss(student: torch.Tensor, teacher: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    a_s, a_t = attention_map(student, p), attention_map(teacher, p)
    if a_t.shape[-2:] != a_s.shape[-2:]:
        a_t = F.interpolate(a_t[:, None], size=a_s.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        a_t = F.normalize(a_t.flatten(1), dim=1).view_as(a_t)
    return (a_s - a_t).pow(2).sum((1, 2)).mean()


class FeatureTap:
    """Keeps the latest output of one named submodule (a forward hook; removed with ``close``)."""

    def __init__(self, model: nn.Module, layer: str):
        modules = dict(unwrap(model).named_modules())
        if layer not in modules:
            sample = [n for n in modules if n][:12]
            raise ConfigError(f"feature layer {layer!r} not found in {type(unwrap(model)).__name__}; "
                              f"module names look like: {sample}")
        self.model, self.output = model, None
        self.handle = modules[layer].register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args, output) -> None:
        self.output = output

    def spatial(self) -> torch.Tensor:
        if self.output is None:
            raise RuntimeError("the tapped layer has not run yet")
        return to_spatial(self.output, self.model)

    def close(self) -> None:
        self.handle.remove()
