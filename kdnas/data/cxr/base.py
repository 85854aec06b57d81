"""Common machinery of the CXR loaders: records, split selection, decoding, skip reporting."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from kdnas.data.cxr.image_io import read_xray
from kdnas.data.cxr.splits import SPLITS, write_split_csv
from kdnas.data.types import CXRRecord, CXRSample
from kdnas.utils.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building ~10^5 small objects (halves NIH load time); nothing
    created there forms reference cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def child_path_factory(folder: Path) -> Callable[[str], Path]:
    """``name -> folder / name``, using pathlib's internal fast join when this Python has it."""
    fast = getattr(folder, "_make_child_relpath", None)
    if fast is not None:
        try:
            if fast("a.png") == folder / "a.png":
                return fast
        except Exception:  # private API changed: fall back to the public operator
            pass
    return folder.__truediv__


def check_split(split: str | None, allowed: Sequence[str] = SPLITS) -> str | None:
    if split is not None and split not in allowed:
        raise ConfigError(f"split must be one of {', '.join(allowed)} or None (all), got {split!r}")
    return split


def index_images(dirs: Iterable[Path]) -> dict[str, Path]:
    """File name -> path over the given folders (one directory listing each, no per-file stat)."""
    found: dict[str, Path] = {}
    for d in dirs:
        try:
            with os.scandir(d) as it:
                for entry in it:
                    if entry.name.lower().endswith(IMAGE_SUFFIXES):
                        found.setdefault(entry.name, Path(entry.path))
        except FileNotFoundError:
            continue
    return found


class CXRDataset(Sequence):
    """An indexable sequence of :class:`CXRSample` over the records of one split.

    Attributes every loader fills: ``root``, ``label_names``, ``records`` (selected split),
    ``all_records`` (every split, ``meta["split"]`` set), ``split``, ``split_info`` (how the
    split was made, sizes), ``skipped`` (``(name, reason)`` pairs when ``skip_bad=True``).
    """

    format_name = "base"
    root: Path
    label_names: list[str]
    records: list[CXRRecord]
    all_records: list[CXRRecord]
    split: str | None
    split_info: dict[str, Any]
    skipped: list[tuple[str, str]]
    skip_bad: bool

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, idx):  # type: ignore[override]
        if isinstance(idx, slice):
            return [self.load(r) for r in self.records[idx]]
        return self.load(self.records[idx])

    # -- helpers for subclasses -------------------------------------------------------------
    def _bad(self, name: str, reason: str, error: DataError) -> None:
        """Record a bad row/image in skip_bad mode, raise otherwise."""
        if not self.skip_bad:
            raise error
        self.skipped.append((name, reason))

    def _select(self, assignment: dict[str, str]) -> None:
        """Set ``meta['split']`` on all records and keep those of ``self.split``."""
        for rec in self.all_records:
            rec.meta["split"] = assignment.get(rec.name)
        self.all_records = [r for r in self.all_records if r.meta["split"] is not None]
        self.records = (list(self.all_records) if self.split is None
                        else [r for r in self.all_records if r.meta["split"] == self.split])

    def _check_present(self, images: dict[str, Path] | None, where: Path,
                       key: Callable[[CXRRecord], str] | None = None) -> None:
        """Drop (skip_bad) or reject records whose image file is absent from ``images``.

        ``images`` maps ``key(record)`` (default: the file name) to the file found on disk.
        """
        if images is None:
            return
        key = key or (lambda r: r.image_path.name)
        missing = [r for r in self.all_records if key(r) not in images]
        if missing and not self.skip_bad:
            first = ", ".join(key(r) for r in missing[:3])
            raise DataError(missing[0].image_path,
                            f"image file not found ({len(missing)} of {len(self.all_records)} listed images are "
                            f"missing from {where}, e.g. {first}); pass skip_bad=True to use the present images "
                            "or check_images=False to defer the check to read time")
        if missing:
            gone = {id(r) for r in missing}
            self.skipped.extend((r.name, f"image file not found in {where}") for r in missing)
            self.all_records = [r for r in self.all_records if id(r) not in gone]
        for r in self.all_records:
            r.image_path = images[key(r)]

    # -- public API ------------------------------------------------------------------------
    def load(self, record: CXRRecord) -> CXRSample:
        """Decode one record: grey float image, labels copy, boxes rescaled to the decoded size."""
        image = read_xray(record.image_path, bits_stored=record.meta.get("bits_stored"))
        height, width = image.shape
        boxes = list(record.boxes)
        scale = (1.0, 1.0)
        if record.box_frame is not None:
            frame_w, frame_h = record.box_frame
            scale = (width / frame_w, height / frame_h)
            boxes = [b.scaled(*scale) for b in boxes]
        meta = dict(record.meta)
        meta.update(image_path=str(record.image_path), view=record.view, study_id=record.study_id,
                    box_scale=scale)
        labels = np.array(record.labels, dtype=np.float32, copy=True)
        if "uncertain_mask" not in meta and np.any(labels == -1):
            meta["uncertain_mask"] = labels == -1
        return CXRSample(name=record.name, image=image, labels=labels, boxes=boxes,
                         patient_id=record.patient_id, meta=meta)

    def labels_matrix(self) -> np.ndarray:
        """``N x C`` float32 labels of the selected split (NaN unknown, -1 uncertain)."""
        if not self.records:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        return np.stack([r.labels for r in self.records]).astype(np.float32, copy=False)

    def patient_ids(self) -> list[str | None]:
        return [r.patient_id for r in self.records]

    def validate_images(self) -> int:
        """Decode every image of the split; bad ones raise, or are dropped and listed (skip_bad).

        Returns the number of images dropped. Costly: one full decode per image.
        """
        keep: list[CXRRecord] = []
        for rec in self.records:
            try:
                read_xray(rec.image_path, bits_stored=rec.meta.get("bits_stored"))
            except DataError as exc:
                self._bad(rec.name, str(exc), exc)
                continue
            keep.append(rec)
        dropped = len(self.records) - len(keep)
        if dropped:
            kept = {id(r) for r in keep}
            removed = {id(r) for r in self.records} - kept
            self.all_records = [r for r in self.all_records if id(r) not in removed]
            self.records = keep
        return dropped

    def write_split_csv(self, path: str | Path) -> None:
        """Release the split as ``image,patient,split`` rows (all splits, atomic write)."""
        write_split_csv(path, [(r.name, r.patient_id or "", r.meta.get("split") or "") for r in self.all_records])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, "
                f"labels={len(self.label_names)}, split_method={self.split_info.get('method')!r})")
