"""Patient-disjoint, seeded splits that do not depend on row order.

Each patient gets a pseudo-random rank from a hash of (seed, salt, patient id); patients
are taken in rank order until the split holds its share of *images*. The same patient
always lands in the same split for a given seed, whatever other rows the file holds, and
no patient is ever in two splits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from kdnas.utils.errors import ConfigError, DataError
from kdnas.utils.io import atomic_write_text

SPLITS = ("train", "val", "test")


def _rank(seed: int, salt: str, key: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x1f{salt}\x1f{key}".encode(), digest_size=8).digest()


def check_fraction(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be in [0, 1), got {value}")
    return value


def carve_by_patient(names: Sequence[str], patients: Sequence[str], fraction: float, seed: int,
                     salt: str) -> set[str]:
    """Names of the images of the patients picked for a share ``fraction`` of the images."""
    if fraction <= 0 or not names:
        return set()
    by_patient: dict[str, list[str]] = {}
    for name, pid in zip(names, patients, strict=True):
        by_patient.setdefault(pid, []).append(name)
    order = sorted(by_patient, key=lambda p: (_rank(seed, salt, p), p))
    target = fraction * len(names)
    picked: set[str] = set()
    for pid in order:
        if len(picked) >= target:
            break
        # take the patient if that brings the count closer to the target (never overshoots wildly)
        group = by_patient[pid]
        if len(picked) + len(group) - target > target - len(picked) and picked:
            continue
        picked.update(group)
    return picked


def seeded_patient_split(names: Sequence[str], patients: Sequence[str], *, test_fraction: float,
                         val_fraction: float, seed: int) -> dict[str, str]:
    """Assign every image to train/val/test, patient-disjoint.

    ``test_fraction`` is a share of all images; ``val_fraction`` a share of what remains
    (the train+val pool), the same meaning as the carve-out from an official train list.
    """
    test = carve_by_patient(names, patients, test_fraction, seed, "test")
    pool = [(n, p) for n, p in zip(names, patients, strict=True) if n not in test]
    val = carve_by_patient([n for n, _ in pool], [p for _, p in pool], val_fraction, seed, "val")
    return {n: ("test" if n in test else "val" if n in val else "train") for n in names}


def split_summary(assignment: dict[str, str], patients: dict[str, str]) -> dict[str, dict[str, int]]:
    """Image and patient counts per split."""
    sizes = dict.fromkeys(SPLITS, 0)
    pats: dict[str, set[str]] = {s: set() for s in SPLITS}
    for name, split in assignment.items():
        sizes[split] = sizes.get(split, 0) + 1
        pats.setdefault(split, set()).add(patients.get(name, name))
    return {"images": sizes, "patients": {s: len(v) for s, v in pats.items()}}


def read_name_list(path: Path) -> list[tuple[int, str]]:
    """Non-empty lines of an image list file (``train_val_list.txt``) with their line numbers."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read split list ({exc})", expected="one image name per line") from exc
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


def write_split_csv(path: str | Path, rows: Sequence[tuple[str, str, str]]) -> None:
    """Write ``image,patient,split`` rows atomically (the released form of a split)."""
    lines = ["image,patient,split"] + [f"{n},{p},{s}" for n, p, s in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_split_csv(path: str | Path) -> dict[str, str]:
    """Read a split written by :func:`write_split_csv` (columns ``image`` and ``split``)."""
    from kdnas.data.cxr.tables import read_table

    table = read_table(path)
    table.require(["image", "split"])
    i_name, i_split = table.index("image"), table.index("split")
    out: dict[str, str] = {}
    for line, row in zip(table.lines, table.rows, strict=True):
        split = row[i_split].strip()
        if split not in SPLITS:
            raise DataError(table.path, f"unknown split {split!r}", row=line, column="split",
                            expected="train, val or test")
        out[row[i_name].strip()] = split
    return out
