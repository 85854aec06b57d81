"""Data-parallel training through ``torchrun`` (gloo on the CPU, NCCL on CUDA).

The sandwich rule runs several forward/backward passes over *different* subnets before one
optimizer step. ``DistributedDataParallel``'s reducer expects one forward/backward per step and a
fixed set of used parameters, so kdnas averages gradients itself, once per step, with bucketed
all-reduces (the same arithmetic DDP performs). Every rank samples the same subnets (their seeds
derive from the epoch and step, not the rank) and holds identical weights: parameters are
broadcast from rank 0 at start.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def world_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment (1 process without it)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    if preference == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is {preference!r} but CUDA is not available")
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def init_distributed(device: torch.device) -> bool:
    """Join the process group when launched by torchrun; returns True when distributed."""
    _, world, _ = world_info()
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return world > 1
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    return not is_distributed() or dist.get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's object on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@torch.no_grad()
def broadcast_module(module: nn.Module) -> None:
    if is_distributed():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


@torch.no_grad()
def average_gradients(params: list[nn.Parameter], bucket_numel: int = 2 ** 22) -> None:
    """All-reduce (mean) the gradients of ``params`` across ranks; missing grads count as zeros so
    every rank reduces the same buckets."""
    if not is_distributed():
        return
    world = dist.get_world_size()
    grads = []
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    bucket: list[torch.Tensor] = []
    size = 0
    for g in grads + [None]:
        if g is not None:
            bucket.append(g)
            size += g.numel()
        if bucket and (g is None or size >= bucket_numel):
            flat = torch.cat([b.reshape(-1) for b in bucket])
            dist.all_reduce(flat)
            flat /= world
            offset = 0
            for b in bucket:
                b.copy_(flat[offset:offset + b.numel()].view_as(b))
                offset += b.numel()
            bucket, size = [], 0


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


@torch.no_grad()
def replicas_in_sync(module: nn.Module) -> bool:
    """True when every rank holds bit-identical parameters (a cheap checksum comparison)."""
    if not is_distributed():
        return True
    total = torch.zeros(1, dtype=torch.float64)
    for i, p in enumerate(module.parameters()):
        total += p.detach().double().cpu().sum() * (i + 1)
    gathered = [torch.zeros_like(total) for _ in range(dist.get_world_size())]
    if dist.get_backend() == "nccl":
        total, gathered = total.cuda(), [g.cuda() for g in gathered]
    dist.all_gather(gathered, total)
    return all(torch.equal(g, gathered[0]) for g in gathered)
