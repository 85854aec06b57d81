"""Generic CSV loader: one image path column plus label columns (1 / 0 / -1 / empty / soft)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kdnas.data.cxr.base import CXRDataset, check_split, gc_paused
from kdnas.data.cxr.policies import apply_uncertainty, check_policy
from kdnas.data.cxr.splits import check_fraction, seeded_patient_split, split_summary
from kdnas.data.cxr.tables import Table, read_table
from kdnas.data.types import CXRRecord
from kdnas.utils.errors import ConfigError, DataError

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test"}


def _parse_value(cell: str) -> float | None:
    """1, 0, -1 (uncertain), empty/NaN (unknown) or a soft label in [0, 1]; None when invalid."""
    text = cell.strip()
    if text == "" or text.lower() in ("nan", "na", "none"):
        return math.nan
    low = text.lower()
    if low in ("true", "yes"):
        return 1.0
    if low in ("false", "no"):
        return 0.0
    try:
        value = float(text)
    except ValueError:
        return None
    if value == -1.0 or 0.0 <= value <= 1.0:
        return value
    return None


class CSVDataset(CXRDataset):
    """Any label CSV with an image-path column and label columns.

    Args:
        root: the CSV file, or a folder holding ``csv_file`` (default ``labels.csv``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``None``. Taken from ``split_column`` when given
            (values train/val/test, also training/valid/validation/dev/testing); otherwise a seeded
            split by ``patient_column``, or by image when there is no patient column (stated in
            ``split_info``: patients may then leak across splits).
        image_column: column with image paths, relative to ``images_dir`` (default: the CSV's folder).
        label_columns: label columns in order; default every column other than the image,
            patient, view and split columns.
        uncertainty: policy for -1 entries (:mod:`kdnas.data.cxr.policies`).
    """

    format_name = "csv"

    def __init__(self, root: str | Path, split: str | None = "train", image_column: str = "path",
                 label_columns: Sequence[str] | None = None, patient_column: str | None = None,
                 view_column: str | None = None, split_column: str | None = None, val_fraction: float = 0.1,
                 test_fraction: float = 0.2, seed: int = 0, skip_bad: bool = False, *,
                 csv_file: str | Path | None = None, images_dir: str | Path | None = None,
                 uncertainty: str = "ignore", check_images: bool = True):
        root = Path(root)
        self.csv_file = root if root.is_file() else root / (csv_file or "labels.csv")
        self.root = self.csv_file.parent
        self.images_dir = self.root if images_dir is None else Path(images_dir)
        self.split = check_split(split)
        self.val_fraction = check_fraction("val_fraction", val_fraction)
        self.test_fraction = check_fraction("test_fraction", test_fraction)
        self.seed = int(seed)
        self.skip_bad = bool(skip_bad)
        self.skipped: list[tuple[str, str]] = []
        self.uncertainty = check_policy(uncertainty)
        self.columns = {"image": image_column, "patient": patient_column, "view": view_column, "split": split_column}
        with gc_paused():
            table = read_table(self.csv_file, skip_bad=self.skip_bad)
            self.skipped.extend((f"row {line}", why) for line, why in table.bad_rows)
            table.require([c for c in self.columns.values() if c is not None])
            special = {c for c in self.columns.values() if c is not None}
            self.label_names = list(label_columns) if label_columns is not None else \
                [c for c in table.columns if c not in special and c != ""]
            if not self.label_names:
                raise ConfigError(f"{self.csv_file}: no label columns (columns: {table.columns})")
            table.require(self.label_names, " (a label column)")
            self.all_records, declared = self._parse(table)
            if check_images:
                self._check_files()
            names = [r.name for r in self.all_records]
            if split_column is not None:
                assignment = {n: declared[n] for n in names}
                info = {"method": f"from column {split_column!r}"}
            else:
                pids = [r.patient_id or r.name for r in self.all_records]
                assignment = seeded_patient_split(names, pids, test_fraction=self.test_fraction,
                                                  val_fraction=self.val_fraction, seed=self.seed)
                info = {"method": "seeded patient-disjoint" if patient_column else
                        "seeded image-level (no patient column: patients may leak across splits)",
                        "seed": self.seed, "test_fraction": self.test_fraction, "val_fraction": self.val_fraction}
            self._select(assignment)
        info.update(csv_file=str(self.csv_file), uncertainty=self.uncertainty, skipped=len(self.skipped),
                    **split_summary(assignment, {r.name: r.patient_id or r.name for r in self.all_records}))
        self.split_info = info

    def _parse(self, table: Table) -> tuple[list[CXRRecord], dict[str, str]]:
        cols = self.columns
        i_img = table.index(cols["image"])
        i_pid = table.get(cols["patient"]) if cols["patient"] else None
        i_view = table.get(cols["view"]) if cols["view"] else None
        i_split = table.get(cols["split"]) if cols["split"] else None
        label_idx = [table.index(c) for c in self.label_names]
        records: list[CXRRecord] = []
        declared: dict[str, str] = {}
        seen: set[str] = set()
        for line, row in zip(table.lines, table.rows, strict=True):
            rel = row[i_img].strip()
            if not rel:
                self._bad(f"row {line}", "empty image path", DataError(table.path, "empty image path", row=line,
                                                                        column=cols["image"]))
                continue
            values, bad = [], None
            for name, j in zip(self.label_names, label_idx, strict=True):
                v = _parse_value(row[j])
                if v is None:
                    bad = DataError(table.path, f"invalid label value {row[j]!r}", row=line, column=name,
                                    expected="1, 0, -1 (uncertain), empty (unknown) or a value in [0, 1]")
                    break
                values.append(v)
            if bad is not None:
                self._bad(rel, bad.problem + f" in column {bad.column!r}", bad)
                continue
            if i_split is not None:
                tag = SPLIT_ALIASES.get(row[i_split].strip().lower())
                if tag is None:
                    self._bad(rel, f"unknown split {row[i_split]!r}",
                              DataError(table.path, f"unknown split {row[i_split]!r}", row=line, column=cols["split"],
                                        expected="train, val or test"))
                    continue
                declared[rel] = tag
            if rel in seen:
                self._bad(rel, "duplicate image path", DataError(table.path, f"image {rel!r} is listed twice",
                                                                 row=line, column=cols["image"]))
                continue
            seen.add(rel)
            path = Path(rel)
            records.append(CXRRecord(
                name=rel, image_path=path if path.is_absolute() else self.images_dir / rel,
                labels=np.array(values, dtype=np.float32),
                patient_id=(row[i_pid].strip() or None) if i_pid is not None else None,
                view=row[i_view].strip() if i_view is not None else None, meta={"row": line}))
        if records:  # one policy pass over the whole matrix keeps smoothing draws reproducible
            resolved = apply_uncertainty(np.stack([r.labels for r in records]), self.uncertainty, seed=self.seed)
            for rec, vec in zip(records, resolved, strict=True):
                rec.labels = vec
        return records, declared

    def _check_files(self) -> None:
        missing = [r for r in self.all_records if not r.image_path.is_file()]
        if missing and not self.skip_bad:
            raise DataError(missing[0].image_path, f"image file not found ({len(missing)} of {len(self.all_records)} "
                            "listed images missing); pass skip_bad=True to use the present images or "
                            "check_images=False to defer the check")
        gone = {id(r) for r in missing}
        self.skipped.extend((r.name, "image file not found") for r in missing)
        self.all_records = [r for r in self.all_records if id(r) not in gone]
