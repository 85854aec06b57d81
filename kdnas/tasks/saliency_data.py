"""Saliency samples -> training tensors.

The loader gives native-resolution samples with 0-based fixation coordinates. Here an image is
resized to the model's input size, the density map to the training target size, and the fixations
are *rescaled as coordinates* and only then rasterised at the target size (fixes D3/D4). A
horizontal flip moves the fixations to ``x -> W - 1 - x`` with the same decision as the image and
the map (fixes D2). Each sample's augmentation is drawn from its own generator seeded by (seed,
epoch, index), so a run is reproducible regardless of worker count, and a resumed run replays the
same augmentations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch.utils.data import Dataset

from kdnas.config.schema import SaliencyAugment, SaliencyData
from kdnas.data.types import SaliencyDataset, SaliencySample
from kdnas.utils.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZATION = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}


def open_saliency_split(data: SaliencyData, split: str | None) -> SaliencyDataset:
    """The configured dataset's split (the built-in synthetic set is generated on first use)."""
    if data.format == "builtin":
        from kdnas.data.saliency.folder import FolderSaliencyDataset
        from kdnas.data.synthetic.saliency import builtin_saliency_root

        return FolderSaliencyDataset(builtin_saliency_root(**data.builtin), split)
    if data.root is None:
        raise ConfigError(f"data.root is required for data.format {data.format!r}")
    from kdnas.data.saliency import open_saliency_dataset

    return open_saliency_dataset(Path(data.root), data.format, split=split, **data.options)


def rasterise_fixations(fixations: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """Fixation counts at ``dst_size`` from 0-based coordinates in a ``src_size`` frame.

    Pixel centres map onto pixel centres: ``x' = (x + 0.5) * W'/W - 0.5``, then rounded.
    Duplicates add up (a preset decides later whether they collapse).
    """
    (h, w), (th, tw) = src_size, dst_size
    counts = np.zeros((th, tw), dtype=np.float32)
    if len(fixations):
        xs = np.clip(np.rint((fixations[:, 0] + 0.5) * tw / w - 0.5), 0, tw - 1).astype(np.int64)
        ys = np.clip(np.rint((fixations[:, 1] + 0.5) * th / h - 0.5), 0, th - 1).astype(np.int64)
        np.add.at(counts, (ys, xs), 1.0)
    return counts


def _resize(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    return F.interpolate(t[None], size=tuple(size), mode="bilinear", align_corners=False, antialias=True)[0]


def _color_jitter(img: torch.Tensor, strength: tuple[float, float, float, float], rng: np.random.Generator) -> torch.Tensor:
    """torchvision ColorJitter semantics, drawn from ``rng`` instead of the global torch RNG."""
    b, c, s, h = strength
    ops = []
    if b > 0:
        ops.append(lambda x, f=rng.uniform(max(0, 1 - b), 1 + b): TF.adjust_brightness(x, f))
    if c > 0:
        ops.append(lambda x, f=rng.uniform(max(0, 1 - c), 1 + c): TF.adjust_contrast(x, f))
    if s > 0:
        ops.append(lambda x, f=rng.uniform(max(0, 1 - s), 1 + s): TF.adjust_saturation(x, f))
    if h > 0:
        ops.append(lambda x, f=rng.uniform(-h, h): TF.adjust_hue(x, f))
    for i in rng.permutation(len(ops)):
        img = ops[i](img)
    return img


class SaliencyTrainingSet(Dataset):
    """Tensors for training/validation: ``image`` (3xHxW, normalised), ``density`` and ``fixations``
    (count map) at the target size, plus the stimulus name and its native size."""

    def __init__(self, base: SaliencyDataset, input_size: tuple[int, int], target_size: tuple[int, int],
                 density_sigma: float, normalize: str = "imagenet", augment: SaliencyAugment | None = None,
                 seed: int = 0, limit: int | None = None, indices: list[int] | None = None):
        self.base = base
        self.input_size, self.target_size = tuple(input_size), tuple(target_size)
        self.density_sigma = density_sigma
        self.mean, self.std = NORMALIZATION[normalize]
        self.augment = augment
        self.seed, self.epoch = seed, 0
        n = len(base) if limit is None else min(limit, len(base))
        self.indices = list(range(n)) if indices is None else list(indices)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def density_of(self, sample: SaliencySample) -> np.ndarray:
        if sample.density is not None:
            return np.asarray(sample.density, dtype=np.float32)
        from kdnas.data.saliency.common import blurred_density

        return blurred_density(sample.fixations, sample.size, self.density_sigma).astype(np.float32)

    def __getitem__(self, i: int) -> dict:
        sample = self.base[self.indices[i]]
        h, w = sample.size
        image = torch.from_numpy(np.array(sample.image, dtype=np.float32)).permute(2, 0, 1) / 255.0
        density = torch.from_numpy(self.density_of(sample))[None]
        fixations = sample.fixations.copy()
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, self.indices[i]])
            if rng.random() < self.augment.hflip:
                image, density = image.flip(-1), density.flip(-1)
                fixations[:, 0] = (w - 1) - fixations[:, 0]
            if self.augment.color_jitter:
                image = _color_jitter(image, self.augment.color_jitter, rng)
        image = _resize(image, self.input_size)
        image = TF.normalize(image, self.mean, self.std)
        density = _resize(density, self.target_size)[0].clamp_min(0)
        fixmap = torch.from_numpy(rasterise_fixations(fixations, (h, w), self.target_size))
        return {"image": image, "density": density, "fixations": fixmap, "name": sample.name,
                "size": torch.tensor([h, w])}


def collate_saliency(batch: list[dict]) -> dict:
    out = {k: torch.stack([b[k] for b in batch]) for k in ("image", "density", "fixations", "size")}
    out["name"] = [b["name"] for b in batch]
    return out
