"""The ``kdnas`` command line: a thin typer layer over :mod:`kdnas.api`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from kdnas.utils.errors import KdnasError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="kdnas: NAS + knowledge distillation for compact saliency and chest X-ray models.")


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _parse_sets(pairs: list[str]) -> dict:
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise KdnasError(f"--set expects key=value (dotted keys, e.g. train.epochs=3), got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


@app.command()
def demo(out: Annotated[Path, typer.Option("--out", help="Output folder (summary.json, report.md, plots/).")] = Path("kdnas_demo"),
         tiny: Annotated[bool, typer.Option("--tiny", help="A much smaller demo (about a minute), for smoke tests.")] = False,
         quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False) -> None:
    """Train and distil both tasks on the built-in synthetic data and write a report.

    Saliency: a reduced-width SalNAS supernet with the sandwich rule and Self-KD; its max and min
    subnets are extracted and scored. CXR: a timm teacher distilled into EEEA-Net-C2, compared with the
    same student trained without KD. Rerunning with the same --out resumes a killed demo.
    """
    from kdnas.demo import run_demo

    try:
        summary = run_demo(out, tiny=tiny, progress=not quiet)
    except KdnasError as exc:
        _fail(exc)
    typer.echo(json.dumps({"saliency": {k: {m: summary["saliency"][k][m] for m in ("CC", "KLD", "NSS", "SIM", "AUC_Judd")}
                                        for k in ("max", "min")},
                           "cxr": {k: summary["cxr"][k] for k in ("teacher_auc", "student_kd_auc", "student_nokd_auc")}},
                          indent=2))


@app.command()
def train(config: Annotated[str, typer.Argument(help="Experiment YAML (or the name of a shipped config, e.g. salnas_tiny).")],
          out: Annotated[Path | None, typer.Option("--out", help="Run folder (default: the config's output_dir).")] = None,
          resume: Annotated[bool, typer.Option("--resume", help="Continue the run in the output folder from its last checkpoint.")] = False,
          set_: Annotated[list[str], typer.Option("--set", help="Override a config value: --set train.epochs=3 (repeatable).")] = [],  # noqa: B006
          quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False) -> None:
    """Train one experiment (saliency supernet/subnet or multi-label classifier, with or without KD).

    Works under `torchrun --nproc_per_node N kdnas train CONFIG` for data-parallel training.
    """
    from kdnas import api

    try:
        summary = api.train(config, out_dir=out, resume=resume, overrides=_parse_sets(set_), progress=not quiet)
    except KdnasError as exc:
        _fail(exc)
    from kdnas.train.distributed import is_main

    if is_main():
        typer.echo(json.dumps({k: summary[k] for k in ("name", "task", "best_epoch", "eval_split")} |
                              {"metrics": {w: {m: v for m, v in e["metrics"].items() if isinstance(v, (int, float))}
                                           for w, e in summary["models"].items()}}, indent=2))


@app.command()
def evaluate(run: Annotated[Path, typer.Argument(help="A kdnas run folder.")],
             split: Annotated[str, typer.Option(help="Split to score: test, val or train.")] = "test",
             subnet: Annotated[str | None, typer.Option(help="Supernet runs: max or min.")] = None,
             out: Annotated[Path | None, typer.Option("--out", help="Write metrics JSON and per-image CSV here.")] = None) -> None:
    """Score a trained run's model on one of its splits with its training protocol."""
    from kdnas import api

    try:
        result = api.evaluate_run(run, split=split, which=subnet)
    except KdnasError as exc:
        _fail(exc)
    rows = result.pop("rows")
    if out is not None:
        from kdnas.train.trainer import Trainer
        from kdnas.utils.io import atomic_write_json

        atomic_write_json(out / "summary.json", result)
        Trainer._write_rows(out / "per_image.csv", rows)
    typer.echo(json.dumps(result, indent=2))


@app.command()
def predict(run: Annotated[Path, typer.Argument(help="A kdnas run folder.")],
            inputs: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
            out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("predictions"),
            subnet: Annotated[str | None, typer.Option(help="Supernet runs: max (default) or min.")] = None) -> None:
    """Saliency maps and overlays (saliency runs), or per-label probabilities (CXR runs), for your images."""
    from kdnas import api
    from kdnas.predict import collect_images, predict_cxr, predict_saliency

    try:
        model, task = api.load_model(run, subnet)
        images = collect_images(inputs)
        fn = predict_saliency if task.name == "saliency" else predict_cxr
        results = fn(model, task, images, out)
    except KdnasError as exc:
        _fail(exc)
    typer.echo(json.dumps(results, indent=2))


@app.command()
def profile(model: Annotated[str, typer.Option(help="eeea_c2, salnas, salnas_supernet or any timm model name.")],
            num_classes: Annotated[int | None, typer.Option(help="Classifier size (classification models).")] = None,
            subnet: Annotated[str | None, typer.Option(help="salnas: max, min or a genome JSON/YAML file.")] = None,
            space: Annotated[str | None, typer.Option(help="salnas: search space name or YAML (default: salnas).")] = None,
            input_size: Annotated[tuple[int, int] | None, typer.Option(help="H W (default: the model's working resolution).")] = None,
            in_chans: Annotated[int, typer.Option(help="Input channels (classification models).")] = 3,
            latency: Annotated[bool, typer.Option(help="Also measure CPU latency (batch 1, median of 20 runs).")] = False,
            as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Parameters and MACs of a model.

    params: every registered parameter; params_effective: without weights no forward path uses (the
    SalNAS reference's identity-shortcut 1x1 weights). macs: multiply-accumulates of one batch-1 forward
    pass at the working resolution, counted by torch.utils.flop_counter.FlopCounterMode (FLOPs / 2):
    convolutions (incl. SE), linear layers and matmuls; BN, activations, pooling and interpolation count 0.
    """
    from kdnas import api

    try:
        stats = api.profile(model, num_classes, subnet, space, input_size, in_chans, latency)
    except KdnasError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
    else:
        typer.echo(f"{model}: {stats['params']:,} params ({stats['params_effective']:,} effective), "
                   f"{stats['macs'] / 1e6:,.1f} M MACs at {stats['input_size']}")


def _add_subcommands() -> None:
    try:
        from kdnas.cli.data_cmd import data_app
    except ImportError:
        return
    app.add_typer(data_app, name="data", help="Inspect datasets.")


_add_subcommands()


def main() -> None:
    try:
        app()
    except KdnasError as exc:  # errors raised outside a command's own handler
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
