"""Readable pydantic validation errors: a typo names the field and lists the valid keys."""

from __future__ import annotations

import typing

from pydantic import BaseModel


def _model_classes(annotation) -> list[type[BaseModel]]:
    """BaseModel classes reachable from a field annotation (Optional, list, dict, Union...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_model_classes(arg))
    return found


def _model_at(root: type[BaseModel], path: tuple) -> type[BaseModel] | None:
    current: type[BaseModel] | None = root
    for part in path:
        if current is None:
            return None
        if isinstance(part, int) or part not in current.model_fields:
            continue  # list index or a union tag: stay on the current model
        classes = _model_classes(current.model_fields[part].annotation)
        current = classes[0] if classes else None
    return current


def format_validation_error(exc: Exception, source: str, root: type[BaseModel]) -> str:
    errors = getattr(exc, "errors", None)
    if errors is None:
        return f"{source}: {exc}"
    lines = [f"invalid configuration in {source}:"]
    for err in errors():
        loc = tuple(err.get("loc", ()))
        dotted = ".".join(str(p) for p in loc) or "<root>"
        if err.get("type") == "extra_forbidden":
            model = _model_at(root, loc[:-1])
            valid = sorted(model.model_fields) if model is not None else []
            parent = ".".join(str(p) for p in loc[:-1]) or "top level"
            lines.append(f"  unknown key {str(loc[-1])!r} in {parent}; valid keys: {', '.join(valid)}")
        elif err.get("type") == "missing":
            lines.append(f"  missing required key {dotted!r}")
        else:
            got = err.get("input")
            got_s = repr(got)
            if len(got_s) > 60:
                got_s = got_s[:57] + "..."
            lines.append(f"  {dotted}: {err.get('msg')} (got {got_s})")
    return "\n".join(lines)
