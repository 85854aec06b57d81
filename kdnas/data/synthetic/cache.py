"""The on-disk cache of the built-in synthetic datasets.

A set lives in ``<cache>/builtin/<kind>-<hash of params + generator version>`` (cache: the
``cache_dir`` argument, else ``$KDNAS_CACHE``, else ``~/.cache/kdnas``). It is generated into a private
temporary folder and renamed into place, so a reader never sees half a set; a process that loses a
race to another uses the winner's identical copy. ``dataset.json`` (written last by the generators)
marks a complete set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kdnas.utils.errors import DataError


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("KDNAS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kdnas"


def cached_dataset(kind: str, params: dict[str, Any], version: Any, generate: Callable[[Path], Any],
                   cache_dir: str | Path | None = None) -> Path:
    """The cached set for ``params``, running ``generate(folder)`` on first use."""
    key = json.dumps({"v": version, **params}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    base = cache_root(cache_dir) / "builtin"
    final = base / f"{kind}-{digest}"
    if (final / "dataset.json").is_file():
        return final
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=base))
    try:
        generate(tmp / "set")
        try:
            os.rename(tmp / "set", final)
        except OSError:
            if not (final / "dataset.json").is_file():
                raise DataError(final, "cache folder exists but is incomplete (no dataset.json)",
                                expected="delete it so that it can be regenerated") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
