"""CSV label files as plain tables, with errors that name the file, row and column.

Row numbers in errors are **file line numbers** (the header is row 1), i.e. what a user
sees in an editor. Bracketed header names that contain commas (NIH
``OriginalImage[Width,Height]``) are rejoined into one logical column spanning several
fields, and trailing empty header fields (NIH ``BBox_List_2017.csv``) are dropped.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kdnas.utils.errors import DataError


def open_text(path: Path) -> io.TextIOBase:
    """Open a ``.csv`` or ``.csv.gz`` file as text (UTF-8, BOM tolerated)."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _logical_header(fields: list[str]) -> tuple[list[str], list[int]]:
    """Rejoin ``Name[a`` ``b]`` into ``Name[a,b]``; returns names and their field spans."""
    names: list[str] = []
    spans: list[int] = []
    i = 0
    while i < len(fields):
        name, span = fields[i].strip(), 1
        if "[" in name and "]" not in name:
            j = i + 1
            while j < len(fields) and "]" not in fields[j]:
                j += 1
            if j < len(fields):  # a closing bracket exists: merge the pieces
                name = ",".join(f.strip() for f in fields[i:j + 1])
                span = j - i + 1
        names.append(name)
        spans.append(span)
        i += span
    while names and names[-1] == "" and spans[-1] == 1 and len(names) > 1:
        names.pop()  # trailing empty header fields (e.g. 'Bbox [x,y,w,h],,,')
        spans.pop()
    return names, spans


@dataclass
class Table:
    """A parsed CSV: logical ``columns``, physical ``start`` index per column, data ``rows``.

    ``lines[i]`` is the file line number of ``rows[i]``; ``bad_rows`` lists (line, reason) for rows
    with a wrong number of fields when the table was read with ``skip_bad=True``.
    """

    path: Path
    columns: list[str]
    start: dict[str, int]
    width: int
    rows: list[list[str]]
    lines: list[int]
    bad_rows: list[tuple[int, str]] = field(default_factory=list)

    def require(self, names: Iterable[str], what: str = "") -> None:
        """Raise naming the first missing required column and listing the columns found."""
        for name in names:
            if name not in self.start:
                found = ", ".join(repr(c) for c in self.columns)
                raise DataError(self.path, f"required column {name!r} is missing{what}; columns found: {found}",
                                row=1, column=name)

    def index(self, name: str) -> int:
        return self.start[name]

    def get(self, name: str) -> int | None:
        return self.start.get(name)


def read_table(path: str | Path, *, skip_bad: bool = False, min_fields: int | None = None) -> Table:
    """Read a CSV (optionally gzipped) into a :class:`Table`.

    Every data row must have as many fields as the header (after rejoining bracketed
    names); extra fields are accepted only when empty. ``min_fields`` lowers the
    requirement (a header with trailing empty fields, rows without them).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "label file not found", expected="a CSV file (.csv or .csv.gz)")
    try:
        with open_text(path) as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                raise DataError(path, "file is empty", row=1, expected="a header line") from None
            names, spans = _logical_header(header)
            width = sum(spans)
            need = width if min_fields is None else min(width, min_fields)
            start: dict[str, int] = {}
            pos = 0
            for name, span in zip(names, spans, strict=True):
                start.setdefault(name, pos)
                pos += span
            rows: list[list[str]] = []
            lines: list[int] = []
            bad: list[tuple[int, str]] = []
            for row in reader:
                n = len(row)
                if n != width:
                    if n == 0 or (n == 1 and not row[0].strip()):
                        continue  # blank line
                    if n < need or any(f.strip() for f in row[width:]):
                        reason = f"has {n} fields, expected {width} (columns: {', '.join(names)})"
                        if not skip_bad:
                            raise DataError(path, reason, row=reader.line_num)
                        bad.append((reader.line_num, reason))
                        continue
                    row = (row + [""] * (width - n))[:width]
                rows.append(row)
                lines.append(reader.line_num)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(path, f"unreadable or corrupt CSV ({type(exc).__name__}: {exc})",
                        expected="a UTF-8 CSV file (.csv or .csv.gz)") from exc
    return Table(path, names, start, width, rows, lines, bad)
