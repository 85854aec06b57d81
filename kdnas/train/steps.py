"""Optimiser, learning-rate schedule and the two training steps (sandwich and plain)."""

from __future__ import annotations

import math
import random
from typing import Any

import torch
from torch import nn

from kdnas.config.schema import OptimizerConfig, TrainConfig
from kdnas.train.distributed import average_gradients


def make_optimizer(model: nn.Module, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """SGD/Adam/AdamW; no weight decay on BN parameters and biases (1-d tensors) when configured."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue  # e.g. the reference-only unused shortcut weights
        (no_decay if cfg.no_decay_bn_bias and p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_at(epoch: int, cfg: TrainConfig) -> float:
    """Learning rate of a (0-based) epoch; the schedule is stepped once per epoch, as in SalNAS.

    ``cosine_restarts``: ``eta_min + (lr - eta_min) (1 + cos(pi (e mod t0) / t0)) / 2``
    (PyTorch's CosineAnnealingWarmRestarts with T_mult 1); ``cosine``: one cycle over all epochs.
    A linear warm-up over ``warmup_epochs`` multiplies either.
    """
    s, base = cfg.scheduler, cfg.optimizer.lr
    if s.name == "cosine_restarts":
        frac = (epoch % s.t0) / s.t0
    elif s.name == "cosine":
        frac = epoch / max(1, cfg.epochs)
    else:
        frac = 0.0
    lr = s.eta_min + (base - s.eta_min) * 0.5 * (1 + math.cos(math.pi * frac)) if s.name != "constant" else base
    if s.warmup_epochs and epoch < s.warmup_epochs:
        lr *= (epoch + 1) / (s.warmup_epochs + 1)
    return lr


def _clip(params: list[nn.Parameter], cfg: TrainConfig) -> None:
    if cfg.grad_clip.mode == "value":
        torch.nn.utils.clip_grad_value_(params, cfg.grad_clip.max)  # element-wise, as the reference
    elif cfg.grad_clip.mode == "norm":
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip.max)


def _finish_step(trainer: Any) -> None:
    params = trainer.trainable_params
    average_gradients(params)
    trainer.scaler.unscale_(trainer.optimizer)
    _clip(params, trainer.cfg.train)
    trainer.scaler.step(trainer.optimizer)
    trainer.scaler.update()
    trainer.optimizer.zero_grad(set_to_none=True)


def _backward(trainer: Any, batch: dict, teacher_out: Any) -> dict[str, float]:
    with torch.autocast(device_type=trainer.device.type, enabled=trainer.amp):
        pred = trainer.task.forward(trainer.model, batch)
    loss, parts = trainer.distiller.loss(trainer.task, pred, batch, teacher_out)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite training loss {loss.item()} ({ {k: float(v) for k, v in parts.items()} })")
    trainer.scaler.scale(loss).backward()
    return {"loss": float(loss.detach()), **{k: float(v) for k, v in parts.items()}}


def sandwich_step(trainer: Any, batch: dict, teacher_out: Any, epoch: int, step: int) -> dict[str, float]:
    """Max subnet (with dropout/drop-connect), ``num_random`` random subnets, min subnet; each loss is
    back-propagated separately, gradients accumulate, then one optimiser step."""
    from kdnas.utils.seed import derive_seed

    model, space, sw = trainer.model, trainer.model.space, trainer.cfg.train.sandwich
    rng = random.Random(derive_seed(trainer.cfg.seed, epoch, step))  # same subnets on every rank
    archs = [space.max_arch()] + [space.random_arch(rng) for _ in range(sw.num_random)] + [space.min_arch()]
    dropout = space.dropout if sw.max_dropout is None else sw.max_dropout
    drop_connect = space.drop_connect if sw.max_drop_connect is None else sw.max_drop_connect
    stats: dict[str, float] = {}
    for k, arch in enumerate(archs):
        model.set_active_subnet(arch)
        model.set_regularization(dropout if k == 0 else 0.0, drop_connect if k == 0 else 0.0)
        tag = "max" if k == 0 else ("min" if k == len(archs) - 1 else f"rand{k}")
        for key, value in _backward(trainer, batch, teacher_out).items():
            stats[f"{tag}_{key}"] = value
    model.set_regularization(0.0, 0.0)
    model.sample_max_subnet()
    _finish_step(trainer)
    stats["loss"] = stats["max_loss"]
    return stats


def plain_step(trainer: Any, batch: dict, teacher_out: Any, epoch: int, step: int) -> dict[str, float]:
    stats = _backward(trainer, batch, teacher_out)
    _finish_step(trainer)
    return stats
