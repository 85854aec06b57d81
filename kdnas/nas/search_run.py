"""Search the trained supernet of a kdnas run: ``kdnas search RUN --max-macs ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from kdnas.nas.bn_calibration import recalibrate_bn
from kdnas.nas.costs import measure_latency, profile_model
from kdnas.nas.search import Constraints, SearchConfig, evolutionary_search
from kdnas.nas.space import ArchConfig
from kdnas.utils.errors import ConfigError
from kdnas.utils.io import atomic_write_json


def search_run(run_dir: str | Path, out: str | Path, constraints: Constraints, cfg: SearchConfig,
               calib_images: int | None = None, latency: bool = False, progress: bool = True) -> dict[str, Any]:
    from kdnas.api import load_run_config
    from kdnas.tasks import build_task
    from kdnas.train.checkpoint import load_best_weights

    run_dir, out = Path(run_dir), Path(out)
    run_cfg = load_run_config(run_dir)
    task = build_task(run_cfg)
    supernet = task.build_model(pretrained=False)
    if not hasattr(supernet, "sample_max_subnet"):
        raise ConfigError(f"run {run_dir} trained a static model ({run_cfg.model.name}); search needs a supernet run")
    supernet.load_state_dict(load_best_weights(run_dir))
    supernet.eval()
    bc = run_cfg.train.bn_calibration
    sets = task.datasets(calib_images or bc.num_images, "train")  # calibrate on training images, score on val
    bs = run_cfg.train.eval_batch_size or run_cfg.train.batch_size
    calib = DataLoader(sets["calib"], batch_size=bs, collate_fn=task.collate)
    val = DataLoader(sets["val"], batch_size=bs, collate_fn=task.collate)
    device = torch.device("cpu")
    costs_cache: dict[str, dict[str, Any]] = {}

    def subnet_of(arch: ArchConfig):
        supernet.set_active_subnet(arch)
        return supernet.get_active_subnet().eval()

    def cost_fn(arch: ArchConfig) -> dict[str, Any]:
        if arch.key() not in costs_cache:
            sub = subnet_of(arch)
            stats = profile_model(sub, task.input_shape())
            costs = {"params": stats["params"], "params_effective": stats["params_effective"], "macs": stats["macs"]}
            if latency:
                costs["latency_ms"] = measure_latency(sub, task.input_shape(), runs=10, warmup=3)["median_ms"]
            costs_cache[arch.key()] = costs
        return costs_cache[arch.key()]

    def score_fn(arch: ArchConfig) -> tuple[float, dict[str, Any]]:
        sub = subnet_of(arch)
        recalibrate_bn(sub, calib, task.forward, device)
        summary, _ = task.evaluate(sub, val, device)
        return task.selection_score(summary), summary

    log = print if progress else (lambda _: None)
    result = evolutionary_search(supernet.space, cost_fn, score_fn, constraints, cfg, log=lambda m: log(f"[search] {m}"))
    result["protocol"] = {"fitness": f"{task.name} selection score on the validation split (lower is better)",
                          "bn_calibration": f"{len(sets['calib'])} training images",
                          "macs": "FlopCounterMode / 2 at the subnet's working resolution",
                          "latency": "CPU eager PyTorch, batch 1, median of 10" if latency else None,
                          "run": str(run_dir)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "search.json", result)
    atomic_write_json(out / "best_arch.json", result["best"]["arch"])
    _plot_front(result, out / "pareto.png")
    return result


def _plot_front(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kdnas.utils.io import atomic_save

    fig, ax = plt.subplots(figsize=(5, 3.6))
    ev = result["evaluated"]
    ax.scatter([c["costs"]["macs"] / 1e6 for c in ev], [c["fitness"] for c in ev], s=12, alpha=0.5, label="evaluated")
    front = result["pareto_front"]
    ax.plot([c["costs"]["macs"] / 1e6 for c in front], [c["fitness"] for c in front], "r-o", ms=4, label="Pareto front")
    ax.set(xlabel="MACs (M)", ylabel="selection score (lower is better)", title="subnet search")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    atomic_save(path, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight", format="png"), suffix=".png")
    plt.close(fig)


