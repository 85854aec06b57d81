"""Helpers shared by the CLI command modules."""

from __future__ import annotations

from typing import Any

from kdnas.utils.errors import KdnasError


def parse_key_values(pairs: list[str], flag: str, example: str) -> dict[str, Any]:
    """``["a.b=3", "views=[PA]"]`` -> ``{"a.b": 3, "views": ["PA"]}``; values are parsed as YAML."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise KdnasError(f"{flag} expects key=value (e.g. {example}), got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out
