"""CAT2000 (Borji & Itti, 2015): 20 categories x 100 images of 1920x1080 per set.

Native layout of ``trainSet/`` (the root may be ``trainSet`` itself or its parent)::

    Stimuli/<Category>/<NNN>.jpg
    FIXATIONMAPS/<Category>/<NNN>.jpg     continuous fixation maps (8-bit JPEG)
    FIXATIONLOCS/<Category>/<NNN>.mat     variable ``fixLocs``: binary map at native size

``testSet/`` has ``Stimuli`` only (its ``Output`` sub-folders are skipped); stimuli then come
without maps or fixations. Names are ``<Category>/<NNN>``.

Fixations are the non-zero pixels of ``fixLocs`` as 0-based (x = column, y = row): a binary
map already indexes pixels, so no 1-based shift applies, and repeated fixations on one pixel
appear once (the per-subject ``allFixData.mat`` is a MATLAB ``containers.Map`` that SciPy
cannot read). The map is never resized (D3). Horizontal flips belong to the task (D2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdnas.data.saliency.base import BenchmarkSaliencyDataset
from kdnas.data.saliency.common import (
    IMAGE_SUFFIXES,
    check_same_size,
    load_mat,
    points_from_binary,
    read_density_map,
    read_rgb,
)
from kdnas.data.types import SaliencySample
from kdnas.utils.errors import DataError


class CAT2000Dataset(BenchmarkSaliencyDataset):
    """CAT2000 train (or test) set in its release layout (see module docstring)."""

    format_name = "cat2000"

    def __init__(self, root: str | Path, split: str | None = None, seed: int = 42, *,
                 split_file: str | Path | None = None, density_sigma: float | None = None):
        root = Path(root)
        if not (root / "Stimuli").is_dir() and (root / "trainSet" / "Stimuli").is_dir():
            root = root / "trainSet"
        self.root = root
        self.stimuli_dir = root / "Stimuli"
        self.maps_dir = root / "FIXATIONMAPS"
        self.locs_dir = root / "FIXATIONLOCS"
        if not self.stimuli_dir.is_dir():
            raise DataError(self.stimuli_dir, "CAT2000 stimulus folder not found",
                            expected="Stimuli/<Category>/<NNN>.jpg (trainSet or testSet)")
        self._stimuli: dict[str, Path] = {}
        self.categories = sorted(p.name for p in self.stimuli_dir.iterdir()
                                 if p.is_dir() and not p.name.startswith("."))
        for cat in self.categories:
            for p in sorted((self.stimuli_dir / cat).iterdir()):
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES:
                    self._stimuli[f"{cat}/{p.stem}"] = p
        if not self._stimuli:
            raise DataError(self.stimuli_dir, "no stimuli found", expected="Stimuli/<Category>/<NNN>.jpg")
        self.has_maps = self.maps_dir.is_dir()
        self.has_fixations = self.locs_dir.is_dir()
        for name in sorted(self._stimuli):
            if self.has_maps and not self._map_path(name).is_file():
                raise DataError(self._map_path(name), f"missing fixation map for stimulus {name}",
                                expected="FIXATIONMAPS/<Category>/<NNN>.jpg for every stimulus")
            if self.has_fixations and not self._locs_path(name).is_file():
                raise DataError(self._locs_path(name), f"missing fixation locations for stimulus {name}",
                                expected="FIXATIONLOCS/<Category>/<NNN>.mat for every stimulus")
        self._select(list(self._stimuli), split, seed, split_file, density_sigma)

    def _map_path(self, name: str) -> Path:
        cat, stem = name.split("/", 1)
        folder = self.maps_dir / cat
        for suffix in (".jpg", ".png", ".jpeg"):
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
        return folder / f"{stem}.jpg"

    def _locs_path(self, name: str) -> Path:
        cat, stem = name.split("/", 1)
        return self.locs_dir / cat / f"{stem}.mat"

    def fixations_for(self, name: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """0-based (x, y) of the fixated pixels (row-major order); empty without FIXATIONLOCS."""
        if not self.has_fixations:
            return np.zeros((0, 2))
        path = self._locs_path(name)
        locs = np.asarray(load_mat(path, keys=["fixLocs"])["fixLocs"])
        if locs.ndim != 2 or not (np.issubdtype(locs.dtype, np.number) or locs.dtype == bool):
            raise DataError(path, f"'fixLocs' has shape {locs.shape} and dtype {locs.dtype}",
                            expected="a 2-D binary map")
        if size is not None and locs.shape != tuple(size):
            raise DataError(path, f"'fixLocs' is {locs.shape[0]}x{locs.shape[1]} but the stimulus is "
                            f"{size[0]}x{size[1]} (HxW)", expected="a binary map of the stimulus' size")
        return points_from_binary(locs.astype(np.float64), threshold=0.5)

    def load(self, name: str) -> SaliencySample:
        stim = self._stimuli[name]
        image = read_rgb(stim)
        size = image.shape[:2]
        density = None
        if self.has_maps:
            map_path = self._map_path(name)
            density = read_density_map(map_path)
            check_same_size(map_path, density, stim, size)
        fix = self.fixations_for(name, size)
        meta = {"stimulus": str(stim), "category": name.split("/", 1)[0],
                "fixations": "FIXATIONLOCS binary map" if self.has_fixations else "none (test set)"}
        return self._sample(name, image, fix, density=density, meta=meta)
