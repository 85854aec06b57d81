"""Error types with messages that name the offending file, row, column or config field."""

from __future__ import annotations

from pathlib import Path


class KdnasError(Exception):
    """Base class for user-facing kdnas errors (bad input, bad config)."""


class DataError(KdnasError, ValueError):
    """A data file is missing, corrupt or malformed.

    The message always names the file and, where it applies, the row and column.
    """

    def __init__(self, path: str | Path | None, problem: str, *, row: int | None = None,
                 column: str | None = None, expected: str | None = None):
        self.path = None if path is None else Path(path)
        self.problem = problem
        self.row = row
        self.column = column
        self.expected = expected
        where = [] if path is None else [str(path)]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        msg = (": ".join([", ".join(where), problem]) if where else problem)
        if expected:
            msg += f" (expected {expected})"
        super().__init__(msg)


class ConfigError(KdnasError, ValueError):
    """A configuration file or option is invalid."""
