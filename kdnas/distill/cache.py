"""Teacher-output cache: teacher logits computed once per training image, memory-mapped afterwards.

A KD epoch then costs about what a student-only epoch costs. Caching is only valid when every
epoch shows the teacher the same pixels (no random crop, rotation or flip); otherwise the cache
would silently distil stale targets, so kdnas refuses (``cache: on``) or falls back to the live
teacher with a message (``cache: auto``).

Files: ``<dir>/<key>.npy`` (float32, N x C, memory-mapped) and ``<key>.json`` (what it was built
from). The key hashes the teachers' weights, their input geometry and the dataset's image list, so a
changed teacher or dataset never reuses a stale cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdnas.utils.io import atomic_path, atomic_write_json


def fingerprint_modules(modules: Iterable[torch.nn.Module], extra: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    for module in modules:
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


class TeacherCache:
    """Read-only view of a built cache: ``lookup(indices)`` -> teacher logits (N x C float32)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.logits = np.load(self.path, mmap_mode="r")
        self.meta = json.loads(self.path.with_suffix(".json").read_text())

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        rows = np.asarray(indices.cpu().numpy(), dtype=np.int64)
        return torch.from_numpy(np.ascontiguousarray(self.logits[rows]))

    @classmethod
    def build(cls, directory: Path, key: str, n_items: int, n_classes: int,
              batches: Iterable[dict], teacher_fn: Callable[[torch.Tensor], torch.Tensor],
              meta: dict[str, Any], device: torch.device) -> TeacherCache:
        """Fill the cache from ``batches`` (each with ``image`` and dataset ``index``), atomically."""
        path = Path(directory) / f"{key}.npy"
        if path.is_file() and path.with_suffix(".json").is_file():
            return cls(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        filled = np.zeros(n_items, dtype=bool)
        with atomic_path(path, suffix=".npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_items, n_classes))
            out[:] = np.nan
            with torch.no_grad():
                for batch in batches:
                    logits = teacher_fn(batch["image"].to(device)).float().cpu().numpy()
                    idx = batch["index"].numpy()
                    out[idx] = logits
                    filled[idx] = True
            out.flush()
            del out
        atomic_write_json(path.with_suffix(".json"), {**meta, "key": key, "n_items": n_items,
                                                      "n_filled": int(filled.sum()), "n_classes": n_classes})
        return cls(path)
