"""Chest X-ray samples -> training tensors (grey [0, 1] images; models adapt them, see InputAdapter)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch.utils.data import Dataset

from kdnas.config.schema import CXRAugment, CXRData
from kdnas.utils.errors import ConfigError


def open_cxr_split(data: CXRData, split: str | None):
    """The configured chest X-ray dataset's split (the built-in set is generated on first use)."""
    if data.format == "builtin":
        from kdnas.data.cxr.nih import NIHDataset
        from kdnas.data.synthetic.cxr import SYNTHETIC_FINDINGS, builtin_cxr_root

        root = builtin_cxr_root(**data.builtin)
        return NIHDataset(root, split, labels=data.labels or list(SYNTHETIC_FINDINGS), **data.options)
    if data.root is None:
        raise ConfigError(f"data.root is required for data.format {data.format!r}")
    from kdnas.data.cxr import open_cxr_dataset

    options = dict(data.options)
    if data.labels is not None:
        options["labels"] = data.labels
    return open_cxr_dataset(Path(data.root), data.format, split, **options)


class CXRTrainingSet(Dataset):
    """``image`` (1 x H x W, [0, 1]), ``labels`` (C, NaN = unknown), ``index`` (for the teacher cache),
    ``name`` and ``patient``. Augmentation (crop area, rotation, optional flip) is drawn per sample
    from a generator seeded by (seed, epoch, index)."""

    def __init__(self, base, input_size: tuple[int, int], augment: CXRAugment | None = None, seed: int = 0,
                 limit: int | None = None, indices: list[int] | None = None):
        self.base = base
        self.input_size = tuple(input_size)
        self.augment = augment
        self.seed, self.epoch = seed, 0
        n = len(base) if limit is None else min(limit, len(base))
        self.indices = list(range(n)) if indices is None else list(indices)

    @property
    def label_names(self) -> list[str]:
        return list(self.base.label_names)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def deterministic(self) -> bool:
        """True when every epoch sees the same pixels (no augmentation): teacher outputs can be cached."""
        a = self.augment
        return a is None or (a.hflip == 0 and tuple(a.scale) == (1.0, 1.0) and a.rotate_deg == 0)

    def _augment(self, img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        a = self.augment
        h, w = img.shape[-2:]
        if tuple(a.scale) != (1.0, 1.0):
            area = rng.uniform(*a.scale)
            ch, cw = max(1, round(h * math.sqrt(area))), max(1, round(w * math.sqrt(area)))
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            img = img[..., top:top + ch, left:left + cw]
        if a.rotate_deg:
            img = TF.rotate(img, float(rng.uniform(-a.rotate_deg, a.rotate_deg)),
                            interpolation=TF.InterpolationMode.BILINEAR)
        if a.hflip and rng.random() < a.hflip:
            img = img.flip(-1)
        return img

    def __getitem__(self, i: int) -> dict:
        idx = self.indices[i]
        sample = self.base[idx]
        img = torch.from_numpy(np.ascontiguousarray(sample.image, dtype=np.float32))[None]
        if self.augment is not None and not self.deterministic:
            img = self._augment(img, np.random.default_rng([self.seed, self.epoch, idx]))
        if tuple(img.shape[-2:]) != self.input_size:
            img = F.interpolate(img[None], size=self.input_size, mode="bilinear", align_corners=False,
                                antialias=True)[0]
        labels = torch.as_tensor(np.asarray(sample.labels, dtype=np.float32))
        return {"image": img, "labels": labels, "index": idx, "name": sample.name,
                "patient": sample.patient_id or sample.name}


def collate_cxr(batch: list[dict]) -> dict:
    return {"image": torch.stack([b["image"] for b in batch]), "labels": torch.stack([b["labels"] for b in batch]),
            "index": torch.tensor([b["index"] for b in batch]), "name": [b["name"] for b in batch],
            "patient": [b["patient"] for b in batch]}
