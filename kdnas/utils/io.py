"""Atomic file output and safe loading.

Nothing kdnas writes is left half-written: every writer goes to a temporary file in the
same directory, fsyncs it and renames it over the target (atomic on POSIX and Windows).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path; on success it is renamed to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the usual permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays and paths show up in metric dicts and configs
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any, indent: int | None = 2) -> str:
    return json.dumps(obj, indent=indent, default=_json_default, allow_nan=True)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, to_json(obj, indent) + "\n")


def atomic_write_csv(path: str | Path, rows: list[dict[str, Any]], fieldnames: list[str] | None = None) -> None:
    """Rows of dicts as CSV; the columns default to the union of the rows' keys, in first-seen order."""
    import csv
    import io

    if fieldnames is None:
        fieldnames = []
        for row in rows:
            fieldnames += [k for k in row if k not in fieldnames]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def atomic_save(path: str | Path, writer: Callable[[Path], None], suffix: str = "") -> None:
    """Run ``writer(tmp_path)`` (e.g. ``fig.savefig``) and move the result into place atomically."""
    with atomic_path(path, suffix=suffix) as tmp:
        writer(tmp)


def safe_torch_load(path: str | Path, map_location: str = "cpu") -> Any:
    """Load a PyTorch file without unpickling arbitrary objects (``weights_only=True``).

    ``.safetensors`` files are read with safetensors.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        from kdnas.utils.errors import DataError

        raise DataError(path, "file not found", expected="a .pt/.pth/.safetensors weight file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=map_location)
    return torch.load(path, map_location=map_location, weights_only=True)
