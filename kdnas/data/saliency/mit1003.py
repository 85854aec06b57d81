"""MIT1003 (Judd et al., ICCV 2009): 1003 images, 15 observers, 3 s free viewing.

Native layout under the root::

    ALLSTIMULI/<name>.jpeg               stimuli (``.jpg`` accepted too)
    ALLFIXATIONMAPS/<name>_fixMap.jpg    official continuous fixation maps (8-bit JPEG)
    ALLFIXATIONMAPS/<name>_fixPts.jpg    binary fixation maps stored as JPEG
    DATA/<subject>/<name>.mat            per-subject eye data (optional)

Fixation sources (``fixations=``):

* ``"data"``: ``DATA/<subject>/<name>.mat`` holding **extracted** fixations, i.e. the
  variable ``fixations`` (N x 2 ``Fix.medianXY`` of Judd's ``checkFixations``, MATLAB
  1-based [x, y]) as written by the usual extraction script (pysaliency's
  ``extract_fixations.m``). The official DATA.zip holds raw 240 Hz gaze samples
  (``<name>.DATA.eyeData``) instead; turning those into fixations needs Judd's MATLAB
  ``checkFixations``, which kdnas does not reimplement, so raw files raise a DataError
  that says so. The first fixation of every subject (the forced central one) is dropped
  (``drop_first_fixation=True``, as Judd et al. and the MIT benchmark do), then points
  outside the image are dropped; coordinates become 0-based by subtracting 1.
* ``"fixpts"``: the ``_fixPts.jpg`` maps. JPEG noise spreads each fixation pixel into
  faint neighbours (values up to ~30) while the fixation pixel itself stays bright (>200
  at JPEG quality 50-90), so pixels ``>= fixpts_threshold`` (default 128, mid-grey) are
  fixations; nothing is resized. Duplicates are collapsed in such a map, and the first
  fixation handling is whatever the released maps did.
* ``"none"``: no fixations (map-only metrics).
* ``"auto"`` (default): ``data`` when DATA/ holds extracted fixations, else ``fixpts`` when
  ``_fixPts.jpg`` files exist, else ``none``. ``meta["fixation_source"]`` records the choice.

``MIT1003Dataset.stray_files`` lists files skipped on purpose (e.g. the release's
``i05june05_static_street_boston_p1010764fixPts.jpg``, which lacks the underscore).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdnas.data.saliency.base import BenchmarkSaliencyDataset
from kdnas.data.saliency.common import (
    check_same_size,
    find_stimuli,
    load_mat,
    points_from_binary,
    read_density_map,
    read_grey,
    read_rgb,
)
from kdnas.data.types import SaliencySample
from kdnas.utils.errors import ConfigError, DataError

SOURCES = ("auto", "data", "fixpts", "none")


class MIT1003Dataset(BenchmarkSaliencyDataset):
    """MIT1003 in its release layout (see module docstring)."""

    format_name = "mit1003"

    def __init__(self, root: str | Path, split: str | None = None, seed: int = 42, *,
                 fixations: str = "auto", drop_first_fixation: bool = True, fixpts_threshold: int = 128,
                 split_file: str | Path | None = None, density_sigma: float | None = None):
        self.root = Path(root)
        if fixations not in SOURCES:
            raise ConfigError(f"fixations must be one of {SOURCES}, got {fixations!r}")
        self.drop_first_fixation = drop_first_fixation
        self.fixpts_threshold = fixpts_threshold
        self.stimuli_dir = self.root / "ALLSTIMULI"
        self.maps_dir = self.root / "ALLFIXATIONMAPS"
        self.data_dir = self.root / "DATA"
        self._stimuli = find_stimuli(self.stimuli_dir, suffixes=(".jpeg", ".jpg"))
        self.stray_files: list[Path] = []
        self._maps: dict[str, Path] = {}
        self._fixpts: dict[str, Path] = {}
        if self.maps_dir.is_dir():
            self._index_maps()
        self.subjects = sorted(p.name for p in self.data_dir.iterdir() if p.is_dir()) if self.data_dir.is_dir() else []
        self.fixation_source = self._resolve_source(fixations)
        self._select(list(self._stimuli), split, seed, split_file, density_sigma)

    def _index_maps(self) -> None:
        for p in sorted(self.maps_dir.iterdir()):
            if p.name.startswith(".") or not p.is_file():
                continue
            if p.name.endswith("_fixMap.jpg"):
                self._maps[p.name[: -len("_fixMap.jpg")]] = p
            elif p.name.endswith("_fixPts.jpg"):
                self._fixpts[p.name[: -len("_fixPts.jpg")]] = p
            else:
                self.stray_files.append(p)
        for name, stim in sorted(self._stimuli.items()):
            if name not in self._maps:
                raise DataError(self.maps_dir / f"{name}_fixMap.jpg", f"missing fixation map for stimulus {stim.name}",
                                expected="ALLFIXATIONMAPS/<name>_fixMap.jpg for every stimulus")
        for name, p in sorted({**self._maps, **self._fixpts}.items()):
            if name not in self._stimuli:
                raise DataError(self.stimuli_dir / f"{name}.jpeg", f"missing stimulus for {p.name}",
                                expected="ALLSTIMULI/<name>.jpeg")

    def _resolve_source(self, requested: str) -> str:
        if requested == "auto":
            if self.subjects and self._data_is_extracted():
                return "data"
            return "fixpts" if self._fixpts else "none"
        if requested == "data":
            if not self.subjects:
                raise DataError(self.data_dir, "no subject folders", expected="DATA/<subject>/<name>.mat")
            self._data_is_extracted(raise_if_raw=True)
        if requested == "fixpts":
            for name in sorted(self._stimuli):
                if name not in self._fixpts:
                    raise DataError(self.maps_dir / f"{name}_fixPts.jpg",
                                    f"missing fixation-point map for stimulus {self._stimuli[name].name}",
                                    expected="ALLFIXATIONMAPS/<name>_fixPts.jpg")
        return requested

    def _data_is_extracted(self, raise_if_raw: bool = False) -> bool:
        """Probe the first subject file: extracted fixations (True) or raw gaze (False)."""
        if not self._stimuli:
            return False
        probe = self._data_file(self.subjects[0], sorted(self._stimuli)[0])
        keys = [k for k in load_mat(probe) if not k.startswith("__")]
        if "fixations" in keys:
            return True
        if raise_if_raw:
            raise DataError(probe, f"holds raw gaze samples (variables {keys}), not extracted fixations; "
                            "run Judd's checkFixations (e.g. pysaliency's extract_fixations.m) to save "
                            "'fixations', or use fixations='fixpts'",
                            expected="a .mat with the variable 'fixations' (N x 2, 1-based [x, y])")
        return False

    def _data_file(self, subject: str, name: str) -> Path:
        path = self.data_dir / subject / f"{name}.mat"
        if not path.is_file():
            raise DataError(path, f"missing eye data of subject {subject} for stimulus {name}",
                            expected="DATA/<subject>/<name>.mat for every subject and stimulus")
        return path

    def fixations_for(self, name: str, size: tuple[int, int] | None = None
                      ) -> tuple[np.ndarray, np.ndarray | None]:
        """0-based (x, y) and subject index per point from the chosen source."""
        if self.fixation_source == "data":
            fix, subj = [], []
            for s_idx, subject in enumerate(self.subjects):
                path = self._data_file(subject, name)
                pts = np.asarray(load_mat(path, keys=["fixations"])["fixations"], dtype=np.float64)
                if pts.size == 0:
                    continue
                if pts.ndim != 2 or pts.shape[1] < 2:
                    raise DataError(path, f"'fixations' has shape {pts.shape}", expected="N x 2 [x, y]")
                pts = pts[1:, :2] if self.drop_first_fixation else pts[:, :2]
                fix.append(pts - 1.0)
                subj.append(np.full(len(pts), s_idx))
            if not fix:
                return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
            return np.concatenate(fix), np.concatenate(subj)
        if self.fixation_source == "fixpts":
            path = self._fixpts[name]
            grey = read_grey(path, what="fixation-point map")
            if size is not None and grey.shape != tuple(size):
                raise DataError(path, f"fixation-point map is {grey.shape[0]}x{grey.shape[1]} but the stimulus is "
                                f"{size[0]}x{size[1]} (HxW)", expected="a map of the stimulus' size")
            return points_from_binary(grey, threshold=self.fixpts_threshold - 0.5), None
        return np.zeros((0, 2)), None

    def load(self, name: str) -> SaliencySample:
        stim = self._stimuli[name]
        image = read_rgb(stim)
        size = image.shape[:2]
        density = None
        if name in self._maps:
            density = read_density_map(self._maps[name])
            check_same_size(self._maps[name], density, stim, size)
        fix, subj = self.fixations_for(name, size)
        meta = {"stimulus": str(stim), "fixation_source": self.fixation_source,
                "map": str(self._maps[name]) if name in self._maps else None}
        return self._sample(name, image, fix, density=density, subjects=subj, meta=meta)
