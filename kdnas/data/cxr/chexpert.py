"""CheXpert loader: train.csv / valid.csv, path prefixes, views, label sets, uncertainty policy."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kdnas.data.cxr.base import CXRDataset, check_split, gc_paused
from kdnas.data.cxr.labels import CHEXPERT_COMPETITION, CHEXPERT_LABELS
from kdnas.data.cxr.policies import SMOOTH_RANGES, apply_uncertainty, check_policy
from kdnas.data.cxr.splits import carve_by_patient, check_fraction, split_summary
from kdnas.data.cxr.tables import Table, read_table
from kdnas.data.types import CXRRecord
from kdnas.utils.errors import ConfigError, DataError

TRAIN_FILES = ("train.csv", "train.csv.gz", "chexpert_train.csv", "chexpert_train.csv.gz")
VALID_FILES = ("valid.csv", "valid.csv.gz", "chexpert_valid.csv", "chexpert_valid.csv.gz")
META_COLUMNS = ("Path", "Frontal/Lateral", "AP/PA")
BLANK_POLICIES = ("nan", "zeros", "uncertain")
_PATIENT = re.compile(r"(patient\d+)")
_STUDY = re.compile(r"(study\d+)")
_CODES = {"1.0": 1.0, "1": 1.0, "0.0": 0.0, "0": 0.0, "-1.0": -1.0, "-1": -1.0, "": np.nan}
_BAD = 99.0


def _patient_study(rel: str) -> tuple[str | None, str | None]:
    """('patient00001', 'study1') from 'train/patient00001/study1/view1_frontal.jpg'."""
    parts = rel.split("/", 3)
    if len(parts) == 4 and parts[1].startswith("patient") and parts[2].startswith("study"):
        return parts[1], parts[2]
    patient, study = _PATIENT.search(rel), _STUDY.search(rel)
    return (patient.group(1) if patient else None), (study.group(1) if study else None)


def _label_list(labels: str | Sequence[str]) -> list[str]:
    if isinstance(labels, str):
        key = labels.strip().lower()
        if key in ("all", "14", "observations"):
            return list(CHEXPERT_LABELS)
        if key in ("competition", "5"):
            return list(CHEXPERT_COMPETITION)
        raise ConfigError(f"labels must be 'all', 'competition' or a list of CheXpert observations, got {labels!r}")
    names = list(labels)
    unknown = [n for n in names if n not in CHEXPERT_LABELS]
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(f"unknown or repeated CheXpert labels {unknown or names}; valid: {', '.join(CHEXPERT_LABELS)}")
    return names


def _view_filter(views: str | Sequence[str] | None) -> tuple[str, set[str] | None]:
    """('frontal'|'lateral'|'all', optional AP/PA whitelist)."""
    if views is None:
        return "all", None
    if isinstance(views, str):
        key = views.strip().lower()
        if key in ("frontal", "lateral", "all"):
            return key, None
        views = [views]
    allowed = {str(v).strip().upper() for v in views}
    if "LATERAL" in allowed or "L" in allowed:
        raise ConfigError("views as a list selects AP/PA values of frontal images; use views='lateral' or 'all'")
    return "frontal", allowed


class CheXpertDataset(CXRDataset):
    """CheXpert v1.0 (small or full) as :class:`~kdnas.data.types.CXRSample` items.

    Args:
        root: the ``CheXpert-v1.0-small`` (or ``CheXpert-v1.0``) folder holding ``train.csv``,
            ``valid.csv`` and the ``train/``, ``valid/`` image trees. The ``CheXpert-v1.0*/`` prefix
            of ``Path`` is stripped; a root one level above the dataset folder also works.
        split: ``"train"`` / ``"val"`` (patient-disjoint carve-out of train.csv, ``val_fraction`` of
            its images), ``"test"`` or ``"valid"`` (the official valid.csv, 234 images labelled by 3
            radiologists; the usual test set because the real test set is hidden), ``None`` (all).
        labels: ``"all"`` (the 14 observations), ``"competition"`` (Atelectasis, Cardiomegaly,
            Consolidation, Edema, Pleural Effusion) or a list of observation names.
        uncertainty: policy for ``-1`` (:mod:`kdnas.data.cxr.policies`): ``ignore``, ``zeros``,
            ``ones``, ``smooth``, ``smooth_zeros`` or ``teacher`` (kept as -1 with a mask).
        blank_as: empty cells ("not mentioned"): ``"nan"`` (unknown), ``"zeros"`` or
            ``"uncertain"`` (treated as -1, then the policy applies).
        no_finding_fill: where ``No Finding`` is 1, blank observations other than Support Devices
            become 0 (torchxrayvision's rule, applied to blanks only).
        views: ``"frontal"`` (default), ``"lateral"``, ``"all"``/None, or AP/PA values (``["PA"]``).
        train_csv, valid_csv: explicit label files (e.g. a gzipped copy elsewhere).
    """

    format_name = "chexpert"

    def __init__(self, root: str | Path, split: str | None = "train", labels: str | Sequence[str] = "all",
                 uncertainty: str = "ignore", blank_as: str = "nan", views: str | Sequence[str] | None = "frontal",
                 val_fraction: float = 0.1, seed: int = 0, skip_bad: bool = False, *, no_finding_fill: bool = True,
                 smooth_range: tuple[float, float] | None = None, check_images: bool = True,
                 train_csv: str | Path | None = None, valid_csv: str | Path | None = None):
        self.root = Path(root)
        self.split = check_split(split, ("train", "val", "test", "valid"))
        self.label_names = _label_list(labels)
        self.uncertainty = check_policy(uncertainty)
        if blank_as not in BLANK_POLICIES:
            raise ConfigError(f"blank_as must be one of {', '.join(BLANK_POLICIES)}, got {blank_as!r}")
        self.blank_as = blank_as
        self.no_finding_fill = bool(no_finding_fill)
        self.view_mode, self.ap_pa = _view_filter(views)
        self.val_fraction = check_fraction("val_fraction", val_fraction)
        self.seed = int(seed)
        self.skip_bad = bool(skip_bad)
        self.skipped: list[tuple[str, str]] = []
        self.smooth_range = smooth_range if smooth_range is not None else SMOOTH_RANGES.get(self.uncertainty)
        train_path = self._find(train_csv, TRAIN_FILES)
        valid_path = self._find(valid_csv, VALID_FILES)
        want_train = self.split in (None, "train", "val")
        want_valid = self.split in (None, "test", "valid")
        if want_train and train_path is None:
            raise DataError(self.root / TRAIN_FILES[0], "CheXpert train label file not found",
                            expected=f"one of {', '.join(TRAIN_FILES)} in the root, or train_csv=")
        if self.split in ("test", "valid") and valid_path is None:
            raise DataError(self.root / VALID_FILES[0], "CheXpert valid label file not found",
                            expected=f"one of {', '.join(VALID_FILES)} in the root, or valid_csv=")
        with gc_paused():
            records: list[CXRRecord] = []
            assignment: dict[str, str] = {}
            n_rows = {}
            if want_train:
                train = self._parse(read_table(train_path, skip_bad=self.skip_bad), "train")
                n_rows["rows_train_csv"] = len(train)
                pool_names = [r.name for r in train]
                val = carve_by_patient(pool_names, [r.patient_id or r.name for r in train], self.val_fraction,
                                       self.seed, "val")
                assignment.update({n: "val" if n in val else "train" for n in pool_names})
                records += train
            if want_valid and valid_path is not None:
                valid = self._parse(read_table(valid_path, skip_bad=self.skip_bad), "valid")
                n_rows["rows_valid_csv"] = len(valid)
                assignment.update({r.name: "test" for r in valid})
                records += valid
            self.all_records = records
            if check_images:
                self._check_present(self._index_tree(), self.root, key=lambda r: r.name)
            split = self.split
            self.split = "test" if split == "valid" else split
            self._select(assignment)
            self.split = split
        pids = {r.name: r.patient_id or r.name for r in self.all_records}
        self.split_info = {
            "method": "official valid.csv as test + seeded patient-disjoint validation carve-out of train.csv",
            "seed": self.seed, "val_fraction": self.val_fraction,
            "train_csv": None if train_path is None else str(train_path),
            "valid_csv": None if valid_path is None else str(valid_path),
            "uncertainty": self.uncertainty, "blank_as": self.blank_as, "no_finding_fill": self.no_finding_fill,
            "views": self.view_mode if self.ap_pa is None else sorted(self.ap_pa), "unit": "image",
            "skipped": len(self.skipped), **n_rows,
            **split_summary({r.name: r.meta["split"] for r in self.all_records}, pids),
        }

    def _find(self, explicit: str | Path | None, names: Sequence[str]) -> Path | None:
        if explicit is not None:
            path = Path(explicit)
            if not path.is_file():
                raise DataError(path, "label file not found", expected="a CheXpert CSV (.csv or .csv.gz)")
            return path
        for name in names:
            if (self.root / name).is_file():
                return self.root / name
        return None

    def _index_tree(self) -> dict[str, Path]:
        """Relative path (without the CheXpert-v1.0* prefix) -> file, over train/ and valid/."""
        found: dict[str, Path] = {}
        for base in (self.root, *sorted(self.root.glob("CheXpert-v1.0*"))):
            for top in ("train", "valid"):
                for dirpath, _dirs, files in os.walk(base / top):
                    rel = Path(dirpath).relative_to(base).as_posix()
                    for f in files:
                        found.setdefault(f"{rel}/{f}", Path(dirpath) / f)
        return found

    def _parse(self, table: Table, source: str) -> list[CXRRecord]:
        table.require(META_COLUMNS)
        missing = [n for n in self.label_names if n not in table.start]
        if missing:
            table.require(missing, " (a CheXpert observation)")
        self.skipped.extend((f"{table.path.name} row {line}", why) for line, why in table.bad_rows)
        rows, lines = table.rows, table.lines
        n = len(rows)
        i_path, i_fl, i_appa = (table.index(c) for c in META_COLUMNS)
        cols = list(self.label_names)
        if self.no_finding_fill and "No Finding" in table.start and "No Finding" not in cols:
            cols.append("No Finding")
        values = np.empty((n, len(cols)), dtype=np.float32)
        code = _CODES.get
        for j, name in enumerate(cols):
            idx = table.index(name)
            values[:, j] = [code(row[idx], _BAD) for row in rows]
            for r in np.flatnonzero(values[:, j] == _BAD):  # tolerate stray whitespace
                values[r, j] = code(rows[r][idx].strip(), _BAD)
        bad_rows = np.flatnonzero((values == _BAD).any(axis=1))
        keep = np.ones(n, dtype=bool)
        for r in bad_rows:
            j = int(np.flatnonzero(values[r] == _BAD)[0])
            cell = rows[r][table.index(cols[j])]
            err = DataError(table.path, f"invalid label value {cell!r}", row=lines[r], column=cols[j],
                            expected="1.0, 0.0, -1.0 or empty")
            self._bad(rows[r][i_path], f"invalid label value {cell!r} in column {cols[j]!r}", err)
            keep[r] = False
        blank = np.isnan(values)
        if self.no_finding_fill and "No Finding" in cols:
            healthy = values[:, cols.index("No Finding")] == 1
            fill_cols = [j for j, c in enumerate(cols) if c not in ("No Finding", "Support Devices")]
            for j in fill_cols:
                fill = healthy & blank[:, j]
                values[fill, j] = 0.0
                blank[fill, j] = False
        values = values[:, : len(self.label_names)]
        blank = blank[:, : len(self.label_names)]
        if self.blank_as == "zeros":
            values[blank] = 0.0
        elif self.blank_as == "uncertain":
            values[blank] = -1.0
        values = apply_uncertainty(values, self.uncertainty, seed=self.seed, smooth_range=self.smooth_range)

        records: list[CXRRecord] = []
        seen: set[str] = set()
        i_sex, i_age = table.get("Sex"), table.get("Age")
        for r in range(n):
            if not keep[r]:
                continue
            row, line = rows[r], lines[r]
            raw = row[i_path]
            rel = self._relative(raw.strip())
            frontal = row[i_fl]
            if frontal not in ("Frontal", "Lateral"):
                frontal = frontal.strip()
            if frontal not in ("Frontal", "Lateral"):
                self._bad(raw or f"row {line}", f"Frontal/Lateral is {frontal!r}",
                          DataError(table.path, f"invalid view {frontal!r}", row=line, column="Frontal/Lateral",
                                    expected="Frontal or Lateral"))
                continue
            ap_pa = row[i_appa].strip().upper()
            if self.view_mode == "frontal" and frontal != "Frontal":
                continue
            if self.view_mode == "lateral" and frontal != "Lateral":
                continue
            if self.ap_pa is not None and ap_pa not in self.ap_pa:
                continue
            pid, study = _patient_study(rel)
            if pid is None:
                self._bad(raw or f"row {line}", "Path has no patientNNNNN component",
                          DataError(table.path, f"cannot parse patient from {raw!r}", row=line, column="Path",
                                    expected="CheXpert-v1.0-small/<split>/patientNNNNN/studyN/viewN_<view>.jpg"))
                continue
            if rel in seen:
                self._bad(rel, "duplicate Path", DataError(table.path, f"duplicate image {raw!r}", row=line,
                                                           column="Path"))
                continue
            seen.add(rel)
            meta = {"row": line, "source": source, "frontal_lateral": frontal}
            if i_sex is not None:
                meta["sex"] = row[i_sex].strip()
            if i_age is not None:
                meta["age"] = row[i_age].strip()
            records.append(CXRRecord(
                name=rel, image_path=self.root / rel, labels=values[r].copy(), patient_id=pid,
                study_id=f"{pid}/{study}" if study else None,
                view=(ap_pa or "Frontal") if frontal == "Frontal" else "Lateral", meta=meta))
        return records

    def _relative(self, raw: str) -> str:
        """Path relative to the dataset folder: strips a leading ``CheXpert-v1.0*/`` component."""
        parts = raw.replace("\\", "/").split("/", 1)
        if len(parts) == 2 and parts[0].startswith("CheXpert-v1.0"):
            return parts[1]
        return raw.replace("\\", "/")
