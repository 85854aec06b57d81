"""``kdnas data ...`` commands: inspect datasets without training anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kdnas.cli.common import parse_key_values
from kdnas.utils.errors import KdnasError

data_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Inspect datasets.")


@data_app.callback()
def _group() -> None:
    """Inspect datasets (keeps ``data`` a command group even with a single sub-command)."""


def _options(pairs: list[str]) -> dict:
    return parse_key_values(pairs, "--option", "views=[PA] or skip_bad=true")


@data_app.command()
def summary(root: Annotated[Path, typer.Option("--root", help="Dataset folder (for --format csv: the CSV file).")],
            task: Annotated[str, typer.Option("--task", help="Dataset family (cxr).")] = "cxr",
            format: Annotated[str, typer.Option("--format", help="nih | chexpert | padchest | csv")] = "nih",
            option: Annotated[list[str], typer.Option("--option", help="Loader option key=value (repeatable).")] = [],  # noqa: B006
            ) -> None:
    """Print a JSON summary: image count, per-label positives, split sizes, boxes per finding."""
    from kdnas.utils.io import to_json

    if task != "cxr":
        typer.secho(f"error: --task {task!r} is not supported here (valid: cxr)", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    from kdnas.data.cxr.registry import dataset_summary

    try:
        result = dataset_summary(root, format, **_options(option))
    except KdnasError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(to_json(result))
