"""OSIE (Xu et al., JoV 2014): 700 images of 800x600, 15 observers, 3 s free viewing.

Native layout (``NUS-VIP/predicting-human-gaze-beyond-pixels``; the root may be the
repository or its ``data/`` folder)::

    data/stimuli/<1001..1700>.jpg
    data/eye/fixations.mat     variable ``fixations``: 700 x 1 cell; entry k is a struct with
                               ``img`` ('1001.jpg', ...) and ``subjects`` (15 x 1 cell of structs
                               with ``fix_x``, ``fix_y`` (1 x N double, MATLAB 1-based pixel
                               coordinates) and ``fix_duration`` (ms))

Coordinates become 0-based by subtracting 1 (pysaliency keeps them unshifted, so its mean x
401.466 is ours + 1). Subjects are 0..14; durations go to ``meta["durations_ms"]``. No
density maps ship with OSIE: pass ``density_sigma`` (MSI-Net: 16 px; the OSIE code: 24 px)
to build one. ``only_present=True`` restricts the names to stimuli found on disk (the
annotation file covers all 700); splits are always computed on the full list.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdnas.data.saliency.base import BenchmarkSaliencyDataset
from kdnas.data.saliency.common import in_bounds, load_mat, mat_field, read_rgb
from kdnas.data.types import SaliencySample
from kdnas.utils.errors import DataError


def _record(cell: object) -> np.void:
    """The struct inside a MATLAB cell element (scipy wraps it in 1x1 object/struct arrays)."""
    item = cell
    while isinstance(item, np.ndarray) and item.size == 1:
        item = item.ravel()[0]
    return item  # type: ignore[return-value]


class OSIEDataset(BenchmarkSaliencyDataset):
    """OSIE from ``fixations.mat`` + stimuli (see module docstring)."""

    format_name = "osie"

    def __init__(self, root: str | Path, split: str | None = None, seed: int = 42, *,
                 only_present: bool = False, split_file: str | Path | None = None,
                 density_sigma: float | None = None):
        root = Path(root)
        if (root / "data" / "eye").is_dir():
            root = root / "data"
        self.root = root
        self.fix_path = root / "eye" / "fixations.mat"
        self.stimuli_dir = root / "stimuli"
        self._entries: dict[str, tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]] = {}
        self._image_files: dict[str, str] = {}
        self._read_annotations()
        self._select(list(self._entries), split, seed, split_file, density_sigma)
        if only_present:
            self.names = [n for n in self.names if (self.stimuli_dir / self._image_files[n]).is_file()]

    def _read_annotations(self) -> None:
        path = self.fix_path
        cells = np.asarray(load_mat(path, keys=["fixations"])["fixations"]).ravel()
        for k, cell in enumerate(cells):
            entry = _record(cell)
            img = str(np.asarray(mat_field(path, entry, "img")).ravel()[0])
            subjects = np.asarray(mat_field(path, entry, "subjects")).ravel()
            xs, ys, durs = [], [], []
            for j, subj_cell in enumerate(subjects):
                rec = _record(subj_cell)
                fx = np.asarray(mat_field(path, rec, "fix_x"), dtype=np.float64).ravel()
                fy = np.asarray(mat_field(path, rec, "fix_y"), dtype=np.float64).ravel()
                if fx.shape != fy.shape:
                    raise DataError(path, f"fixations{{{k + 1}}}.subjects{{{j + 1}}}: fix_x has {fx.size} values, "
                                    f"fix_y {fy.size}", expected="equal lengths")
                names = rec.dtype.names or ()
                dur = (np.asarray(rec["fix_duration"], dtype=np.float64).ravel() if "fix_duration" in names
                       else np.full(fx.size, np.nan))
                xs.append(fx)
                ys.append(fy)
                durs.append(dur)
            name = Path(img).stem
            self._entries[name] = (xs, ys, durs)
            self._image_files[name] = img

    def fixations_for(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """0-based (x, y), subject and duration (ms) per fixation (bounds not applied)."""
        xs, ys, durs = self._entries[name]
        if not xs:
            return np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.zeros(0)
        fix = np.stack([np.concatenate(xs) - 1.0, np.concatenate(ys) - 1.0], axis=1)
        subj = np.concatenate([np.full(len(x), j) for j, x in enumerate(xs)]).astype(np.int64)
        return fix, subj, np.concatenate(durs)

    def load(self, name: str) -> SaliencySample:
        stim = self.stimuli_dir / self._image_files[name]
        image = read_rgb(stim)
        fix, subj, durs = self.fixations_for(name)
        keep_durs = durs[in_bounds(fix, image.shape[:2])]
        sample = self._sample(name, image, fix, subjects=subj, meta={"stimulus": str(stim)})
        sample.meta["durations_ms"] = keep_durs
        return sample
