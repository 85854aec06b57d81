"""Common machinery of the benchmark loaders: split selection and sample assembly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kdnas.data.saliency.common import blurred_density, in_bounds, sort_key
from kdnas.data.saliency.splits import make_split, read_split_csv
from kdnas.data.types import SaliencyDataset, SaliencySample
from kdnas.utils.errors import ConfigError, DataError


class BenchmarkSaliencyDataset(SaliencyDataset):
    """Base of the native-format loaders.

    ``all_names`` is every stimulus of the dataset, sorted as the reference sorted its file
    list; ``names`` is the selected split: ``None`` = all, ``"train"``/``"val"`` = the
    seeded standard split (:func:`make_split`), or any split label of ``split_file`` (a
    ``name,split`` CSV, e.g. one written by :func:`write_split_csv`).

    ``density_sigma`` (px) builds a density map for datasets that ship none, as the
    Gaussian blur of the fixation count map scaled to max 1 (MSI-Net used 16 px for OSIE
    and DUT-OMRON, 30 px for FIWI); ``None`` leaves ``density`` as the dataset gives it.
    """

    format_name = "benchmark"

    def _select(self, all_names: list[str], split: str | None, seed: int, split_file: str | Path | None,
                density_sigma: float | None) -> None:
        self.all_names = sorted(all_names, key=sort_key)
        self.split = split
        self.seed = seed
        self.density_sigma = density_sigma
        if density_sigma is not None and not density_sigma > 0:
            raise ConfigError(f"density_sigma must be > 0 px, got {density_sigma}")
        if split_file is not None:
            table = read_split_csv(split_file)
            if split is None:
                raise ConfigError(f"split_file given without a split; labels in it: {sorted(table)}")
            if split not in table:
                raise ConfigError(f"split {split!r} not in {split_file}; labels there: {sorted(table)}")
            known = set(self.all_names)
            missing = [n for n in table[split] if n not in known]
            if missing:
                raise DataError(split_file, f"names {missing[:3]} (of {len(missing)}) have no stimulus in "
                                f"{self.root}", expected=f"names of this {self.format_name} dataset")
            self.names = list(table[split])
        elif split is None:
            self.names = list(self.all_names)
        elif split in ("train", "val"):
            self.names = make_split(self.format_name, self.all_names, seed)[split]
        else:
            raise ConfigError(f"split {split!r} is not a standard split of {self.format_name}; "
                              "use 'train', 'val', None, or pass split_file=<name,split CSV>")

    def _sample(self, name: str, image: np.ndarray, fixations: np.ndarray, *, density: np.ndarray | None = None,
                subjects: np.ndarray | None = None, meta: dict[str, Any] | None = None,
                drop_outside: bool = True) -> SaliencySample:
        """Assemble a sample; points outside the image are dropped (counted in meta)."""
        size = (int(image.shape[0]), int(image.shape[1]))
        fixations = np.asarray(fixations, dtype=np.float64).reshape(-1, 2)
        meta = {"format": self.format_name, **(meta or {})}
        if drop_outside:
            keep = in_bounds(fixations, size)
            meta["dropped_outside"] = int((~keep).sum())
            fixations = fixations[keep]
            if subjects is not None:
                subjects = np.asarray(subjects)[keep]
        if density is None and self.density_sigma is not None:
            density = blurred_density(fixations, size, self.density_sigma)
            meta["density_from_fixations_sigma"] = self.density_sigma
        return SaliencySample(name=name, image=image, fixations=fixations, density=density, size=size,
                              subjects=None if subjects is None else np.asarray(subjects, dtype=np.int64),
                              meta=meta)

    def check(self) -> int:
        """Load every selected sample (raising on the first bad file); returns the count."""
        for name in self.names:
            self.load(name)
        return len(self.names)
