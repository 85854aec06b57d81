"""FIWI (Shen & Zhao, ECCV 2014): 149 webpage screenshots (768x1360/1366), 11 observers, 5 s.

Native layout of ``webpage_dataset.zip``: stimuli ``.../stimuli/<name>.png`` and the
fixation maps over the whole 5 s in a folder named ``all5`` (``.../all5/<name>.png``), both
found anywhere under the root. The ``all5`` maps are lossless PNG fixation maps at native
size: every non-zero pixel is a fixation (0-based x = column, y = row), repeats collapsed.
No density maps ship: MSI-Net blurred the ``all5`` map with 30 px (``density_sigma=30``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdnas.data.saliency.base import BenchmarkSaliencyDataset
from kdnas.data.saliency.common import find_stimuli, points_from_binary, read_grey, read_rgb
from kdnas.data.types import SaliencySample
from kdnas.utils.errors import DataError


def _find_dir(root: Path, name: str) -> Path:
    if (root / name).is_dir():
        return root / name
    found = sorted(d for d in root.rglob(name) if d.is_dir())
    if not found:
        raise DataError(root / name, f"FIWI folder {name!r} not found under {root}",
                        expected="the webpage_dataset layout with stimuli/ and all5/ folders")
    return found[0]


class FIWIDataset(BenchmarkSaliencyDataset):
    """FIWI webpage saliency set (see module docstring)."""

    format_name = "fiwi"

    def __init__(self, root: str | Path, split: str | None = None, seed: int = 42, *,
                 split_file: str | Path | None = None, density_sigma: float | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "FIWI folder not found")
        self._stimuli = find_stimuli(_find_dir(self.root, "stimuli"), suffixes=(".png", ".jpg", ".jpeg"))
        self.fix_dir = _find_dir(self.root, "all5")
        for name, stim in sorted(self._stimuli.items()):
            if not (self.fix_dir / f"{name}.png").is_file():
                raise DataError(self.fix_dir / f"{name}.png", f"missing fixation map for stimulus {stim.name}",
                                expected="all5/<name>.png for every stimulus")
        self._select(list(self._stimuli), split, seed, split_file, density_sigma)

    def fixations_for(self, name: str, size: tuple[int, int] | None = None) -> np.ndarray:
        path = self.fix_dir / f"{name}.png"
        grey = read_grey(path, what="fixation map")
        if size is not None and grey.shape != tuple(size):
            raise DataError(path, f"fixation map is {grey.shape[0]}x{grey.shape[1]} but the stimulus is "
                            f"{size[0]}x{size[1]} (HxW)", expected="a map of the stimulus' size")
        return points_from_binary(grey, threshold=0)

    def load(self, name: str) -> SaliencySample:
        stim = self._stimuli[name]
        image = read_rgb(stim)
        fix = self.fixations_for(name, image.shape[:2])
        return self._sample(name, image, fix, meta={"stimulus": str(stim)})
