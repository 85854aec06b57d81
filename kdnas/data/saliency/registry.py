"""One entry point for every saliency format: :func:`open_saliency_dataset`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from kdnas.data.saliency.cat2000 import CAT2000Dataset
from kdnas.data.saliency.dut_omron import DUTOmronDataset
from kdnas.data.saliency.fiwi import FIWIDataset
from kdnas.data.saliency.folder import FolderSaliencyDataset
from kdnas.data.saliency.mit1003 import MIT1003Dataset
from kdnas.data.saliency.osie import OSIEDataset
from kdnas.data.saliency.pascal_s import PascalSDataset
from kdnas.data.saliency.salicon import SaliconDataset
from kdnas.data.saliency.toronto import TorontoDataset
from kdnas.data.types import SaliencyDataset
from kdnas.utils.errors import ConfigError

SALIENCY_FORMATS: dict[str, type[SaliencyDataset]] = {
    "folder": FolderSaliencyDataset,
    "salicon": SaliconDataset,
    "mit1003": MIT1003Dataset,
    "cat2000": CAT2000Dataset,
    "pascal_s": PascalSDataset,
    "osie": OSIEDataset,
    "dut_omron": DUTOmronDataset,
    "toronto": TorontoDataset,
    "fiwi": FIWIDataset,
}
_ALIASES = {"pascals": "pascal_s", "dutomron": "dut_omron", "mit": "mit1003", "kdnas": "folder"}


def canonical_format(format: str) -> str:
    """Normalise a format name ('PASCAL-S' -> 'pascal_s'); unknown names raise ConfigError."""
    key = str(format).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in SALIENCY_FORMATS:
        raise ConfigError(f"unknown saliency format {format!r}; valid formats: {sorted(SALIENCY_FORMATS)}")
    return key


def open_saliency_dataset(root: str | Path, format: str, split: str | None = None, seed: int = 42,
                          **options: Any) -> SaliencyDataset:
    """Open ``root`` as a saliency dataset of ``format`` (a key of :data:`SALIENCY_FORMATS`).

    ``split``: ``None`` (everything), ``"train"``/``"val"`` (the standard split of
    salnas.md §12, seeded by ``seed``; SALICON: the official folders, also ``"test"``;
    folder: ``splits/<split>.txt``), or any label of ``split_file=<name,split CSV>``.
    Other ``options`` go to the loader (e.g. ``fixations="fixpts"`` for MIT1003,
    ``density_sigma=16`` to build maps from fixations); an unknown option is a ConfigError
    listing the valid ones.
    """
    key = canonical_format(format)
    cls = SALIENCY_FORMATS[key]
    params = inspect.signature(cls.__init__).parameters
    valid = sorted(n for n in params if n not in ("self", "root", "split", "seed"))
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for saliency format {key!r}; valid: {valid}")
    if key == "folder":
        return FolderSaliencyDataset(root, split=split, **options)
    return cls(root, split=split, seed=seed, **options)
