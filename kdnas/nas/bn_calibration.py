"""BN recalibration: recompute a subnet's BatchNorm statistics before it is evaluated.

Protocol (nas-and-costs.md §5): reset the running statistics, switch to a cumulative average
(``momentum=None``), put only the BN layers in train mode (dropout and drop-connect stay off), and
forward a fixed calibration set without gradients. kdnas calibrates on a seeded *training* subset by
default; the reference used the whole validation split (D9), available as an explicit option.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[dict], forward: Callable[[nn.Module, dict], torch.Tensor],
                   device: torch.device | str = "cpu") -> int:
    """Recompute BN running stats of ``model`` over ``batches``; returns the number of images seen."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    seen = 0
    try:
        for batch in batches:
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            forward(model, batch)
            seen += int(batch["image"].shape[0])
    finally:
        for bn, momentum in zip(bns, momenta, strict=True):
            bn.momentum = momentum
        model.eval()
    return seen
