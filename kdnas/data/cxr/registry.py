"""One entry point for every CXR format, and the JSON summary behind ``kdnas data summary``."""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from kdnas.data.cxr.base import CXRDataset
from kdnas.data.cxr.chexpert import CheXpertDataset
from kdnas.data.cxr.generic import CSVDataset
from kdnas.data.cxr.harmonise import harmonise
from kdnas.data.cxr.labels import CANONICAL_LABELS
from kdnas.data.cxr.nih import NIHDataset
from kdnas.data.cxr.padchest import PadChestDataset
from kdnas.utils.errors import ConfigError

CXR_FORMATS: dict[str, type[CXRDataset]] = {
    "nih": NIHDataset,
    "chexpert": CheXpertDataset,
    "padchest": PadChestDataset,
    "csv": CSVDataset,
}


def _loader(format_name: str) -> type[CXRDataset]:
    key = str(format_name).strip().lower()
    if key not in CXR_FORMATS:
        raise ConfigError(f"unknown CXR format {format_name!r}; valid: {', '.join(CXR_FORMATS)}")
    return CXR_FORMATS[key]


def loader_options(format_name: str) -> list[str]:
    """Keyword options a format's loader accepts (besides ``root`` and ``split``)."""
    params = inspect.signature(_loader(format_name).__init__).parameters
    return [p for p in params if p not in ("self", "root", "split")]


def open_cxr_dataset(root: str | Path, format: str, split: str | None = "train", *,
                     harmonised: bool = False, **options: Any) -> CXRDataset:
    """Open a CXR dataset by format name (``nih``, ``chexpert``, ``padchest``, ``csv``).

    ``options`` go to the format's loader; a misspelt option raises :class:`ConfigError`
    naming the valid ones. ``harmonised=True`` returns it in the 18-label canonical space.
    """
    cls = _loader(format)
    valid = loader_options(format)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for CXR format {format!r}; valid: {', '.join(valid)}")
    ds = cls(root, split=split, **options)
    return harmonise(ds, CANONICAL_LABELS) if harmonised else ds


def dataset_summary(root: str | Path, format: str, **options: Any) -> dict[str, Any]:
    """Counts over all splits: images, patients, per-label positives/negatives/unknown/uncertain,
    split sizes, boxes per finding. Images are not required on disk unless ``check_images=True``;
    with ``skip_bad=True`` they are checked, so the counts describe the images actually present.
    """
    options.setdefault("check_images", bool(options.get("skip_bad", False)))
    ds = open_cxr_dataset(root, format, split=None, **options)
    y = (np.stack([r.labels for r in ds.all_records]) if ds.all_records
         else np.zeros((0, len(ds.label_names)), dtype=np.float32))
    known = ~np.isnan(y)

    def per_label(mask: np.ndarray) -> dict[str, int]:
        return {name: int(mask[:, j].sum()) for j, name in enumerate(ds.label_names)}

    boxes = Counter(b.label for r in ds.all_records for b in r.boxes)
    info = {k: v for k, v in ds.split_info.items() if k not in ("images", "patients")}
    return {
        "format": ds.format_name,
        "root": str(ds.root),
        "images": len(ds.all_records),
        "patients": len({r.patient_id for r in ds.all_records if r.patient_id is not None}),
        "labels": list(ds.label_names),
        "positives": per_label(y == 1),
        "negatives": per_label(y == 0),
        "unknown": per_label(~known),
        "uncertain": per_label(y == -1),
        "no_finding": int(((y == 0) | ~known).all(axis=1).sum()) if y.size else 0,
        "split_method": ds.split_info.get("method"),
        "splits": ds.split_info.get("images", {}),
        "split_patients": ds.split_info.get("patients", {}),
        "boxes": {name: boxes[name] for name in ds.label_names if boxes[name]},
        "images_with_boxes": sum(1 for r in ds.all_records if r.boxes),
        "views": dict(Counter(r.view or "" for r in ds.all_records).most_common()),
        "skipped": len(ds.skipped),
        "split_info": info,
    }
