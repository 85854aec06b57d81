"""PadChest loader: ``Labels`` list strings mapped through an explicit synonym table, 16-bit PNGs."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from kdnas.data.cxr.base import CXRDataset, check_split, gc_paused, index_images
from kdnas.data.cxr.labels import PADCHEST_NORMAL_TERMS, PADCHEST_SYNONYMS
from kdnas.data.cxr.splits import check_fraction, read_split_csv, seeded_patient_split, split_summary
from kdnas.data.cxr.tables import Table, read_table
from kdnas.data.types import CXRRecord
from kdnas.utils.errors import ConfigError, DataError

CSV_PATTERNS = ("PADCHEST_chest_x_ray_images_labels_160K*.csv", "PADCHEST_chest_x_ray_images_labels_160K*.csv.gz")
REQUIRED_COLUMNS = ("ImageID", "PatientID", "Projection", "Labels")
FRONTAL_PROJECTIONS = ("PA", "AP", "AP_horizontal")
_EMPTY_CELLS = ("", "nan", "NaN", "None", "[]")


def _synonym_table(labels: Sequence[str] | Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    """label -> lower-case PadChest terms. A list picks (and orders) labels of the default table."""
    if labels is None:
        return dict(PADCHEST_SYNONYMS)
    if isinstance(labels, Mapping):
        table = {str(k): tuple(str(t).strip().lower() for t in v) for k, v in labels.items()}
    else:
        unknown = [n for n in labels if n not in PADCHEST_SYNONYMS]
        if unknown:
            raise ConfigError(f"labels {unknown} have no PadChest synonym table; pass a dict label -> terms, "
                              f"or choose from: {', '.join(PADCHEST_SYNONYMS)}")
        table = {n: PADCHEST_SYNONYMS[n] for n in labels}
    if not table or any(not terms for terms in table.values()):
        raise ConfigError("every PadChest label needs at least one term")
    return table


def parse_label_list(cell: str) -> list[str] | None:
    """``"['pacemaker', ' chronic changes']"`` -> ``['pacemaker', 'chronic changes']`` (stripped, lower).

    Returns None for an empty cell (PadChest has unlabelled rows); raises ValueError when the
    cell is not a Python-literal list of strings.
    """
    text = cell.strip()
    if text in _EMPTY_CELLS:
        return None if text != "[]" else []
    try:
        value = ast.literal_eval(text)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not a Python literal: {text[:60]!r}") from exc
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"not a list of strings: {text[:60]!r}")
    return [v.strip().lower() for v in value if v.strip()]


class PadChestDataset(CXRDataset):
    """PadChest as :class:`~kdnas.data.types.CXRSample` items.

    Args:
        root: folder with the label CSV (``PADCHEST_chest_x_ray_images_labels_160K*.csv[.gz]``) and
            the images, either in the numbered ``ImageDir`` sub-folders or flat.
        split: ``"train"``, ``"val"``, ``"test"`` or ``None``. PadChest has no official split: a
            seeded patient-disjoint split is made (``test_fraction`` of all images, ``val_fraction``
            of the rest) unless ``split_csv`` (a released kdnas split) is given.
        labels: ``None`` (the default table, :data:`~kdnas.data.cxr.labels.PADCHEST_SYNONYMS`), a list
            of its label names, or a dict ``label -> [PadChest terms]``. Terms match exactly (lower
            case, stripped), never by substring.
        views: ``Projection`` values to keep (default the frontal ``PA``, ``AP``, ``AP_horizontal``).
        bits_stored: ``"container"`` (16-bit PNG / 65535, torchxrayvision's convention) or ``"dicom"``
            (scale by ``2**BitsStored_DICOM - 1`` of each row).
        csv_file, images_dir: explicit label file / image folder.

    Rows whose ``Labels`` cell is empty are dropped (counted in ``split_info["dropped_unlabelled"]``).
    """

    format_name = "padchest"

    def __init__(self, root: str | Path, split: str | None = "train",
                 labels: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
                 views: Sequence[str] | None = FRONTAL_PROJECTIONS, val_fraction: float = 0.1,
                 test_fraction: float = 0.2, seed: int = 0, skip_bad: bool = False, *,
                 bits_stored: str = "container", csv_file: str | Path | None = None,
                 images_dir: str | Path | None = None, check_images: bool = True,
                 split_csv: str | Path | None = None):
        self.root = Path(root)
        self.split = check_split(split)
        self.synonyms = _synonym_table(labels)
        self.label_names = list(self.synonyms)
        self.views = None if views is None else {str(v).strip() for v in views}
        if bits_stored not in ("container", "dicom"):
            raise ConfigError(f"bits_stored must be 'container' or 'dicom', got {bits_stored!r}")
        self.bits_stored = bits_stored
        self.val_fraction = check_fraction("val_fraction", val_fraction)
        self.test_fraction = check_fraction("test_fraction", test_fraction)
        self.seed = int(seed)
        self.skip_bad = bool(skip_bad)
        self.skipped: list[tuple[str, str]] = []
        self.csv_file = self._find_csv(csv_file)
        self.images_dir = self.root if images_dir is None else Path(images_dir)
        with gc_paused():
            table = read_table(self.csv_file, skip_bad=self.skip_bad)
            self.skipped.extend((f"row {line}", why) for line, why in table.bad_rows)
            self.dropped_unlabelled = 0
            self.all_records = self._parse(table)
            if check_images:
                dirs = [self.images_dir] + sorted(p for p in self.images_dir.iterdir() if p.is_dir()) \
                    if self.images_dir.is_dir() else []
                self._check_present(index_images(dirs), self.images_dir)
            names = [r.name for r in self.all_records]
            pids = [r.patient_id or r.name for r in self.all_records]
            if split_csv is not None:
                released = read_split_csv(split_csv)
                assignment = {n: released[n] for n in names if n in released}
                info = {"method": "from split file", "split_csv": str(split_csv),
                        "not_in_split_file": len(names) - len(assignment)}
            else:
                assignment = seeded_patient_split(names, pids, test_fraction=self.test_fraction,
                                                  val_fraction=self.val_fraction, seed=self.seed)
                info = {"method": "seeded patient-disjoint", "seed": self.seed, "test_fraction": self.test_fraction,
                        "val_fraction": self.val_fraction, "note": "PadChest has no official split"}
            self._select(assignment)
        info.update(csv_file=str(self.csv_file), rows=len(table.rows), dropped_unlabelled=self.dropped_unlabelled,
                    views=None if self.views is None else sorted(self.views), bits_stored=self.bits_stored,
                    skipped=len(self.skipped),
                    **split_summary(assignment, {r.name: r.patient_id or r.name for r in self.all_records}))
        self.split_info = info

    def _find_csv(self, explicit: str | Path | None) -> Path:
        if explicit is not None:
            return Path(explicit)
        found = sorted({p for pat in CSV_PATTERNS for p in self.root.glob(pat)})
        if not found:
            raise DataError(self.root, "no PadChest label file found",
                            expected="PADCHEST_chest_x_ray_images_labels_160K*.csv(.gz) in the root, or csv_file=")
        return found[-1]

    def _parse(self, table: Table) -> list[CXRRecord]:
        table.require(REQUIRED_COLUMNS)
        i_img, i_pid, i_proj, i_lab = (table.index(c) for c in REQUIRED_COLUMNS)
        i_dir, i_study = table.get("ImageDir"), table.get("StudyID")
        i_bits = table.get("BitsStored_DICOM")
        if self.bits_stored == "dicom" and i_bits is None:
            table.require(["BitsStored_DICOM"], " (needed by bits_stored='dicom')")
        term_to_cols: dict[str, list[int]] = {}
        for j, terms in enumerate(self.synonyms.values()):
            for t in terms:
                term_to_cols.setdefault(t, []).append(j)
        nested = {}  # ImageDir value -> does that sub-folder exist?
        parsed: dict[str, list[str] | None] = {}  # many rows share a Labels cell (e.g. "['normal']")
        records: list[CXRRecord] = []
        seen: set[str] = set()
        for line, row in zip(table.lines, table.rows, strict=True):
            name = row[i_img].strip()
            if not name:
                self._bad(f"row {line}", "empty ImageID", DataError(table.path, "empty ImageID", row=line,
                                                                     column="ImageID"))
                continue
            if self.views is not None and row[i_proj].strip() not in self.views:
                continue
            cell = row[i_lab]
            try:
                terms = parsed[cell] if cell in parsed else parsed.setdefault(cell, parse_label_list(cell))
            except ValueError as exc:
                self._bad(name, f"unparsable Labels cell ({exc})",
                          DataError(table.path, f"unparsable Labels cell {row[i_lab][:60]!r}", row=line,
                                    column="Labels", expected="a Python-literal list of strings"))
                continue
            if terms is None:
                self.dropped_unlabelled += 1
                continue
            if name in seen:
                self._bad(name, "duplicate ImageID", DataError(table.path, f"duplicate image {name!r}", row=line,
                                                               column="ImageID"))
                continue
            seen.add(name)
            vec = np.zeros(len(self.label_names), dtype=np.float32)
            for t in terms:
                for j in term_to_cols.get(t, ()):
                    vec[j] = 1.0
            meta: dict = {"row": line, "terms": list(terms), "normal": any(t in PADCHEST_NORMAL_TERMS for t in terms)}
            if self.bits_stored == "dicom":
                try:
                    meta["bits_stored"] = int(float(row[i_bits]))
                except ValueError:
                    self._bad(name, "invalid BitsStored_DICOM",
                              DataError(table.path, f"invalid BitsStored_DICOM {row[i_bits]!r}", row=line,
                                        column="BitsStored_DICOM", expected="an integer 1..16"))
                    continue
            folder = row[i_dir].strip() if i_dir is not None else ""
            if folder and folder not in nested:
                nested[folder] = (self.images_dir / folder).is_dir()
            path = self.images_dir / folder / name if folder and nested[folder] else self.images_dir / name
            records.append(CXRRecord(name=name, image_path=path, labels=vec, patient_id=row[i_pid].strip() or None,
                                     study_id=row[i_study].strip() if i_study is not None else None,
                                     view=row[i_proj].strip(), meta=meta))
        return records
