"""NIH ChestX-ray14 loader: Data_Entry_2017 labels, official or seeded split, BBox_List_2017 boxes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kdnas.data.cxr.base import CXRDataset, check_split, child_path_factory, gc_paused, index_images
from kdnas.data.cxr.labels import NIH_BOX_FRAME, NIH_BOX_LABELS, NIH_LABELS, NO_FINDING
from kdnas.data.cxr.splits import (
    carve_by_patient,
    check_fraction,
    read_name_list,
    seeded_patient_split,
    split_summary,
)
from kdnas.data.cxr.tables import Table, read_table
from kdnas.data.types import Box, CXRRecord
from kdnas.utils.errors import ConfigError, DataError

LABEL_FILE_PATTERNS = ("Data_Entry_2017*.csv", "Data_Entry_2017*.csv.gz")
BOX_FILES = ("BBox_List_2017.csv", "BBox_List_2017.csv.gz")
OFFICIAL_LISTS = ("train_val_list.txt", "test_list.txt")
REQUIRED_COLUMNS = ("Image Index", "Finding Labels", "Patient ID")


def find_label_file(root: Path) -> Path:
    """The newest ``Data_Entry_2017*.csv[.gz]`` in ``root`` (v2020 sorts after the 2017 file)."""
    found = sorted({p for pat in LABEL_FILE_PATTERNS for p in root.glob(pat)})
    if not found:
        raise DataError(root, "no NIH label file found", expected="Data_Entry_2017*.csv or .csv.gz in the root")
    plain = [p for p in found if p.suffix == ".csv"]
    return (plain or found)[-1]


def _first_existing(root: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        if (root / name).is_file():
            return root / name
    return None


class NIHDataset(CXRDataset):
    """ChestX-ray14 as :class:`~kdnas.data.types.CXRSample` items.

    Args:
        root: folder with ``Data_Entry_2017*.csv[.gz]`` (and optionally ``BBox_List_2017.csv[.gz]``,
            ``train_val_list.txt`` + ``test_list.txt``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` (all images).
        labels: label subset/order (default: the 14 findings). ``No Finding`` = all listed labels 0.
        images_dir: image folder (absolute or relative to ``root``); default ``images/`` if present,
            else ``images_*/images/`` (Kaggle layout), else ``root``.
        val_fraction: share of the train+val pool carved out as validation, by patient.
        test_fraction: share of all images for test when the official lists are absent.
        seed: seed of the patient-disjoint carve-outs.
        views: keep only these ``View Position`` values (e.g. ``["PA"]``); ``None`` keeps all.
        skip_bad: count and list bad rows / missing images in ``skipped`` instead of raising.
        check_images: verify at load time that every listed image exists (one directory listing).
        label_file: explicit label CSV instead of the newest ``Data_Entry_2017*`` in ``root``.

    Boxes stay in the 1024 x 1024 frame on the records and are rescaled to the decoded image in
    ``__getitem__``; the box label ``Infiltrate`` becomes ``Infiltration``; boxes of findings outside
    ``labels`` are left out. The split is the official one when both list files are in ``root``
    (validation carved out of ``train_val_list.txt`` by patient), otherwise a seeded
    patient-disjoint split; ``split_info["method"]`` says which.
    """

    format_name = "nih"

    def __init__(self, root: str | Path, split: str | None = "train", labels: Sequence[str] | None = None,
                 images_dir: str | Path | None = None, val_fraction: float = 0.1, seed: int = 0,
                 views: Sequence[str] | None = None, skip_bad: bool = False, *, test_fraction: float = 0.2,
                 check_images: bool = True, label_file: str | Path | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "dataset root not found", expected="a folder with Data_Entry_2017*.csv")
        self.split = check_split(split)
        self.val_fraction = check_fraction("val_fraction", val_fraction)
        self.test_fraction = check_fraction("test_fraction", test_fraction)
        if self.split == "val" and self.val_fraction == 0:
            raise ConfigError("split='val' needs val_fraction > 0")
        self.seed = int(seed)
        self.skip_bad = bool(skip_bad)
        self.skipped: list[tuple[str, str]] = []
        self.label_names = list(NIH_LABELS if labels is None else labels)
        if not self.label_names or len(set(self.label_names)) != len(self.label_names):
            raise ConfigError(f"labels must be a non-empty list without duplicates, got {self.label_names}")
        self.views = None if views is None else {str(v).strip().upper() for v in views}
        self.label_file = Path(label_file) if label_file is not None else find_label_file(self.root)
        self.images_dir, image_dirs = self._image_dirs(images_dir)

        with gc_paused():
            table = read_table(self.label_file, skip_bad=self.skip_bad)
            self.skipped.extend((f"row {line}", reason) for line, reason in table.bad_rows)
            self.all_records = self._parse_entries(table)
            n_listed = len(self.all_records)
            if self.views is not None:
                self.all_records = [r for r in self.all_records if (r.view or "").upper() in self.views]
            self._attach_boxes()
            self._check_present(index_images(image_dirs) if check_images else None, self.images_dir)
            assignment, info = self._make_split()
            self._select(assignment)
        info.update(label_file=str(self.label_file), images_dir=str(self.images_dir), rows=n_listed,
                    views=None if self.views is None else sorted(self.views), skipped=len(self.skipped),
                    **split_summary(assignment, {r.name: r.patient_id or r.name for r in self.all_records}))
        self.split_info = info

    # -- construction steps ----------------------------------------------------------------
    def _image_dirs(self, images_dir: str | Path | None) -> tuple[Path, list[Path]]:
        if images_dir is not None:
            d = Path(images_dir)
            d = d if d.is_absolute() else self.root / d
            return d, [d]
        if (self.root / "images").is_dir():
            return self.root / "images", [self.root / "images"]
        kaggle = sorted(p / "images" for p in self.root.glob("images_*") if (p / "images").is_dir())
        if kaggle:
            return self.root, kaggle
        return self.root, [self.root]

    def _parse_entries(self, table: Table) -> list[CXRRecord]:
        table.require(REQUIRED_COLUMNS)
        i_name, i_find, i_pid = (table.index(c) for c in REQUIRED_COLUMNS)
        i_view, i_follow = table.get("View Position"), table.get("Follow-up #")
        i_age, i_sex = table.get("Patient Age"), table.get("Patient Gender")
        col = {n: j for j, n in enumerate(self.label_names)}
        known = set(NIH_LABELS) | set(self.label_names)
        n_labels = len(self.label_names)
        image_path = child_path_factory(self.images_dir)
        cache: dict[str, np.ndarray | str] = {}
        seen: set[str] = set()
        records: list[CXRRecord] = []
        for line, row in zip(table.lines, table.rows, strict=True):
            name = row[i_name].strip()
            if not name:
                self._bad(f"row {line}", "empty Image Index",
                          DataError(table.path, "empty image name", row=line, column="Image Index"))
                continue
            cell = row[i_find]
            parsed = cache.get(cell)
            if parsed is None:
                parsed = cache[cell] = self._parse_findings(cell, known, col, n_labels)
            if isinstance(parsed, str):
                self._bad(name, parsed, DataError(table.path, parsed, row=line, column="Finding Labels",
                                                  expected=f"'{NO_FINDING}' or '|'-joined NIH findings"))
                continue
            pid = row[i_pid].strip()
            if not pid:
                self._bad(name, "empty Patient ID", DataError(table.path, "empty Patient ID", row=line,
                                                              column="Patient ID"))
                continue
            if name in seen:
                self._bad(name, "duplicate Image Index", DataError(table.path, f"duplicate image {name!r}",
                                                                   row=line, column="Image Index"))
                continue
            seen.add(name)
            meta = {"row": line, "finding_labels": cell}
            if i_follow is not None:
                meta["follow_up"] = row[i_follow].strip()
            if i_age is not None:
                meta["age"] = row[i_age].strip()
            if i_sex is not None:
                meta["sex"] = row[i_sex].strip()
            records.append(CXRRecord(name=name, image_path=image_path(name), labels=parsed.copy(),
                                     patient_id=pid, study_id=name.rsplit(".", 1)[0],
                                     view=row[i_view].strip() if i_view is not None else None, meta=meta))
        return records

    @staticmethod
    def _parse_findings(cell: str, known: set[str], col: dict[str, int], n: int) -> np.ndarray | str:
        """Label vector for one ``Finding Labels`` cell, or an error message."""
        parts = [p.strip() for p in cell.split("|")]
        if not cell.strip() or any(not p for p in parts):
            return f"empty finding in {cell!r}"
        vec = np.zeros(n, dtype=np.float32)
        if parts == [NO_FINDING]:
            return vec
        for p in parts:
            if p == NO_FINDING:
                return f"'{NO_FINDING}' combined with findings in {cell!r}"
            if p not in known:
                return f"unknown finding label {p!r}"
            j = col.get(p)
            if j is not None:
                vec[j] = 1.0
        return vec

    def _attach_boxes(self) -> None:
        path = _first_existing(self.root, BOX_FILES)
        self.box_file = path
        if path is None:
            return
        table = read_table(path, skip_bad=self.skip_bad, min_fields=6)
        self.skipped.extend((f"{path.name} row {line}", reason) for line, reason in table.bad_rows)
        table.require(("Image Index", "Finding Label"), " from the box file")
        if table.width < 6:
            raise DataError(path, f"has {table.width} columns, expected 6 (Image Index, Finding Label, x, y, w, h)",
                            row=1)
        i_name, i_label = table.index("Image Index"), table.index("Finding Label")
        i_xywh = table.index("Finding Label") + 1
        by_name = {r.name: r for r in self.all_records}
        wanted = set(self.label_names)
        for line, row in zip(table.lines, table.rows, strict=True):
            name = row[i_name].strip()
            label = NIH_BOX_LABELS.get(row[i_label].strip(), row[i_label].strip())
            if label not in NIH_LABELS and label not in wanted:
                self._bad(f"{path.name} row {line}", f"unknown box label {label!r}",
                          DataError(path, f"unknown box label {label!r}", row=line, column="Finding Label",
                                    expected="one of the 8 NIH box findings"))
                continue
            try:
                x, y, w, h = (float(v) for v in row[i_xywh:i_xywh + 4])
            except ValueError:
                self._bad(f"{path.name} row {line}", "non-numeric box",
                          DataError(path, f"non-numeric box {row[i_xywh:i_xywh + 4]}", row=line,
                                    column="Bbox [x,y,w,h]", expected="four numbers x, y, w, h"))
                continue
            if not (w > 0 and h > 0 and np.isfinite([x, y, w, h]).all()):
                self._bad(f"{path.name} row {line}", "degenerate box",
                          DataError(path, f"box with non-positive size {(x, y, w, h)}", row=line,
                                    column="Bbox [x,y,w,h]", expected="w > 0 and h > 0"))
                continue
            rec = by_name.get(name)
            if rec is None:
                continue  # image filtered out (view, split of a subset) or not in this label file
            if label in wanted:
                rec.boxes.append(Box(label, x, y, w, h))
        for rec in self.all_records:
            rec.box_frame = NIH_BOX_FRAME

    def _make_split(self) -> tuple[dict[str, str], dict]:
        names = [r.name for r in self.all_records]
        pids = [r.patient_id or r.name for r in self.all_records]
        lists = [self.root / n for n in OFFICIAL_LISTS]
        if all(p.is_file() for p in lists):
            return self._official_split(names, pids, lists)
        if any(p.is_file() for p in lists):
            present = [p.name for p in lists if p.is_file()]
            raise DataError(self.root, f"only {present} of the official split lists found",
                            expected="both train_val_list.txt and test_list.txt, or neither")
        assignment = seeded_patient_split(names, pids, test_fraction=self.test_fraction,
                                          val_fraction=self.val_fraction, seed=self.seed)
        return assignment, {"method": "seeded patient-disjoint", "seed": self.seed,
                            "test_fraction": self.test_fraction, "val_fraction": self.val_fraction,
                            "note": "official train_val_list.txt/test_list.txt not found in the root"}

    def _official_split(self, names: list[str], pids: list[str], lists: list[Path]) -> tuple[dict[str, str], dict]:
        present = set(names)
        skipped = {n for n, _ in self.skipped}
        membership: dict[str, str] = {}
        not_in_csv = 0
        for path, tag in zip(lists, ("train_val", "test"), strict=True):
            for line, name in read_name_list(path):
                if name in membership:
                    raise DataError(path, f"image {name!r} is in both official lists", row=line)
                membership[name] = tag
                if name not in present:
                    not_in_csv += 1
        all_names = {r.name for r in self.all_records}
        if not self.skip_bad and self.views is None:
            unknown = [n for n in membership if n not in all_names and n not in skipped]
            if unknown:
                raise DataError(lists[0] if membership[unknown[0]] == "train_val" else lists[1],
                                f"{len(unknown)} listed images are not in {self.label_file.name}, e.g. {unknown[0]!r}")
        pool = [(n, p) for n, p in zip(names, pids, strict=True) if membership.get(n) == "train_val"]
        val = carve_by_patient([n for n, _ in pool], [p for _, p in pool], self.val_fraction, self.seed, "val")
        assignment: dict[str, str] = {}
        for n in names:
            tag = membership.get(n)
            if tag == "test":
                assignment[n] = "test"
            elif tag == "train_val":
                assignment[n] = "val" if n in val else "train"
        test_patients = {p for n, p in zip(names, pids, strict=True) if assignment.get(n) == "test"}
        overlap = {p for n, p in zip(names, pids, strict=True) if assignment.get(n) in ("train", "val")} & test_patients
        return assignment, {"method": "official", "seed": self.seed, "val_fraction": self.val_fraction,
                            "validation": "seeded patient-disjoint carve-out of train_val_list.txt",
                            "split_files": [str(p) for p in lists], "unlisted": len(names) - len(assignment),
                            "listed_not_loaded": not_in_csv, "patient_overlap": len(overlap)}
