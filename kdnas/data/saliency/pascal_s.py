"""PASCAL-S (Li et al., CVPR 2014): 850 PASCAL VOC 2010 val images, 8-12 observers, 2 s.

Native layout of the ``salObj.zip`` release (the root may be ``datasets/`` or its parent)::

    imgs/pascal/<1..850>.jpg
    fixations/pascalFix.mat        MATLAB v7.3 (HDF5): cell ``fixCell`` (850 x 1), entry i is an
                                   N x 3 array [row, col, subject], all 1-based
    .../pascal/humanFix/<i>.png    optional human fixation (density) maps, searched under root

The v7.3 file is read with h5py (HDF5 stores each N x 3 MATLAB array transposed, 3 x N).
Coordinates become 0-based (x = col - 1, y = row - 1), subjects 0-based; points outside
the image are dropped (``meta["dropped_outside"]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdnas.data.saliency.base import BenchmarkSaliencyDataset
from kdnas.data.saliency.common import check_same_size, find_stimuli, read_density_map, read_rgb
from kdnas.data.types import SaliencySample
from kdnas.utils.errors import DataError


def read_pascal_fixcell(path: str | Path) -> list[np.ndarray]:
    """Entries of ``fixCell`` in ``pascalFix.mat`` as N x 3 float arrays [row, col, subject]."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "PASCAL-S fixation file not found", expected="fixations/pascalFix.mat (v7.3)")
    try:
        with h5py.File(path, "r") as f:
            if "fixCell" not in f:
                raise DataError(path, f"missing variable 'fixCell' (variables: {sorted(k for k in f if k[0] != '#')})",
                                expected="a v7.3 .mat with the cell array 'fixCell'")
            refs = np.asarray(f["fixCell"]).ravel()
            out = []
            for i, ref in enumerate(refs):
                arr = np.asarray(f[ref], dtype=np.float64)
                if arr.ndim != 2 or 3 not in arr.shape:
                    raise DataError(path, f"fixCell{{{i + 1}}} has shape {arr.shape[::-1]}",
                                    expected="N x 3 [row, col, subject]")
                out.append(arr.T if arr.shape[0] == 3 else arr)
            return out
    except OSError as exc:
        raise DataError(path, f"unreadable v7.3 (HDF5) .mat file ({exc})",
                        expected="MATLAB v7.3 pascalFix.mat") from exc


class PascalSDataset(BenchmarkSaliencyDataset):
    """PASCAL-S eye fixations in the salObj release layout (see module docstring)."""

    format_name = "pascal_s"

    def __init__(self, root: str | Path, split: str | None = None, seed: int = 42, *,
                 split_file: str | Path | None = None, density_sigma: float | None = None):
        root = Path(root)
        if not (root / "imgs").is_dir() and (root / "datasets" / "imgs").is_dir():
            root = root / "datasets"
        self.root = root
        self._stimuli = find_stimuli(root / "imgs" / "pascal", suffixes=(".jpg", ".jpeg", ".png"))
        self.fix_path = root / "fixations" / "pascalFix.mat"
        self._fixcell = read_pascal_fixcell(self.fix_path)
        for name, stim in sorted(self._stimuli.items()):
            if not name.isdigit() or not 1 <= int(name) <= len(self._fixcell):
                raise DataError(stim, f"stimulus {stim.name} has no entry in {self.fix_path.name} "
                                f"({len(self._fixcell)} entries)", expected="stimuli named 1..N.jpg")
        maps_dirs = [d for d in root.rglob("humanFix") if d.is_dir() and d.parent.name == "pascal"]
        self.maps_dir = maps_dirs[0] if maps_dirs else None
        self._select(list(self._stimuli), split, seed, split_file, density_sigma)

    def fixations_for(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """0-based (x, y) and 0-based subject per point (bounds not applied)."""
        arr = self._fixcell[int(name) - 1]
        return np.stack([arr[:, 1] - 1.0, arr[:, 0] - 1.0], axis=1), arr[:, 2].astype(np.int64) - 1

    def load(self, name: str) -> SaliencySample:
        stim = self._stimuli[name]
        image = read_rgb(stim)
        density = None
        map_path = None
        if self.maps_dir is not None:
            map_path = self.maps_dir / f"{name}.png"
            if not map_path.is_file():
                raise DataError(map_path, f"missing human fixation map for stimulus {stim.name}",
                                expected=f"a map for every stimulus in {self.maps_dir}")
            density = read_density_map(map_path)
            check_same_size(map_path, density, stim, image.shape[:2])
        fix, subj = self.fixations_for(name)
        meta = {"stimulus": str(stim), "map": None if map_path is None else str(map_path)}
        return self._sample(name, image, fix, density=density, subjects=subj, meta=meta)
