"""Label harmonisation: map each dataset's native labels into one shared label space.

A target label no source label maps to is NaN (unknown) for that dataset, so the masked loss
and AUROC ignore it; source labels without a target are dropped. When several source labels
map to one target, the result is 1 if any is 1, else -1 if any is uncertain, else the
largest known value (0 or a soft label), else NaN.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np

from kdnas.data.cxr.base import CXRDataset
from kdnas.data.cxr.labels import CANONICAL_LABELS, EXTRA_SYNONYMS, TO_CANONICAL
from kdnas.data.types import Box, CXRRecord
from kdnas.utils.errors import ConfigError


def label_mapping(source_names: Sequence[str], format_name: str | None = None,
                  target_names: Sequence[str] = CANONICAL_LABELS,
                  mapping: Mapping[str, str] | None = None) -> dict[str, str]:
    """source label -> target label, from ``mapping``, else the dataset's table, else exact names.

    The per-dataset tables (:data:`~kdnas.data.cxr.labels.TO_CANONICAL`) apply when the target is
    the canonical space; otherwise names map to themselves or through the common synonyms
    (``Pleural Effusion`` -> ``Effusion``, ...).
    """
    targets = set(target_names)
    if mapping is not None:
        bad = {s: t for s, t in mapping.items() if t not in targets}
        if bad:
            raise ConfigError(f"label mapping targets {sorted(set(bad.values()))} are not in the target label list")
        return {s: t for s, t in mapping.items() if s in source_names}
    table = TO_CANONICAL.get(format_name or "", None) if tuple(target_names) == CANONICAL_LABELS else None
    out: dict[str, str] = {}
    for name in source_names:
        if table is not None:
            if name in table:
                out[name] = table[name]
            continue
        if name in targets:
            out[name] = name
        elif EXTRA_SYNONYMS.get(name) in targets:
            out[name] = EXTRA_SYNONYMS[name]
    return out


def _combine(columns: np.ndarray) -> np.ndarray:
    """Merge several source columns (N x k) into one target column (see module docstring)."""
    if columns.shape[1] == 1:
        return columns[:, 0].copy()
    out = np.full(columns.shape[0], np.nan, dtype=np.float32)
    known = ~np.isnan(columns)
    with np.errstate(invalid="ignore"):
        soft = np.where(known & (columns >= 0), columns, -np.inf).max(axis=1)
    has_soft = np.isfinite(soft)
    out[has_soft] = soft[has_soft]
    uncertain = (columns == -1).any(axis=1) & ~(columns == 1).any(axis=1)
    out[uncertain] = -1.0
    return out


def harmonise_labels(labels: np.ndarray, source_names: Sequence[str], target_names: Sequence[str] = CANONICAL_LABELS,
                     mapping: Mapping[str, str] | None = None, format_name: str | None = None) -> np.ndarray:
    """``N x len(source_names)`` labels -> ``N x len(target_names)`` float32 (NaN where unmapped)."""
    arr = np.asarray(labels, dtype=np.float32)
    squeeze = arr.ndim == 1
    arr = arr.reshape(1, -1) if squeeze else arr
    if arr.shape[1] != len(source_names):
        raise ConfigError(f"labels have {arr.shape[1]} columns but {len(source_names)} source names were given")
    m = label_mapping(source_names, format_name, target_names, mapping)
    out = np.full((arr.shape[0], len(target_names)), np.nan, dtype=np.float32)
    for t, target in enumerate(target_names):
        src = [j for j, s in enumerate(source_names) if m.get(s) == target]
        if src:
            out[:, t] = _combine(arr[:, src])
    return out[0] if squeeze else out


class HarmonisedDataset(CXRDataset):
    """A view of a CXR dataset in another label space (records copied, images read lazily as before)."""

    def __init__(self, dataset: CXRDataset, target_names: Sequence[str] = CANONICAL_LABELS,
                 mapping: Mapping[str, str] | None = None):
        self.source = dataset
        self.format_name = dataset.format_name
        self.root = dataset.root
        self.split = dataset.split
        self.skip_bad = dataset.skip_bad
        self.skipped = list(dataset.skipped)
        self.label_names = list(target_names)
        self.mapping = label_mapping(dataset.label_names, dataset.format_name, target_names, mapping)
        self.split_info = dict(dataset.split_info, harmonised_from=list(dataset.label_names),
                               label_mapping=dict(self.mapping),
                               unmapped_targets=[t for t in target_names if t not in self.mapping.values()])
        converted: dict[int, CXRRecord] = {}
        for rec in dataset.all_records:
            new = copy.copy(rec)
            new.meta = dict(rec.meta)
            new.labels = harmonise_labels(rec.labels, dataset.label_names, target_names, self.mapping)
            new.boxes = [Box(self.mapping[b.label], b.x, b.y, b.w, b.h) for b in rec.boxes if b.label in self.mapping]
            converted[id(rec)] = new
        self.all_records = [converted[id(r)] for r in dataset.all_records]
        self.records = [converted[id(r)] for r in dataset.records]


def harmonise(dataset: CXRDataset, target_names: Sequence[str] = CANONICAL_LABELS,
              mapping: Mapping[str, str] | None = None) -> HarmonisedDataset:
    """``dataset`` relabelled into ``target_names`` (default: the 18-label canonical space)."""
    return HarmonisedDataset(dataset, target_names, mapping)


class ConcatCXRDataset(CXRDataset):
    """Several CXR datasets in one label space, one after the other (``meta['source']`` names each)."""

    format_name = "concat"

    def __init__(self, datasets: Sequence[CXRDataset]):
        if not datasets:
            raise ConfigError("ConcatCXRDataset needs at least one dataset")
        names = list(datasets[0].label_names)
        for ds in datasets[1:]:
            if list(ds.label_names) != names:
                raise ConfigError(f"label spaces differ ({ds.format_name}: {ds.label_names} vs {names}); "
                                  "harmonise() them first")
        self.datasets = list(datasets)
        self.root = datasets[0].root
        self.label_names = names
        self.split = datasets[0].split
        self.skip_bad = any(ds.skip_bad for ds in datasets)
        self.skipped = [s for ds in datasets for s in ds.skipped]
        self.records, self.all_records = [], []
        for ds in datasets:
            for rec in ds.all_records:
                rec.meta.setdefault("source", ds.format_name)
            self.records.extend(ds.records)
            self.all_records.extend(ds.all_records)
        self.split_info = {"method": "concatenation", "parts": [ds.split_info for ds in datasets]}
