"""The training engine, shared by both tasks.

One epoch = training steps (sandwich rule for supernets, plain step otherwise), then validation
(supernets: extract each validated subnet, recalibrate its BN on the calibration set, score it),
model selection, the distiller's teacher update, and an atomic checkpoint. ``resume`` continues
the same trajectory: learning rates, data order, augmentations and sampled subnets are all
functions of (seed, epoch, step), and the optimiser and teacher states are restored.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from kdnas import __version__
from kdnas.config.schema import config_to_dict, dump_config
from kdnas.distill.base import build_distiller
from kdnas.nas.bn_calibration import recalibrate_bn
from kdnas.tasks import build_task
from kdnas.train import checkpoint as ckpt
from kdnas.train.distributed import (
    barrier,
    broadcast_module,
    broadcast_object,
    init_distributed,
    is_distributed,
    is_main,
    replicas_in_sync,
    resolve_device,
    world_info,
)
from kdnas.train.logger import RunLogger
from kdnas.train.steps import lr_at, make_optimizer, plain_step, sandwich_step
from kdnas.utils.errors import ConfigError
from kdnas.utils.io import atomic_write_csv, atomic_write_json, atomic_write_text
from kdnas.utils.seed import derive_seed, seed_everything, torch_generator

# Config sections that define the trajectory: a resumed run must match them.
_TRAJECTORY_KEYS = ("task", "seed", "model", "data", "distill")


class Trainer:
    def __init__(self, cfg: Any, out_dir: str | Path | None = None, resume: bool = False, progress: bool | None = None):
        self.cfg = cfg
        self.out_dir = Path(out_dir) if out_dir is not None else Path(cfg.output_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.progress = cfg.train.progress if progress is None else progress
        self.rank, self.world, local_rank = world_info()
        self.device = resolve_device(cfg.train.device, local_rank)
        init_distributed(self.device)
        seed_everything(cfg.seed, cfg.train.deterministic)
        self.amp = bool(cfg.train.amp and self.device.type == "cuda")
        self.task = build_task(cfg)
        bc = cfg.train.bn_calibration
        self.sets: dict[str, Dataset] = self.task.datasets(bc.num_images, bc.split)
        self.model = self.task.build_model().to(self.device)
        if cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        broadcast_module(self.model)
        self.is_supernet = hasattr(self.model, "sample_max_subnet")
        self.trainable_params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.model, cfg.train.optimizer)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.distiller = build_distiller(cfg, self.task)
        self.distiller.setup(self)
        self.history: list[dict[str, Any]] = []
        self.start_epoch, self.best_score, self.best_epoch = 0, math.inf, -1
        if resume:
            self._resume()
        elif ckpt.latest_checkpoint(self.ckpt_dir) is not None:
            raise ConfigError(f"{self.out_dir} already holds a run; pass --resume to continue it or choose another "
                              "output directory")
        self.logger = RunLogger(self.out_dir, is_main(), cfg.train.tensorboard, purge_step=self.start_epoch)

    @property
    def raw_model(self) -> torch.nn.Module:
        return self.model

    # ------------------------------------------------------------------ data
    def loader(self, split: str, epoch: int = 0, train: bool = False) -> DataLoader:
        ds, t = self.sets[split], self.cfg.train
        batch_size = t.batch_size if train else (t.eval_batch_size or t.batch_size)
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(epoch)
        sampler = None
        if train and is_distributed():
            sampler = DistributedSampler(ds, shuffle=True, seed=self.cfg.seed, drop_last=True)
            sampler.set_epoch(epoch)
        elif train:
            sampler = RandomSampler(ds, generator=torch_generator(derive_seed(self.cfg.seed, epoch)))
        return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=t.num_workers,
                          collate_fn=self.task.collate, drop_last=train and len(ds) >= batch_size * self.world,
                          pin_memory=self.device.type == "cuda",
                          generator=torch_generator(derive_seed(self.cfg.seed, epoch, 7)))

    def _to_device(self, batch: dict) -> dict:
        out = {}
        for k, v in batch.items():
            if isinstance(v, torch.Tensor):
                v = v.to(self.device, non_blocking=True)
                if k == "image" and self.cfg.train.channels_last and v.ndim == 4:
                    v = v.contiguous(memory_format=torch.channels_last)
            out[k] = v
        return out

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, Any]:
        if is_main():
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out_dir / "config.yaml", dump_config(self.cfg))
        for epoch in range(self.start_epoch, self.cfg.train.epochs):
            t0 = time.time()
            # dropout / drop-connect draw from the global RNGs: reseed them per epoch so that a resumed
            # run replays exactly what an uninterrupted one does
            seed_everything(derive_seed(self.cfg.seed, epoch, self.rank), self.cfg.train.deterministic)
            lr = lr_at(epoch, self.cfg.train)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            train_stats = self.train_epoch(epoch)
            val = broadcast_object(self.validate(epoch) if is_main() else None)
            improved = val["score"] < self.best_score
            if improved:
                self.best_score, self.best_epoch = val["score"], epoch
            self.distiller.on_validation_end(self, epoch, improved)
            record = {"epoch": epoch, "lr": lr, "train": train_stats, "val": val["metrics"], "score": val["score"],
                      "best_epoch": self.best_epoch, "time_s": round(time.time() - t0, 2)}
            self.history.append(record)
            if is_main():
                if improved:
                    ckpt.save_best(self.ckpt_dir, epoch, self.model.state_dict(),
                                   {"score": val["score"], "metrics": val["metrics"], "task": self.task.metadata()})
                self._save_checkpoint(epoch)
                self.logger.log_epoch(self.history)
                if self.progress:
                    tqdm.write(self._epoch_line(record))
            barrier()
        self.in_sync = replicas_in_sync(self.model)
        summary = self.finish() if is_main() else {}
        self.logger.close()
        barrier()
        return broadcast_object(summary)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        step_fn = sandwich_step if self.is_supernet else plain_step
        totals: dict[str, float] = {}
        n = 0
        loader = self.loader("train", epoch, train=True)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{self.cfg.train.epochs}", leave=False,
                   disable=not (self.progress and is_main()), dynamic_ncols=True)
        for step, batch in enumerate(bar):
            batch = self._to_device(batch)
            teacher_out = self.distiller.teacher_output(batch, epoch)
            stats = step_fn(self, batch, teacher_out, epoch, step)
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + v
            n += 1
            bar.set_postfix(loss=f"{stats['loss']:.4f}")
        return {k: v / max(n, 1) for k, v in totals.items()}

    # ------------------------------------------------------------------ validation
    def _calibrated_subnet(self, which: str) -> torch.nn.Module:
        self.model.set_active_subnet(which)
        subnet = self.model.get_active_subnet().to(self.device)
        recalibrate_bn(subnet, self.loader("calib"), self.task.forward, self.device)
        return subnet

    def score_models(self, split: str) -> dict[str, Any]:
        """Metrics of the model (static) or of each validated subnet (supernet) on ``split``."""
        if not self.is_supernet:
            summary, rows = self.task.evaluate(self.model, self.loader(split), self.device)
            return {"model": summary, "_rows": {"model": rows}, "_models": {"model": self.model}}
        out: dict[str, Any] = {"_rows": {}, "_models": {}}
        active = self.model.active_arch
        for which in self.cfg.train.validate_subnets:
            subnet = self._calibrated_subnet(which)
            out[which], out["_rows"][which] = self.task.evaluate(subnet, self.loader(split), self.device)
            out["_models"][which] = subnet
        self.model.set_active_subnet(active)
        return out

    def validate(self, epoch: int) -> dict[str, Any]:
        scores = self.score_models("val")
        scores.pop("_rows"), scores.pop("_models")
        key = "model" if "model" in scores else self.cfg.train.validate_subnets[0]
        self.model.train()
        return {"metrics": scores, "score": float(self.task.selection_score(scores[key]))}

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, epoch: int) -> None:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_tensors, opt_meta = ckpt.optimizer_state_to_flat(self.optimizer)
        tensors.update(opt_tensors)
        tensors.update(self.distiller.state_tensors())
        meta = {"kdnas_version": __version__, "config": config_to_dict(self.cfg), "optimizer": opt_meta,
                "scaler": self.scaler.state_dict(), "history": self.history, "best_score": self.best_score,
                "best_epoch": self.best_epoch, "distiller": self.distiller.state_meta(), "task": self.task.metadata()}
        ckpt.save_epoch_checkpoint(self.ckpt_dir, epoch, tensors, meta, keep=self.cfg.train.keep_checkpoints)

    def _resume(self) -> None:
        found = ckpt.latest_checkpoint(self.ckpt_dir)
        if found is None:
            raise ConfigError(f"--resume: no checkpoint in {self.ckpt_dir}")
        tensors, meta = found
        saved, current = meta["config"], config_to_dict(self.cfg)
        changed = [k for k in _TRAJECTORY_KEYS if saved.get(k) != current.get(k)]
        if changed:
            raise ConfigError(f"--resume: the config differs from the checkpointed run in {changed}; resuming would "
                              "not continue the same trajectory")
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.optimizer.load_state_dict(ckpt.optimizer_state_from_flat(tensors, meta["optimizer"]))
        if meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        self.distiller.load_state({k: v.to(self.device) for k, v in tensors.items()}, meta.get("distiller", {}))
        self.history = meta["history"]
        self.best_score, self.best_epoch = meta["best_score"], meta["best_epoch"]
        self.start_epoch = meta["epoch"] + 1

    # ------------------------------------------------------------------ final report
    def finish(self) -> dict[str, Any]:
        """Best weights -> final scores on the test split (val when there is none), subnets, costs."""
        from kdnas.nas.costs import profile_model

        info = ckpt.best_info(self.out_dir)
        self.model.load_state_dict(ckpt.load_best_weights(self.out_dir))
        split = "test" if "test" in self.sets else "val"
        scores = self.score_models(split)
        rows, trained = scores.pop("_rows"), scores.pop("_models")
        models: dict[str, Any] = {}
        for which, metrics in scores.items():
            entry: dict[str, Any] = {"metrics": metrics}
            costs_model = trained[which]
            if self.is_supernet:
                subnet = trained[which]
                entry["arch"] = subnet.arch.to_dict()
                ckpt.save_tensors(self.out_dir / "subnets" / f"{which}.safetensors", subnet.state_dict())
                atomic_write_json(self.out_dir / "subnets" / f"{which}.json",
                                  {"space": self.model.space.model_dump(mode="json"), "arch": subnet.arch.to_dict(),
                                   "task": self.task.metadata(), "metrics": metrics, "split": split})
            entry["costs"] = profile_model(costs_model, self.task.input_shape())
            models[which] = entry
            if rows[which]:
                atomic_write_csv(self.out_dir / f"{split}_per_image_{which}.csv", rows[which])
        summary = {"name": self.cfg.name, "task": self.task.name, "kdnas_version": __version__,
                   "best_epoch": info["epoch"], "best_val_score": info["score"], "eval_split": split,
                   "models": models, "distill": self.distiller.describe(), "epochs": self.cfg.train.epochs,
                   "seed": self.cfg.seed, "world_size": self.world, "replicas_in_sync": self.in_sync,
                   "history": self.history}
        atomic_write_json(self.out_dir / "summary.json", summary)
        return summary

    def _epoch_line(self, record: dict[str, Any]) -> str:
        val = record["val"]
        parts = []
        for which, metrics in val.items():
            shown = {k: v for k, v in metrics.items() if isinstance(v, float)}
            parts.append(f"{which}: " + " ".join(f"{k}={v:.4f}" for k, v in list(shown.items())[:6]))
        star = " *" if record["best_epoch"] == record["epoch"] else ""
        return (f"[{self.cfg.name}] epoch {record['epoch'] + 1}/{self.cfg.train.epochs} "
                f"loss={record['train'].get('loss', float('nan')):.4f} lr={record['lr']:.4g} | "
                + " | ".join(parts) + f" | {record['time_s']:.0f}s{star}")
