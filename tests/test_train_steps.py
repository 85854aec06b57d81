"""Sandwich step, learning-rate schedule, optimiser groups, cache, logs and ``--help`` of every command."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from kdnas.cli.app import app
from kdnas.config.schema import TrainConfig
from kdnas.nas.supernet import SalNASSupernet
from kdnas.train.steps import lr_at, make_optimizer, sandwich_step


def test_cosine_warm_restarts_match_the_reference_formula():
    cfg = TrainConfig(epochs=20)  # SalNAS: lr 0.1, T0 = 10, stepped per epoch
    for e in range(20):
        assert math.isclose(lr_at(e, cfg), 0.05 * (1 + math.cos(math.pi * (e % 10) / 10)), rel_tol=1e-12)
    warm = TrainConfig(epochs=4, scheduler={"name": "constant", "warmup_epochs": 3})
    assert [lr_at(e, warm) for e in range(4)] == pytest.approx([0.025, 0.05, 0.075, 0.1])


def test_no_weight_decay_on_bn_and_biases():
    net = SalNASSupernet("salnas_tiny")
    opt = make_optimizer(net, TrainConfig().optimizer)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 1e-5 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"]


def test_sandwich_step_trains_max_random_min_with_one_optimizer_step():
    torch.manual_seed(0)
    net = SalNASSupernet("salnas_tiny").train()
    seen = []

    class Task:
        def forward(self, model, batch):
            seen.append((model.active_arch, model.dropout.p))
            return model(batch["image"], output_size=(12, 16))

        def loss(self, pred, batch, target=None):
            return pred.mean(), {}

    steps = []
    opt = make_optimizer(net, TrainConfig().optimizer)
    orig_step = opt.step
    opt.step = lambda *a, **k: steps.append(1) or orig_step(*a, **k)
    trainer = SimpleNamespace(model=net, cfg=SimpleNamespace(seed=0, train=TrainConfig()), device=torch.device("cpu"),
                              amp=False, task=Task(), optimizer=opt, trainable_params=list(net.parameters()),
                              scaler=torch.amp.GradScaler("cpu", enabled=False),
                              distiller=SimpleNamespace(loss=lambda task, pred, b, t: task.loss(pred, b)))
    before = net.stem.conv.weight.clone()
    stats = sandwich_step(trainer, {"image": torch.randn(2, 3, 48, 64)}, None, epoch=0, step=0)
    space = net.space
    assert [a for a, _ in seen][0] == space.max_arch() and seen[-1][0] == space.min_arch() and len(seen) == 4
    assert [p for _, p in seen] == [0.2, 0.0, 0.0, 0.0]  # dropout on the max subnet only
    assert len(steps) == 1 and not torch.equal(before, net.stem.conv.weight)
    assert {"max_loss", "rand1_loss", "rand2_loss", "min_loss", "loss"} <= set(stats)
    assert net.active_arch == space.max_arch() and net.dropout.p == 0.0


def test_every_command_has_help():
    runner = CliRunner()
    commands = ["demo", "train", "evaluate", "predict", "profile", "search", "export", "explain"]
    for cmd in commands:
        result = runner.invoke(app, [cmd, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, cmd
    assert runner.invoke(app, ["data", "summary", "--help"]).exit_code == 0
    assert "multiply-accumulates" in runner.invoke(app, ["profile", "--help"]).output


def test_run_logs_and_checkpoints(tiny_cxr_run):
    run = tiny_cxr_run
    csv = (run / "metrics.csv").read_text().splitlines()
    assert csv[0].startswith("epoch,lr,train/loss") and len(csv) == 3  # header + 2 epochs
    assert any((run / "tensorboard").iterdir())
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    assert (run / "checkpoints" / best["weights"]).is_file() and best["task"]["labels"]
    assert not list(run.rglob("*.tmp"))
