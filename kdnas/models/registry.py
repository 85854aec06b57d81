"""Model registry and ``create_model`` (timm style).

kdnas models register under a short name (``eeea_c2``, ``salnas``, ``salnas_supernet``). Any other
name is handed to ``timm.create_model`` (prefix ``timm:`` to force that), so every timm CNN or
Transformer can serve as a teacher.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        return fn

    return deco


def _ensure_builtin() -> None:
    # Importing the model family modules fills the registry.
    import kdnas.models.eeea  # noqa: F401
    import kdnas.models.salnas  # noqa: F401


def list_models() -> list[str]:
    _ensure_builtin()
    return sorted(_MODELS)


def is_kdnas_model(name: str) -> bool:
    _ensure_builtin()
    return name in _MODELS


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Create a kdnas model by registered name, or any timm model (``timm:<name>`` or a plain timm name).

    For timm models ``pretrained`` may be a local file path (loaded with ``weights_only=True``) or
    ``True`` to download from the hub (only when the user asks for it and has a network).
    """
    _ensure_builtin()
    if name in _MODELS:
        return _MODELS[name](**kwargs)
    from kdnas.models.timm_models import create_timm_model

    return create_timm_model(name.removeprefix("timm:"), **kwargs)
