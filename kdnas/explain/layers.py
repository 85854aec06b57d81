"""Automatic CAM target layers and token reshapes (cxr-kd.md §8.3).

| model family | target layer | reshape |
|---|---|---|
| EEEA-Net-C2 | ``final_expand`` (stride 32), or the deepest tap with >= 6 x 6 cells at the input size | none |
| timm ViT (DeiT, BEiT, EVA, ...) | ``blocks[-1].norm1`` | drop the ``num_prefix_tokens`` class/register tokens, tokens -> ``patch_embed.grid_size``, channels first |
| timm Swin / Swin-V2 | ``layers[-1].blocks[-1].norm1`` | channels-last grid (``B x H x W x C``) -> channels first |
| timm CNNs | the deepest ``feature_info`` stage with >= 6 x 6 cells at the input size | none |
| torchvision-style CNNs | ``features[-1]`` | none |

Models wrapped in :class:`kdnas.models.adapter.InputAdapter` (or DDP / ``torch.compile``) are
unwrapped first; layer paths given by the user are relative to that backbone.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from kdnas.utils.errors import ConfigError


def unwrap_model(model: nn.Module) -> nn.Module:
    """The backbone inside input adapters, ``DistributedDataParallel`` and compiled wrappers."""
    from kdnas.models.adapter import InputAdapter

    seen = 0
    while seen < 8:  # wrappers nest a few levels at most
        seen += 1
        if isinstance(model, InputAdapter):
            model = model.model
        elif hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        else:
            break
    return model


def model_family(model: nn.Module) -> str:
    """``eeea``, ``vit``, ``swin`` or ``cnn`` (the kind of target layer and reshape the model needs)."""
    from kdnas.models.eeea import EEEANetC2

    net = unwrap_model(model)
    if isinstance(net, EEEANetC2):
        return "eeea"
    patch_embed = getattr(net, "patch_embed", None)
    if patch_embed is not None and isinstance(getattr(net, "blocks", None), nn.Sequential | nn.ModuleList):
        return "vit"
    layers = getattr(net, "layers", None)
    if patch_embed is not None and isinstance(layers, nn.Sequential | nn.ModuleList) and len(layers) \
            and hasattr(layers[-1], "blocks"):
        return "swin"
    return "cnn"


def _last_4d_module(net: nn.Module) -> str:
    """Fallback for unknown CNNs: the last module (in execution order) with a spatial output."""
    found: list[str] = []
    handles = []
    for name, mod in net.named_modules():
        if not name:
            continue

        def hook(_m, _i, out, name=name):
            if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] > 1 and out.shape[-2] > 1:
                found.append(name)
        handles.append(mod.register_forward_hook(hook))
    in_chans = getattr(net, "in_chans", None) or _first_conv_channels(net)
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(1, in_chans, 224, 224, device=_device_of(net)))
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    if not found:
        raise ConfigError(f"cannot find a CAM target layer in {type(net).__name__}: no module returns a "
                          "B x C x H x W feature map; pass target_layer='<module path>'")
    return found[-1]  # children finish before parents: the outermost last stage


def _first_conv_channels(net: nn.Module) -> int:
    for mod in net.modules():
        if isinstance(mod, nn.Conv2d):
            return mod.in_channels
    return 3


def _device_of(net: nn.Module) -> torch.device:
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


# The automatic CNN target is the deepest feature stage whose map still has at least this many cells
# per side at the model's input size: 7 x 7 is the classic Grad-CAM grid at 224 px; below about 6 a
# map cannot localise findings (EEEA-Net-C2's final layer is 2 x 2 at 64 px).
MIN_CAM_SIDE = 6


def _input_side(model: nn.Module) -> int | None:
    """The smaller side of the image the backbone sees, when an input adapter states it."""
    size = getattr(model, "input_size", None)
    return None if size is None else int(min(size))


def _deepest_fine_enough(candidates: list[tuple[str, int]], side: int | None) -> str:
    """``candidates``: (path, stride) deep -> shallow. The deepest with >= MIN_CAM_SIDE cells per side."""
    if side is None:
        return candidates[0][0]
    for path, stride in candidates:
        if math.ceil(side / stride) >= MIN_CAM_SIDE:
            return path
    return candidates[-1][0]


def target_layer_path(model: nn.Module) -> str:
    """Dotted path (relative to the unwrapped backbone) of the automatic CAM target layer.

    CNNs (EEEA-Net-C2, timm CNNs with ``feature_info``): the deepest feature stage whose map has at
    least ``MIN_CAM_SIDE`` cells per side at the input size of the model's input adapter (the last
    stage when the size is unknown). Transformers: the last block's ``norm1``.
    """
    from kdnas.models.eeea import EEEA_C2_TAPS

    side = _input_side(model)
    net = unwrap_model(model)
    family = model_family(net)
    if family == "eeea":
        taps = [EEEA_C2_TAPS[k] for k in ("final_expand", "stride16", "stride8", "stride4")]
        return _deepest_fine_enough(list(taps), side)
    if family == "vit":
        return f"blocks.{len(net.blocks) - 1}.norm1"
    if family == "swin":
        return f"layers.{len(net.layers) - 1}.blocks.{len(net.layers[-1].blocks) - 1}.norm1"
    info = getattr(net, "feature_info", None)
    if info is not None:
        try:
            stages = [(f["module"], int(f["reduction"])) for f in info if f.get("module")]
            if stages:
                return _deepest_fine_enough(stages[::-1], side)
        except (AttributeError, IndexError, KeyError, TypeError):
            pass
    features = getattr(net, "features", None)
    if isinstance(features, nn.Sequential) and len(features):
        return f"features.{len(features) - 1}"
    return _last_4d_module(net)


def resolve_layer(model: nn.Module, layer: str | nn.Module = "auto") -> tuple[nn.Module, str]:
    """The target module and its path: ``"auto"``, a dotted path in the backbone (or in the wrapper,
    e.g. ``model.layer4``), or a module of the model."""
    net = unwrap_model(model)
    if isinstance(layer, nn.Module):
        for name, mod in net.named_modules():
            if mod is layer:
                return layer, name
        raise ConfigError("target_layer is a module that is not part of the model")
    path = target_layer_path(model) if layer in (None, "", "auto") else str(layer)
    for root in (net, model):
        try:
            return root.get_submodule(path), path
        except AttributeError:
            continue
    names = [n for n, _ in net.named_modules() if n and n.count(".") < 2]
    raise ConfigError(f"target layer {path!r} not found in {type(net).__name__}; top-level modules: "
                      f"{', '.join(names[:40])}")


def find_target_layer(model: nn.Module) -> nn.Module:
    """The automatic CAM target layer of a model (see the module docstring for the rules)."""
    return resolve_layer(model, "auto")[0]


class TokenReshape:
    """Tokens of a transformer layer -> a ``B x C x h x w`` map, as CNN CAM methods expect.

    ``kind="vit"``: ``B x N x C`` with ``prefix`` leading class/register tokens on an ``h x w`` patch
    grid (inferred from the token count when the input size differs from the built grid).
    ``kind="swin"``: ``B x H x W x C`` (timm >= 0.9) or ``B x L x C`` tokens on a square grid.
    """

    def __init__(self, kind: str, grid: tuple[int, int] | None = None, prefix: int = 0):
        if kind not in ("vit", "swin"):
            raise ValueError(f"kind must be 'vit' or 'swin', got {kind!r}")
        self.kind, self.grid, self.prefix = kind, None if grid is None else tuple(grid), int(prefix)

    def _grid_for(self, n: int) -> tuple[int, int]:
        if self.grid is not None and self.grid[0] * self.grid[1] == n:
            return self.grid
        side = math.isqrt(n)
        if side * side != n:
            raise ConfigError(f"cannot arrange {n} tokens on a 2-D grid (built grid {self.grid}, "
                              f"{self.prefix} prefix tokens); pass the input size the model was built for")
        return side, side

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.kind == "swin" and tensor.dim() == 4:
            return tensor.permute(0, 3, 1, 2)
        if tensor.dim() != 3:
            raise ConfigError(f"{self.kind} reshape expects B x N x C tokens, got shape {tuple(tensor.shape)}")
        tokens = tensor[:, self.prefix:, :] if self.kind == "vit" else tensor
        h, w = self._grid_for(tokens.shape[1])
        return tokens.reshape(tokens.shape[0], h, w, tokens.shape[2]).permute(0, 3, 1, 2)

    def __repr__(self) -> str:
        return f"TokenReshape(kind={self.kind!r}, grid={self.grid}, prefix={self.prefix})"


def reshape_transform_for(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The activation reshape a model's transformer target layer needs (``None`` for CNNs)."""
    net = unwrap_model(model)
    family = model_family(net)
    if family == "vit":
        grid = getattr(net.patch_embed, "grid_size", None)
        prefix = getattr(net, "num_prefix_tokens", None)
        if prefix is None:  # older timm: one class token (+ one distillation token in DeiT)
            prefix = int(getattr(net, "cls_token", None) is not None) + int(getattr(net, "dist_token", None) is not None)
        return TokenReshape("vit", None if grid is None else tuple(int(g) for g in grid), prefix)
    if family == "swin":
        return TokenReshape("swin")
    return None
