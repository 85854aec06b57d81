"""Seeding and determinism."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; optionally request deterministic kernels.

    On the CPU the same seed and config give bit-identical results. On CUDA,
    ``deterministic=True`` turns off cuDNN autotuning and asks for deterministic
    algorithms (slower); ``False`` enables ``cudnn.benchmark`` (the reference's
    setting, not bit-reproducible).
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.backends.cudnn.benchmark = True


def derive_seed(*parts: int) -> int:
    """A stable seed from several integers (e.g. base seed, epoch, rank)."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFF)) * 1099511628211) % (2**63)
    return int(h % (2**31 - 1))


def torch_generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g
