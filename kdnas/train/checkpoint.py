"""Atomic, safe checkpoints: weights in safetensors, everything else in JSON.

Layout of ``<run>/checkpoints/``::

    epoch-0003.safetensors   model, optimizer and teacher tensors after epoch 3
    epoch-0003.json          epoch, optimizer param groups, history, RNG-free trainer state; written
                             *after* its weights file, so a JSON always points at complete weights
    best-0002.safetensors    model weights of the best validation epoch
    best.json                which epoch is best, its metrics, and the weights file name

A run killed at any moment resumes from the newest complete ``epoch-*.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from kdnas.utils.errors import DataError
from kdnas.utils.io import atomic_path, atomic_write_json


def _detached(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage; slices of larger tensors need their own copy
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(_detached(tensors), str(tmp), metadata=metadata)


def load_tensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError(path, "checkpoint weights not found")
    try:
        return load_file(str(path), device=device)
    except Exception as exc:  # truncated or foreign file
        raise DataError(path, f"not a readable safetensors file ({exc})") from None


def optimizer_state_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_state_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, entry in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_epoch_checkpoint(ckpt_dir: Path, epoch: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                          keep: int = 2) -> Path:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    weights = ckpt_dir / f"epoch-{epoch:04d}.safetensors"
    save_tensors(weights, tensors)
    meta_path = ckpt_dir / f"epoch-{epoch:04d}.json"
    atomic_write_json(meta_path, {**meta, "epoch": epoch, "weights": weights.name})
    for old in sorted(ckpt_dir.glob("epoch-*.json"))[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)  # the JSON first: a dangling weights file is harmless
        (ckpt_dir / f"{old.stem}.safetensors").unlink(missing_ok=True)
    return meta_path


def latest_checkpoint(ckpt_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The newest complete epoch checkpoint, or None when the run has none."""
    for meta_path in sorted(ckpt_dir.glob("epoch-*.json"), reverse=True):
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            continue  # cannot happen with atomic writes, but never resume from a broken file
        weights = ckpt_dir / meta["weights"]
        if weights.is_file():
            return load_tensors(weights), meta
    return None


def save_best(ckpt_dir: Path, epoch: int, model_state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    weights = ckpt_dir / f"best-{epoch:04d}.safetensors"
    save_tensors(weights, model_state)
    atomic_write_json(ckpt_dir / "best.json", {**meta, "epoch": epoch, "weights": weights.name})
    for old in ckpt_dir.glob("best-*.safetensors"):
        if old.name != weights.name:
            old.unlink(missing_ok=True)


def best_info(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "checkpoints" / "best.json"
    if not path.is_file():
        raise DataError(path, "no best checkpoint in this run directory", expected="a finished or running kdnas run")
    return json.loads(path.read_text())


def load_best_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    info = best_info(run_dir)
    return load_tensors(Path(run_dir) / "checkpoints" / info["weights"])
