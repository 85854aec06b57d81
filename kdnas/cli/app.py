"""The ``kdnas`` command line: a thin typer layer over :mod:`kdnas.api`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from kdnas.cli.common import parse_key_values
from kdnas.utils.errors import KdnasError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="kdnas: NAS + knowledge distillation for compact saliency and chest X-ray models.")


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _parse_sets(pairs: list[str]) -> dict:
    return parse_key_values(pairs, "--set", "train.epochs=3")


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


def _options(pairs: list[str]) -> dict:
    return parse_key_values(pairs, "--option", "skip_bad=true")


@app.command()
def evaluate(run: Annotated[Path | None, typer.Argument(help="A kdnas run folder (its model is scored).")] = None,
             task: Annotated[str | None, typer.Option(help="saliency or cxr (default: the run's task).")] = None,
             predictions: Annotated[Path | None, typer.Option(help="saliency: a folder of precomputed maps, one PNG or NPY per stimulus name.")] = None,
             data: Annotated[Path | None, typer.Option(help="Dataset root to score against (default: the run's own data).")] = None,
             format: Annotated[str | None, typer.Option("--format", help="Dataset format: folder, salicon, mit1003, cat2000, pascal_s, osie, dut_omron, toronto, fiwi | nih, chexpert, padchest, csv.")] = None,
             split: Annotated[str | None, typer.Option(help="Split to score (default: test for runs, the whole dataset for --data).")] = None,
             preset: Annotated[str, typer.Option(help="saliency metric preset: mit, pysaliency or salicon.")] = "mit",
             metrics: Annotated[str | None, typer.Option(help="saliency: comma-separated metrics (default: the preset's).")] = None,
             baseline: Annotated[str | None, typer.Option(help="saliency IG baseline: uniform, train (centre bias from training fixations) or a .npy file.")] = None,
             subnet: Annotated[str | None, typer.Option(help="Supernet runs: max or min.")] = None,
             option: Annotated[list[str], typer.Option("--option", help="Loader option key=value (repeatable).")] = [],  # noqa: B006
             limit: Annotated[int | None, typer.Option(help="Score only the first N images.")] = None,
             n_boot: Annotated[int, typer.Option(help="cxr: bootstrap replicates for the 95% CIs.")] = 1000,
             compare: Annotated[Path | None, typer.Option(help="cxr: a second run, compared with a paired bootstrap.")] = None,
             labels: Annotated[str | None, typer.Option(help="cxr: comma-separated subset of the run's labels to score.")] = None,
             seed: Annotated[int, typer.Option(help="Seed of sampled metrics and bootstraps.")] = 0,
             out: Annotated[Path | None, typer.Option("--out", help="Output folder (summary JSON, per-image CSV, plots).")] = None) -> None:
    """Score saliency maps or a trained model against a dataset, with the protocol written out.

    Saliency: a run's model or a folder of maps (--predictions) against a dataset (--data, --format), scored at
    each stimulus' native resolution under a metric preset; writes OUT/per_image.csv and OUT/summary.json.
    CXR: per-label AUROC with 95% patient-bootstrap CIs, AP and ECE; writes JSON and a ROC plot.
    A run alone is re-scored on its own test split.
    """
    from kdnas import api

    try:
        if task is None:
            task = "saliency" if run is None else ("cxr" if api.load_run_config(run).task == "multilabel" else "saliency")
        if task not in ("saliency", "cxr"):
            raise KdnasError(f"--task must be saliency or cxr, got {task!r}")
        if task == "cxr":
            from kdnas.evaluation.cxr import evaluate_cxr, format_cxr_table

            if run is None:
                raise KdnasError("--task cxr needs a trained run to score")
            summary = evaluate_cxr(run=run, out=out or Path("kdnas_eval"), data=data, format=format,
                                   split=split or "test", options=_options(option), n_boot=n_boot, seed=seed,
                                   limit=limit, compare=compare, labels=labels.split(",") if labels else None)
            typer.echo(format_cxr_table(summary))
            return
        if predictions is None and data is None:
            if run is None:
                raise KdnasError("give a run, or --predictions/--data with --format")
            result = api.evaluate_run(run, split=split or "test", which=subnet)
            rows = result.pop("rows")
            if out is not None:
                from kdnas.utils.io import atomic_write_csv, atomic_write_json

                atomic_write_json(out / "summary.json", result)
                atomic_write_csv(out / "per_image.csv", rows)
            typer.echo(json.dumps(result, indent=2))
            return
        from kdnas.evaluation.saliency import evaluate_saliency, format_saliency_table

        summary = evaluate_saliency(data=data, format=format or "folder", out=out or Path("kdnas_eval"), split=split,
                                    predictions=predictions, run=run, subnet=subnet, preset=preset,
                                    metrics=metrics.split(",") if metrics else None, baseline=baseline,
                                    limit=limit, seed=seed, options=_options(option))
        typer.echo(format_saliency_table(summary))
    except KdnasError as exc:
        _fail(exc)


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


@app.command()
def search(run: Annotated[Path, typer.Argument(help="A kdnas run that trained a supernet.")],
           max_params: Annotated[float | None, typer.Option(help="Parameter limit (registered params), e.g. 5e6.")] = None,
           max_macs: Annotated[float | None, typer.Option(help="MACs limit at the subnet's working resolution, e.g. 1e8.")] = None,
           max_latency_ms: Annotated[float | None, typer.Option(help="Measured CPU latency limit (batch 1), ms.")] = None,
           population: Annotated[int, typer.Option(help="Initial population (min subnet + random feasible subnets).")] = 8,
           generations: Annotated[int, typer.Option(help="Evolution rounds (mutations + crossovers each).")] = 4,
           mutate_size: Annotated[int, typer.Option(help="Mutated children per generation.")] = 4,
           crossover_size: Annotated[int, typer.Option(help="Crossover children per generation.")] = 4,
           seed: Annotated[int, typer.Option(help="Search seed.")] = 0,
           out: Annotated[Path, typer.Option("--out", help="Output folder: search.json, best_arch.json, pareto.png.")] = Path("kdnas_search"),
           quiet: Annotated[bool, typer.Option("--quiet")] = False) -> None:
    """Evolutionary search for the best subnet of a trained supernet under params / MACs / latency limits.

    Each candidate is BN-recalibrated on training images and scored on the validation split; MACs are
    FlopCounterMode / 2 at the subnet's resolution (decoder included). best_arch.json works with
    `kdnas profile --model salnas --subnet best_arch.json` and as model.subnet in a config.
    """
    from kdnas.nas.search import Constraints, SearchConfig
    from kdnas.nas.search_run import search_run

    try:
        result = search_run(run, out, Constraints(None if max_params is None else int(max_params),
                                                  None if max_macs is None else int(max_macs), max_latency_ms),
                            SearchConfig(population=population, generations=generations, mutate_size=mutate_size,
                                         crossover_size=crossover_size, seed=seed),
                            latency=max_latency_ms is not None, progress=not quiet)
    except (KdnasError, ValueError) as exc:
        _fail(exc)
    typer.echo(json.dumps({"best": result["best"], "n_evaluated": result["n_evaluated"],
                           "pareto_front": [{"macs": c["costs"]["macs"], "params": c["costs"]["params"],
                                             "fitness": c["fitness"]} for c in result["pareto_front"]]}, indent=2))


@app.command()
def export(run: Annotated[Path, typer.Argument(help="A trained kdnas run.")],
           out: Annotated[Path, typer.Option("--out", help="Output folder: model.onnx, model.int8.onnx, export.json.")] = Path("kdnas_export"),
           subnet: Annotated[str | None, typer.Option(help="Supernet runs: max (default) or min.")] = None,
           int8: Annotated[bool, typer.Option("--int8/--no-int8", help="Also write a static INT8 (QDQ) model.")] = True,
           calib_images: Annotated[int, typer.Option(help="Training images used to calibrate INT8 ranges.")] = 64,
           runs: Annotated[int, typer.Option(help="Timed runs per runtime (batch 1).")] = 50,
           threads: Annotated[int | None, typer.Option(help="CPU threads for PyTorch and onnxruntime.")] = None) -> None:
    """Export to ONNX (float32 and INT8), verify with onnxruntime, re-score, and measure latency.

    Reports the largest PyTorch-vs-ONNX difference, the validation metrics of each runtime and the median /
    p90 latency of PyTorch eager, ORT float32 and ORT INT8 on the same batch-1 input.
    """
    from kdnas.export import export_run

    try:
        summary = export_run(run, out, subnet, int8, calib_images, runs=runs, threads=threads)
    except KdnasError as exc:
        _fail(exc)
    typer.echo(json.dumps({k: summary[k] for k in ("task", "input_shape", "parity_max_abs_diff_float32")} |
                          {name: {"latency_ms": r["latency"]["median_ms"], "metrics": r["metrics"]}
                           for name, r in summary["results"].items()}, indent=2))


def _add_subcommands() -> None:
    from kdnas.cli.data_cmd import data_app

    app.add_typer(data_app, name="data", help="Inspect datasets.")
    from kdnas.cli.explain_cmd import explain

    app.command(name="explain")(explain)


_add_subcommands()


def main() -> None:
    try:
        app()
    except KdnasError as exc:  # errors raised outside a command's own handler
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
