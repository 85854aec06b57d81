"""The Python API behind the CLI (usable from notebooks).

    import kdnas.api as kd
    summary = kd.train("kdnas/configs/salnas_tiny.yaml", out_dir="runs/sal")
    model, task = kd.load_model("runs/sal", which="min")
    kd.profile("eeea_c2", num_classes=14)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdnas.config.schema import Experiment, load_config, parse_config
from kdnas.utils.errors import ConfigError, DataError

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"


def resolve_config_path(config: str | Path) -> Path:
    """A config file path, or the name of a shipped example config (``salnas_tiny``)."""
    path = Path(config)
    if path.is_file():
        return path
    shipped = CONFIGS_DIR / f"{path.stem}.yaml"
    if not path.suffix and shipped.is_file():
        return shipped
    names = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))
    raise ConfigError(f"config file not found: {config} (shipped example configs: {', '.join(names)})")


def train(config: str | Path | Experiment, out_dir: str | Path | None = None, resume: bool = False,
          overrides: dict[str, Any] | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Train one experiment; returns the run summary (also written to ``<out>/summary.json``)."""
    from kdnas.train.trainer import Trainer

    cfg = config if not isinstance(config, (str, Path)) else load_config(resolve_config_path(config), overrides)
    return Trainer(cfg, out_dir=out_dir, resume=resume, progress=progress).fit()


def load_run_config(run_dir: str | Path) -> Experiment:
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise DataError(path, "not a kdnas run directory (config.yaml missing)")
    return parse_config(yaml.safe_load(path.read_text()), str(path))


def load_model(run_dir: str | Path, which: str | None = None, device: str = "cpu") -> tuple[nn.Module, Any]:
    """A trained model of a run, in eval mode, with its task.

    Supernet runs: ``which`` = ``max``/``min`` (the extracted, BN-recalibrated subnets saved at the end
    of training; default ``max``). Static runs: the best checkpoint.
    """
    from kdnas.tasks import build_task
    from kdnas.train.checkpoint import load_best_weights, load_tensors

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    task = build_task(cfg)
    subnet_files = sorted((run_dir / "subnets").glob("*.json"))
    if subnet_files:
        from kdnas.models.salnas import SalNASSubnet
        from kdnas.nas.space import load_space

        which = which or "max"
        meta_path = run_dir / "subnets" / f"{which}.json"
        if not meta_path.is_file():
            raise ConfigError(f"run {run_dir} has no subnet {which!r}; available: {[p.stem for p in subnet_files]}")
        meta = json.loads(meta_path.read_text())
        model = SalNASSubnet(load_space(meta["space"]), meta["arch"])
        model.load_state_dict(load_tensors(run_dir / "subnets" / f"{which}.safetensors"))
    else:
        if which not in (None, "model", "best"):
            raise ConfigError(f"run {run_dir} holds a static model; --subnet {which!r} does not apply")
        from kdnas.train.checkpoint import best_info

        labels = best_info(run_dir).get("task", {}).get("labels")
        if labels:
            task.label_names = labels  # no need for the training data to rebuild the head
        model = task.build_model(pretrained=False)
        model.load_state_dict(load_best_weights(run_dir))
    return model.to(device).eval(), task


def profile(model: str, num_classes: int | None = None, subnet: str | None = None, space: str | None = None,
            input_size: tuple[int, int] | None = None, in_chans: int = 3, latency: bool = False) -> dict[str, Any]:
    """Parameters (registered / effective) and MACs of a model at its working resolution."""
    from kdnas.models.registry import create_model
    from kdnas.nas.costs import measure_latency, profile_model

    kwargs: dict[str, Any] = {}
    if model == "salnas":
        kwargs = {"space": space or "salnas", "subnet": subnet or "max"}
    elif model == "salnas_supernet":
        kwargs = {"space": space or "salnas"}
    elif subnet is not None:
        raise ConfigError("--subnet applies to --model salnas only")
    else:
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        kwargs["in_chans"] = in_chans
    net = create_model(model, **kwargs).eval()
    if input_size is None:
        input_size = tuple(getattr(net, "resolution", None) or _default_input_size(net))
    stats = profile_model(net, (in_chans if model not in ("salnas", "salnas_supernet") else 3, *input_size))
    stats["model"] = model
    if subnet is not None or model == "salnas":
        stats["subnet"] = net.arch.to_dict()
    if num_classes is not None:
        stats["num_classes"] = num_classes
    if latency:
        stats["latency"] = measure_latency(net, tuple(stats["input_size"]))
    return stats


def _default_input_size(net: nn.Module) -> tuple[int, int]:
    size = getattr(net, "default_input_size", None)
    if size:
        return tuple(size)
    cfg = getattr(net, "pretrained_cfg", None) or {}
    return tuple(cfg.get("input_size", (3, 224, 224))[1:])


@torch.no_grad()
def evaluate_run(run_dir: str | Path, split: str = "test", which: str | None = None) -> dict[str, Any]:
    """Re-score a trained model of a run on one of its configured splits (the training protocol)."""
    from torch.utils.data import DataLoader

    model, task = load_model(run_dir, which)
    sets = task.datasets(calib_images=1)
    if split not in sets:
        raise ConfigError(f"split {split!r} is not configured for this run; available: "
                          f"{[s for s in sets if s != 'calib']}")
    loader = DataLoader(sets[split], batch_size=16, collate_fn=task.collate)
    summary, rows = task.evaluate(model, loader, torch.device("cpu"))
    return {"run": str(run_dir), "split": split, "model": which or "default", "metrics": summary, "rows": rows}
