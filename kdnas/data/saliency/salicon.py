"""SALICON (Jiang et al., CVPR 2015): 640x480 MS-COCO images, mouse-tracking "fixations".

Two native annotation formats are read:

* **Per-image .mat** (the 2015 and the 2017/LSUN'17 releases share this layout):
  ``fixations/{train,val}/COCO_*.mat`` with a struct array ``gaze`` (one element per worker)
  whose fields are ``location`` (raw mouse samples), ``timestamp`` and ``fixations``, both
  point lists as **1-based [x, y]**. ``points="fixations"`` (default) reads ``fixations``;
  ``points="location"`` the raw samples. The two editions hold different data (NSS 3.226 vs
  1.87 for the same maps, salnas.md §12): the edition is whatever files you point at.
* **SALICON API JSON** (COCO style): ``annotations/fixations_<split>2014*.json`` with
  ``images`` (``id``, ``file_name``, ``width``, ``height``) and ``annotations`` (one per
  worker: ``image_id``, ``worker_id``, ``fixations`` as **1-based [row, col]**).

Both convert to 0-based (x, y) at load time and keep every in-bounds point, duplicates
included (fix D4: the reference forgot the -1 and dropped x >= 640 / y >= 480). Subjects
are worker indices (.mat) or ``worker_id`` values (JSON).

Folders: stimuli in ``images/`` or ``stimuli/`` (``<split>/`` sub-folders or flat), maps
(8-bit PNG, optional) in ``maps/<split>/`` or ``saliency/<split>/``; the official test split
has stimuli only. Splits are the official folders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from kdnas.data.saliency.base import BenchmarkSaliencyDataset
from kdnas.data.saliency.common import (
    check_same_size,
    find_stimuli,
    load_mat,
    mat_field,
    read_density_map,
    read_rgb,
)
from kdnas.data.types import SaliencySample
from kdnas.utils.errors import ConfigError, DataError

OFFICIAL_SPLITS = ("train", "val", "test")


class SaliconDataset(BenchmarkSaliencyDataset):
    """SALICON from its native .mat or API JSON annotations (see module docstring)."""

    format_name = "salicon"

    def __init__(self, root: str | Path, split: str | None = None, seed: int = 42, *,
                 annotations: str | Path | list[str | Path] | None = None, points: str = "fixations",
                 density_sigma: float | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "SALICON folder not found")
        if points not in ("fixations", "location"):
            raise ConfigError(f"points must be 'fixations' or 'location', got {points!r}")
        if split is not None and split not in OFFICIAL_SPLITS:
            raise ConfigError(f"SALICON splits are the official folders {OFFICIAL_SPLITS}, got {split!r}")
        self.points = points
        self._stimuli = self._index_stimuli()
        self._json: dict[str, dict[str, Any]] = {}
        self._mats: dict[str, Path] = {}
        json_files = self._json_files(annotations, split)
        if json_files:
            self.mode = "json"
            for f in json_files:
                self._read_json(f)
            names = list(self._json)
        elif split == "test":
            self.mode = "stimuli-only"
            names = [n for n in self._stimuli if "_test" in n]
        else:
            self.mode = "mat"
            names = self._index_mats(split)
        for n in names:
            if n not in self._stimuli:
                src = self._json[n]["source"] if n in self._json else self._mats.get(n, self.root)
                raise DataError(self.root / "images" / f"{n}.jpg",
                                f"missing stimulus for annotated image {n} (annotation {src})",
                                expected="the COCO image under images/ or stimuli/")
        self._maps = self._index_maps(names)
        self._select(names, None, seed, None, density_sigma)
        self.split = split

    # ---------------------------------------------------------------- discovery
    def _index_stimuli(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for folder in (self.root / "images", self.root / "stimuli"):
            if folder.is_dir():
                for name, path in find_stimuli(folder, recursive=True).items():
                    found.setdefault(name.rsplit("/", 1)[-1], path)
        return found

    def _json_files(self, annotations, split: str | None) -> list[Path]:
        if annotations is not None:
            files = [Path(a) for a in (annotations if isinstance(annotations, list) else [annotations])]
            for f in files:
                if not f.is_file():
                    raise DataError(f, "SALICON annotation file not found", expected="a SALICON API JSON file")
            return files
        ann_dir = self.root / "annotations"
        if not ann_dir.is_dir() or split == "test":
            return []
        files = sorted(ann_dir.glob("fixations_*.json"))
        if split is not None:
            files = [f for f in files if f.name.startswith(f"fixations_{split}")]
        return files

    def _read_json(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(path, f"unreadable JSON ({exc})", expected="a SALICON API fixation file") from exc
        for key in ("images", "annotations"):
            if not isinstance(data, dict) or key not in data:
                raise DataError(path, f"missing top-level key {key!r}",
                                expected="COCO-style keys 'images' and 'annotations'")
        by_id: dict[int, str] = {}
        for i, img in enumerate(data["images"]):
            try:
                name = Path(img["file_name"]).stem
                entry = {"id": int(img["id"]), "size": (int(img["height"]), int(img["width"])),
                         "source": path, "workers": []}
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(path, f"images[{i}] lacks id/file_name/width/height ({exc})") from exc
            self._json[name] = entry
            by_id[entry["id"]] = name
        for i, ann in enumerate(data["annotations"]):
            try:
                name = by_id[int(ann["image_id"])]
                pts = np.asarray(ann["fixations"], dtype=np.float64).reshape(-1, 2)
                worker = int(ann.get("worker_id", i))
            except KeyError as exc:
                raise DataError(path, f"annotations[{i}] refers to an unknown image or lacks {exc}",
                                expected="image_id of an entry in 'images' and a 'fixations' list") from exc
            except (TypeError, ValueError) as exc:
                raise DataError(path, f"annotations[{i}] has malformed fixations ({exc})",
                                expected="a list of [row, col] integer pairs") from exc
            self._json[name]["workers"].append((worker, pts))

    def _index_mats(self, split: str | None) -> list[str]:
        fix_dir = self.root / "fixations"
        if not fix_dir.is_dir():
            raise DataError(fix_dir, "no SALICON annotations found",
                            expected="annotations/fixations_*.json (SALICON API) or fixations/{train,val}/*.mat")
        splits = [split] if split is not None else [s for s in ("train", "val") if (fix_dir / s).is_dir()]
        dirs = [fix_dir / s for s in splits] if splits else [fix_dir]
        for d in dirs:
            if not d.is_dir():
                raise DataError(d, f"fixation folder for split {split!r} not found",
                                expected="fixations/<split>/COCO_*.mat")
            for p in sorted(d.glob("*.mat")):
                if not p.name.startswith("."):
                    self._mats[p.stem] = p
        if not self._mats:
            raise DataError(dirs[0], "no .mat fixation files", expected="COCO_*.mat files with a 'gaze' struct")
        return list(self._mats)

    def _index_maps(self, names: list[str]) -> dict[str, Path]:
        """Map per name; inside an official ``maps/<split>/`` folder every name needs one."""
        maps: dict[str, Path] = {}
        folders = [f for f in (self.root / "maps", self.root / "saliency") if f.is_dir()]
        for name in names:
            official = next((s for s in OFFICIAL_SPLITS if f"_{s}" in name), None)
            for folder in folders:
                if official is not None and (folder / official).is_dir():
                    path = folder / official / f"{name}.png"
                    if not path.is_file():
                        raise DataError(path, f"missing map for stimulus {name}",
                                        expected=f"a map for every stimulus in {folder / official}")
                    maps[name] = path
                    break
                if (folder / f"{name}.png").is_file():
                    maps[name] = folder / f"{name}.png"
                    break
        return maps

    # ---------------------------------------------------------------- loading
    def fixations_for(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """0-based (x, y) of every recorded point (bounds not applied) and the subject per point."""
        if self.mode == "json":
            fix, subj = [], []
            for worker, rc in self._json[name]["workers"]:
                fix.append(rc[:, ::-1] - 1.0)  # [row, col] 1-based -> (x, y) 0-based
                subj.append(np.full(len(rc), worker))
            if not fix:
                return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
            return np.concatenate(fix), np.concatenate(subj)
        if self.mode == "stimuli-only":
            return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
        path = self._mats[name]
        gaze = load_mat(path, keys=["gaze"])["gaze"]
        fix, subj = [], []
        for worker, rec in enumerate(np.asarray(gaze).ravel()):
            pts = np.asarray(mat_field(path, rec, self.points), dtype=np.float64)
            if pts.size == 0:
                continue
            if pts.ndim != 2 or pts.shape[1] != 2:
                raise DataError(path, f"gaze({worker + 1}).{self.points} has shape {pts.shape}",
                                expected="an N x 2 array of 1-based [x, y]")
            fix.append(pts - 1.0)
            subj.append(np.full(len(pts), worker))
        if not fix:
            return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
        return np.concatenate(fix), np.concatenate(subj)

    def load(self, name: str) -> SaliencySample:
        stim = self._stimuli[name]
        image = read_rgb(stim)
        size = image.shape[:2]
        if self.mode == "json" and tuple(self._json[name]["size"]) != tuple(size):
            raise DataError(stim, f"image is {size[0]}x{size[1]} but {self._json[name]['source'].name} says "
                            f"{self._json[name]['size'][0]}x{self._json[name]['size'][1]} (HxW)")
        fix, subj = self.fixations_for(name)
        density = None
        map_path = self._maps.get(name)
        if map_path is not None:
            density = read_density_map(map_path)
            check_same_size(map_path, density, stim, size)
        meta = {"stimulus": str(stim), "annotation_mode": self.mode,
                "points": self.points if self.mode == "mat" else "fixations",
                "map": None if map_path is None else str(map_path)}
        return self._sample(name, image, fix, density=density, subjects=subj, meta=meta)
