"""Cost model: parameters, MACs and measured latency.

**MACs** in kdnas = multiply-accumulates counted by ``torch.utils.flop_counter.FlopCounterMode``
(core PyTorch, aten-level) divided by 2, for one forward pass at the stated input size. It counts
convolutions (SE included), linear layers and matrix products; batch norm, activations, pooling and
interpolation count 0. "FLOPs", where quoted, are 2 x MACs.
"""

from __future__ import annotations

import platform
import statistics
import time
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from kdnas.models.layers import count_parameters

MAC_COUNTER = "torch.utils.flop_counter.FlopCounterMode FLOPs / 2 (conv, linear, matmul; BN, activations, pooling, interpolation not counted)"


@torch.no_grad()
def count_macs(model: nn.Module, input_size: tuple[int, ...], **forward_kwargs: Any) -> int:
    """MACs of one forward pass of a batch-1 input of ``input_size`` = (C, H, W)."""
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, *input_size, device=next(model.parameters()).device)
        with FlopCounterMode(display=False) as counter:
            model(x, **forward_kwargs)
        return int(counter.get_total_flops()) // 2
    finally:
        model.train(was_training)


def profile_model(model: nn.Module, input_size: tuple[int, ...], **forward_kwargs: Any) -> dict[str, Any]:
    """Parameters (registered and effective) and MACs, with the counting protocol stated."""
    stats: dict[str, Any] = dict(count_parameters(model))
    stats["macs"] = count_macs(model, input_size, **forward_kwargs)
    stats["input_size"] = list(input_size)
    # the resolution the network really runs at (input adapters and SalNAS subnets resize internally)
    working = getattr(model, "input_size", None) or getattr(model, "resolution", None)
    stats["working_size"] = list(working) if working is not None else list(input_size[-2:])
    stats["mac_counter"] = MAC_COUNTER
    stats["torch"] = torch.__version__
    return stats


@torch.no_grad()
def measure_latency(model: nn.Module, input_size: tuple[int, ...], batch_size: int = 1, warmup: int = 5,
                    runs: int = 20, device: str | torch.device = "cpu", threads: int | None = None) -> dict[str, Any]:
    """Median and p90 wall-clock latency of the forward pass (eager PyTorch), with the setting recorded."""
    device = torch.device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    model = model.to(device).eval()
    x = torch.randn(batch_size, *input_size, device=device)
    times = []
    for i in range(warmup + runs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    return {"median_ms": 1000 * statistics.median(times), "p90_ms": 1000 * times[int(0.9 * (len(times) - 1))],
            "batch_size": batch_size, "input_size": list(input_size), "runs": runs, "warmup": warmup,
            "device": str(device), "threads": torch.get_num_threads(), "runtime": "eager PyTorch",
            "dtype": "float32", "cpu": platform.processor() or platform.machine()}
