"""``kdnas explain``: CAM heatmaps for a trained CXR run, and their scores against boxes.

The lead registers :func:`explain` on the main typer app (``app.command()(explain)``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kdnas.utils.errors import KdnasError


def _split_labels(values: list[str] | None) -> list[str] | None:
    """``--labels Mass,Nodule --labels Effusion`` -> ["Mass", "Nodule", "Effusion"]."""
    if not values:
        return None
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return out or None


def explain(
    run: Annotated[Path, typer.Argument(help="A trained kdnas chest X-ray (multilabel) run folder.")],
    inputs: Annotated[list[Path] | None, typer.Argument(help="Radiographs or folders of them to explain.")] = None,
    method: Annotated[str, typer.Option(help="gradcam, gradcam++, xgradcam, layercam, hirescam, scorecam or eigencam.")] = "gradcam",
    labels: Annotated[list[str] | None, typer.Option("--labels", help="Labels to explain, comma-separated or repeated (default: all).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("explanations"),
    evaluate: Annotated[bool, typer.Option("--evaluate", help="Score the heatmaps against the run dataset's boxes (pointing game, IoU, ROAD, ...).")] = False,
    split: Annotated[str, typer.Option(help="--evaluate: the split to score (test or val; training images are always excluded).")] = "test",
    limit: Annotated[int | None, typer.Option(help="--evaluate: score at most N images with boxes.")] = None,
    teacher: Annotated[Path | None, typer.Option(help="--evaluate: a teacher run; adds its scores and teacher-student heatmap agreement.")] = None,
    target_layer: Annotated[str, typer.Option(help="CAM target layer: auto or a module path in the backbone (e.g. layer4, blocks.11.norm1).")] = "auto",
    teacher_target_layer: Annotated[str, typer.Option(help="--teacher: the teacher's CAM target layer (auto or a module path).")] = "auto",
    tolerance: Annotated[float, typer.Option(help="--evaluate: pointing-game tolerance in pixels of the run's input size (0 = strict).")] = 0.0,
    threshold: Annotated[list[str] | None, typer.Option("--threshold", help="--evaluate: heatmap binarisation for IoU: 0.5max (share of the max) or top10% (repeatable).")] = None,
    road: Annotated[bool, typer.Option("--road/--no-road", help="--evaluate: ROAD (slowest metric: one sparse solve per pair and percentile).")] = True,
    faithfulness: Annotated[bool, typer.Option("--faithfulness/--no-faithfulness", help="--evaluate: ROAD and confidence drop.")] = True,
    batch_size: Annotated[int, typer.Option(help="Images per CAM batch.")] = 8,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
) -> None:
    """Heatmaps for every label of your radiographs (overlay PNGs + raw .npy maps), or with
    --evaluate, their scores against the boxes of the run's dataset (explain_scores.json/.csv).

    Multi-label: each class map explains that class's logit (ClassifierOutputTarget), all classes
    of a batch in one vectorised pass. The target layer (and the ViT/Swin token reshape) is chosen
    automatically for timm CNNs, ViT, Swin and EEEA-Net-C2.
    """
    from kdnas.explain.cams import method_name

    try:
        method = method_name(method)
        wanted = _split_labels(labels)
        if not evaluate and not inputs:
            raise KdnasError("nothing to do: give images or folders to explain, or --evaluate to score the "
                             "run's heatmaps against its dataset's boxes")
        if evaluate:
            _evaluate(run, method, wanted, out, split, limit, teacher, target_layer, teacher_target_layer,
                      tolerance, threshold, road, faithfulness, batch_size, device)
        if inputs:
            _explain_inputs(run, inputs, method, wanted, out, target_layer, batch_size, device)
    except KdnasError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _coarse_note(protocol: dict) -> None:
    """Warn when the target layer's map is too coarse to localise anything (e.g. 2 x 2 at 64 px)."""
    grid = protocol.get("cam_grid")
    if grid and min(grid) < 4:
        typer.secho(f"note: the target layer {protocol['target_layer']} gives a {grid[0]}x{grid[1]} map at this "
                    "input size; maps this coarse cannot localise small findings. Try a shallower layer with "
                    "--target-layer (EEEA-Net-C2: blocks.14 or blocks.6; ResNets: layer3).",
                    fg=typer.colors.YELLOW, err=True)


def _explain_inputs(run: Path, inputs: list[Path], method: str, labels: list[str] | None, out: Path,
                    target_layer: str, batch_size: int, device: str) -> None:
    from kdnas.explain.overlays import explain_images
    from kdnas.explain.runs import check_labels, load_cxr_run
    from kdnas.predict import collect_images

    student, _ = load_cxr_run(run, device, target_layer)
    labels = check_labels(labels, student.label_names)
    images = collect_images(inputs)
    manifest = explain_images(student.model, student.label_names, student.input_size, images, out, method,
                              labels, target_layer, batch_size)
    _coarse_note(manifest["protocol"])
    typer.echo(json.dumps({"images": len(manifest["images"]), "labels": manifest["images"][0]["labels"],
                           "method": manifest["protocol"]["method"],
                           "target_layer": manifest["protocol"]["target_layer"], "out": str(out),
                           "manifest": str(out / "explanations.json")}, indent=2))


def _evaluate(run: Path, method: str, labels: list[str] | None, out: Path, split: str, limit: int | None,
              teacher: Path | None, target_layer: str, teacher_target_layer: str, tolerance: float,
              thresholds: list[str] | None, road: bool, faithfulness: bool, batch_size: int, device: str) -> None:
    from kdnas.explain.evaluate import format_table, write_scores
    from kdnas.explain.faithfulness import ROAD_PERCENTILES
    from kdnas.explain.localization import threshold_spec
    from kdnas.explain.runs import evaluate_run

    specs = thresholds or ["0.5max"]
    for spec in specs:
        threshold_spec(spec)  # a bad spec fails before any model runs
    result = evaluate_run(run, split=split, method=method, teacher_dir=teacher, labels=labels, limit=limit,
                          target_layer=target_layer, teacher_target_layer=teacher_target_layer,
                          tolerance=tolerance, thresholds=specs,
                          road_percentiles=ROAD_PERCENTILES if road else None, faithfulness=faithfulness,
                          batch_size=batch_size, device=device)
    files = write_scores(result, out)
    _coarse_note(result["protocol"])
    typer.echo(format_table(result))
    typer.echo(f"scores: {files['json']}, {files['csv']} (per pair: {files['pairs']})")
