"""DUT-OMRON eye fixations (Yang et al., CVPR 2013): 5168 images (max side 400), 5 observers.

Native layout (the two release zips extracted side by side under the root)::

    DUT-OMRON-image/<name>.jpg
    DUT-OMRON-eye-fixations/mat/<name>.mat    variable ``s``: integer rows [x, y, subject];
                                              the row with subject 0 holds [width, height]

Plain ``stimuli/`` and ``mat/`` folders are accepted too. The coordinates contain zeros, so
they are 0-based already (pysaliency and MSI-Net index pixels with them directly); subjects
become 0-based (``subject - 1``). The size row is checked against the stimulus. Points
outside the image are dropped. No density maps ship: MSI-Net blurred with 16 px
(``density_sigma=16``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdnas.data.saliency.base import BenchmarkSaliencyDataset
from kdnas.data.saliency.common import find_stimuli, load_mat, read_rgb
from kdnas.data.types import SaliencySample
from kdnas.utils.errors import DataError


class DUTOmronDataset(BenchmarkSaliencyDataset):
    """DUT-OMRON fixations in the release layout (see module docstring)."""

    format_name = "dut_omron"

    def __init__(self, root: str | Path, split: str | None = None, seed: int = 42, *,
                 split_file: str | Path | None = None, density_sigma: float | None = None):
        self.root = Path(root)
        stim_dir = next((d for d in (self.root / "DUT-OMRON-image", self.root / "stimuli") if d.is_dir()),
                        self.root / "DUT-OMRON-image")
        self.mat_dir = next((d for d in (self.root / "DUT-OMRON-eye-fixations" / "mat", self.root / "mat")
                             if d.is_dir()), self.root / "DUT-OMRON-eye-fixations" / "mat")
        self._stimuli = find_stimuli(stim_dir, suffixes=(".jpg", ".jpeg", ".png"))
        if not self.mat_dir.is_dir():
            raise DataError(self.mat_dir, "DUT-OMRON fixation folder not found",
                            expected="DUT-OMRON-eye-fixations/mat/<name>.mat")
        for name, stim in sorted(self._stimuli.items()):
            if not (self.mat_dir / f"{name}.mat").is_file():
                raise DataError(self.mat_dir / f"{name}.mat", f"missing fixation file for stimulus {stim.name}",
                                expected="one .mat per stimulus")
        self._select(list(self._stimuli), split, seed, split_file, density_sigma)

    def fixations_for(self, name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """0-based (x, y), 0-based subject per point, and the (height, width) the file states."""
        path = self.mat_dir / f"{name}.mat"
        s = np.asarray(load_mat(path, keys=["s"])["s"])
        if s.ndim != 2 or s.shape[1] != 3 or not np.issubdtype(s.dtype, np.number):
            raise DataError(path, f"'s' has shape {s.shape} and dtype {s.dtype}",
                            expected="integer rows [x, y, subject]")
        size_rows = np.flatnonzero(s[:, 2] == 0)
        if len(size_rows) != 1:
            raise DataError(path, f"{len(size_rows)} rows with subject 0",
                            expected="exactly one size row [width, height, 0]")
        w, h = (int(v) for v in s[size_rows[0], :2])
        pts = np.delete(s, size_rows[0], axis=0).astype(np.float64)
        return pts[:, :2], pts[:, 2].astype(np.int64) - 1, (h, w)

    def load(self, name: str) -> SaliencySample:
        stim = self._stimuli[name]
        image = read_rgb(stim)
        fix, subj, stated = self.fixations_for(name)
        if stated != image.shape[:2]:
            raise DataError(self.mat_dir / f"{name}.mat", f"size row says {stated[0]}x{stated[1]} (HxW) but the "
                            f"stimulus {stim.name} is {image.shape[0]}x{image.shape[1]}",
                            expected="the stimulus' width and height in the subject-0 row")
        return self._sample(name, image, fix, subjects=subj, meta={"stimulus": str(stim)})
