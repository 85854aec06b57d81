"""timm models as teachers or students, with local-file pretrained weights.

``pretrained`` accepts a local checkpoint (``.pth``/``.pt``/``.safetensors``, loaded without
unpickling arbitrary objects) or ``True`` for a hub download, which only happens when a user asks
for it. A classifier whose size differs from ``num_classes`` is re-initialised; a 1-channel model
gets its first conv summed over the RGB weights (timm's ``adapt_input_conv``).
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from kdnas.utils.errors import ConfigError, DataError
from kdnas.utils.io import safe_torch_load


def _unwrap_state_dict(obj) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model", "model_state", "student"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            return _unwrap_state_dict(obj[key])
    if not isinstance(obj, dict):
        raise TypeError("checkpoint is not a state dict")
    return {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load_local_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Load a local checkpoint into a timm model; returns keys skipped because their shape differs."""
    path = Path(path)
    try:
        state = _unwrap_state_dict(safe_torch_load(path))
    except TypeError as exc:
        raise DataError(path, str(exc), expected="a state dict of tensors") from None
    own = model.state_dict()
    first_conv = getattr(model, "pretrained_cfg", {}).get("first_conv")
    if first_conv:
        key = f"{first_conv}.weight"
        if key in state and key in own and state[key].shape[1] != own[key].shape[1]:
            from timm.models import adapt_input_conv

            state[key] = adapt_input_conv(own[key].shape[1], state[key])
    skipped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    for k in skipped:
        del state[k]
    missing, unexpected = model.load_state_dict(state, strict=False)
    head_like = set(skipped)
    bad_missing = [k for k in missing if k not in head_like]
    if bad_missing or unexpected:
        raise DataError(path, f"weights do not fit {type(model).__name__}: missing {bad_missing[:5]}, "
                        f"unexpected {list(unexpected)[:5]}")
    return skipped


def create_timm_model(name: str, num_classes: int | None = None, in_chans: int = 3,
                      pretrained: bool | str | Path | None = None, **kwargs) -> nn.Module:
    if name not in timm.list_models() and not timm.is_model(name):
        raise ConfigError(f"unknown model {name!r}: not a kdnas model and not a timm model "
                          "(see `timm.list_models()`)")
    extra = dict(kwargs)
    if num_classes is not None:
        extra["num_classes"] = num_classes
    hub = pretrained is True
    model = timm.create_model(name, pretrained=hub, in_chans=in_chans, **extra)
    if pretrained and not hub:
        load_local_weights(model, pretrained)
    return model
