"""TORONTO (Bruce & Tsotsos, 2007): 120 images of 681x511, 20 observers, 4 s; test-only.

Native layout of ``eyetrackingdata.zip`` (the root may be the extracted folder, its
``eyetrackingdata/`` or its ``fixdens/``)::

    fixdens/Original Image Set/<1..120>.jpg
    fixdens/origfixdata.mat      variable ``white``: 1 x 120 cell of binary fixation maps

Fixations are the non-zero pixels of map n (for image n) as 0-based (x = column,
y = row), so repeats on one pixel appear once and subjects are unknown (pysaliency reads
the same file: 11,199 fixations). The per-subject raw files do not map to pixels
(pysaliency warns about them) and are not read. There is no standard split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdnas.data.saliency.base import BenchmarkSaliencyDataset
from kdnas.data.saliency.common import find_stimuli, load_mat, points_from_binary, read_rgb
from kdnas.data.types import SaliencySample
from kdnas.utils.errors import DataError


class TorontoDataset(BenchmarkSaliencyDataset):
    """TORONTO from ``origfixdata.mat`` + the original image set (see module docstring)."""

    format_name = "toronto"

    def __init__(self, root: str | Path, split: str | None = None, seed: int = 42, *,
                 split_file: str | Path | None = None, density_sigma: float | None = None):
        root = Path(root)
        for cand in (root / "eyetrackingdata" / "fixdens", root / "fixdens", root):
            if (cand / "origfixdata.mat").is_file() or (cand / "Original Image Set").is_dir():
                root = cand
                break
        self.root = root
        self.fix_path = root / "origfixdata.mat"
        self._stimuli = find_stimuli(root / "Original Image Set", suffixes=(".jpg", ".jpeg", ".png"))
        white = np.asarray(load_mat(self.fix_path, keys=["white"])["white"])
        self._maps = list(white.ravel()) if white.dtype == object else [white]
        for name, stim in sorted(self._stimuli.items()):
            if not name.isdigit() or not 1 <= int(name) <= len(self._maps):
                raise DataError(stim, f"stimulus {stim.name} has no map in {self.fix_path.name} "
                                f"({len(self._maps)} maps)", expected="stimuli named 1..N.jpg")
        self._select(list(self._stimuli), split, seed, split_file, density_sigma)

    def fixations_for(self, name: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """0-based (x, y) of the fixated pixels of image ``name`` (row-major order)."""
        binary = np.asarray(self._maps[int(name) - 1])
        if binary.ndim != 2:
            raise DataError(self.fix_path, f"white{{{name}}} has shape {binary.shape}", expected="a 2-D binary map")
        if size is not None and binary.shape != tuple(size):
            raise DataError(self.fix_path, f"white{{{name}}} is {binary.shape[0]}x{binary.shape[1]} but the stimulus "
                            f"is {size[0]}x{size[1]} (HxW)", expected="maps of the stimulus' size")
        return points_from_binary(binary.astype(np.float64), threshold=0.5)

    def load(self, name: str) -> SaliencySample:
        stim = self._stimuli[name]
        image = read_rgb(stim)
        fix = self.fixations_for(name, image.shape[:2])
        return self._sample(name, image, fix, meta={"stimulus": str(stim)})
