"""Saliency evaluation at native resolution (``kdnas evaluate --task saliency``).

Scores a folder of maps (one ``NAME.png``/``.npy``/``.jpg`` per stimulus name) or a trained run's
model against a dataset of :func:`kdnas.data.saliency.open_saliency_dataset`. Every number comes
from the metric engine (``score_sample`` through :class:`SaliencyEvaluator`): the prediction is
resized to the stimulus' native size with the preset's interpolation; the ground truth is the
dataset density or the preset's blur of the 0-based fixations, never a resized map (salnas.md D3,
D11). Outputs (atomic): ``out/per_image.csv`` and ``out/summary.json`` (means, spread, protocol,
data and prediction source, warnings; NaN written as ``null``).

``options``: loader options, plus the evaluation keys ``judd_jitter`` (bool), ``interpolation``
(a mode of ``resize_prediction``), ``gt_source`` (auto/density/fixations), ``sauc_other_images``
(M, 0 = all), ``split_seed`` (standard splits, default 42), ``baseline_log_density`` (bool, for a
``.npy`` baseline) and ``device`` (model inference, default cpu).
"""

from __future__ import annotations

import csv
import inspect
import io
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from kdnas.data.saliency.common import find_stimuli
from kdnas.metrics.saliency import (
    DEFAULT_EVAL_METRICS,
    INTERPOLATION_DESCRIPTIONS,
    INTERPOLATION_MODES,
    KNOWN,
    SaliencyEvaluator,
    center_bias_from_fixations,
    get_preset,
    gt_description,
    load_center_bias,
    other_image_fixations,
)
from kdnas.utils.errors import ConfigError, DataError
from kdnas.utils.io import atomic_write_json, atomic_write_text

PER_IMAGE_NAME, SUMMARY_NAME = "per_image.csv", "summary.json"
PREDICTION_SUFFIXES = (".png", ".npy", ".jpg", ".jpeg")
EVAL_OPTIONS = ("judd_jitter", "interpolation", "gt_source", "sauc_other_images", "split_seed",
                "baseline_log_density", "device")
GT_SOURCES = ("auto", "density", "fixations")
# a prediction whose aspect ratio differs from its stimulus' by more than this is stretched: warn
ASPECT_TOLERANCE = 0.01
# colour channels of a "grey" RGB map may differ by JPEG noise; more than this means a colour image
GREY_CHANNEL_TOLERANCE = 3


# -- options, metrics ---------------------------------------------------------------------------
def _split_options(options: dict | None, format_key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(evaluation options, loader options)``; unknown keys are a ConfigError listing both kinds."""
    from kdnas.data.saliency import SALIENCY_FORMATS

    options = dict(options or {})
    ev = {k: options.pop(k) for k in EVAL_OPTIONS if k in options}
    params = inspect.signature(SALIENCY_FORMATS[format_key].__init__).parameters
    loader_keys = sorted(n for n in params if n not in ("self", "root", "split", "seed"))
    unknown = sorted(set(options) - set(loader_keys))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for saliency evaluation of format {format_key!r}; "
                          f"evaluation options: {list(EVAL_OPTIONS)}; loader options: {loader_keys}")
    for key, value in ev.items():
        if key in ("judd_jitter", "baseline_log_density") and not isinstance(value, bool):
            raise ConfigError(f"option {key} must be true or false, got {value!r}")
        choices = {"interpolation": INTERPOLATION_MODES, "gt_source": GT_SOURCES}.get(key)
        if choices and value not in choices:
            raise ConfigError(f"option {key}={value!r} is not one of {list(choices)}")
        if key in ("sauc_other_images", "split_seed") and (type(value) is not int or value < 0):
            raise ConfigError(f"option {key} must be an integer >= 0, got {value!r}")
    return ev, options


def _resolve_metrics(metrics: list[str] | None, baseline: str | None) -> tuple[list[str], list[str]]:
    """Metric names in the engine's spelling, and notes on metrics left out of the defaults."""
    notes: list[str] = []
    if metrics is None:
        chosen = list(DEFAULT_EVAL_METRICS)
        if baseline is None:
            chosen.remove("IG")
            notes.append("IG not scored: no baseline given (baseline='uniform', 'train' or a .npy centre bias)")
        return chosen, notes
    lookup = {m.lower(): m for m in KNOWN}
    chosen = []
    for raw in metrics:
        name = lookup.get(str(raw).strip().lower())
        if name is None:
            raise ConfigError(f"unknown saliency metric {raw!r}; choose from {list(KNOWN)}")
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise ConfigError(f"no metrics given; choose from {list(KNOWN)}")
    if "IG" in chosen and baseline is None:
        raise ConfigError("metric IG needs a baseline: pass baseline='uniform', 'train' (centre bias of the "
                          "training fixations) or a .npy centre-bias file")
    if baseline is not None and "IG" not in chosen:
        notes.append(f"baseline {baseline!r} given but IG not among the requested metrics: not used")
    return chosen, notes


# -- predictions ----------------------------------------------------------------------------------
def _index_predictions(folder: Path) -> dict[str, Path]:
    """Stimulus name (path below ``folder`` without suffix, '/'-separated) -> map file."""
    return find_stimuli(folder, recursive=True, suffixes=PREDICTION_SUFFIXES, what="predictions",
                        expected="a folder with one map per stimulus: NAME.png (8/16-bit grey), NAME.npy or NAME.jpg")


def read_prediction_map(path: Path, name: str) -> np.ndarray:
    """A prediction file as a 2-D float64 map (grey levels as stored; every preset normalises).

    ``.npy``: a finite 2-D numeric array (singleton axes are dropped). Images: 8/16-bit grey,
    or RGB whose channels agree (a grey map saved in colour); colour images are refused.
    """
    from PIL import Image, UnidentifiedImageError

    from kdnas.data.saliency.common import read_grey

    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(path, f"unreadable .npy prediction ({exc})",
                            expected="a 2-D float array saved with numpy.save") from exc
        arr = np.squeeze(arr) if arr.ndim > 2 else arr
        if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise DataError(path, f"prediction has shape {arr.shape} and dtype {arr.dtype}",
                            expected="a 2-D numeric H x W map")
        arr = arr.astype(np.float64)
    else:
        try:
            with Image.open(path) as img:
                mode = img.mode
                rgb = np.asarray(img.convert("RGB"), dtype=np.int16) if mode in ("RGB", "RGBA", "P", "CMYK") else None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DataError(path, f"unreadable or truncated prediction image ({exc})",
                            expected="an 8/16-bit grey PNG or JPEG") from exc
        if rgb is not None and int(np.abs(np.diff(rgb, axis=2)).max(initial=0)) > GREY_CHANNEL_TOLERANCE:
            raise DataError(path, f"prediction is a colour image (mode {mode}), e.g. an overlay",
                            expected="a grey saliency map (8/16-bit grey PNG, JPEG or .npy)")
        arr = read_grey(path, what="prediction").astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(arr[row, col]) else "infinite"
        raise DataError(path, f"prediction for stimulus {name!r} holds {int(bad.sum())} non-finite values "
                        f"(first: {kind} at row {row}, column {col})", expected="finite values")
    return arr


class _ModelPredictor:
    """A run's model with its own preprocessing and post-blur (as :func:`kdnas.predict.predict_saliency`).

    The map is returned at the model's target size; scoring resizes it with the preset's
    interpolation to the stimulus size.
    """

    def __init__(self, run: Path, subnet: str | None, device: str):
        from kdnas.api import load_model

        self.run = Path(run)
        if not self.run.is_dir():
            raise DataError(self.run, "run directory not found", expected="a kdnas run folder (config.yaml, ...)")
        self.model, self.task = load_model(self.run, subnet, device=device)
        if getattr(self.task, "name", None) != "saliency":
            raise ConfigError(f"run {self.run} is a {getattr(self.task, 'name', '?')!r} run; "
                              "--task saliency needs a saliency run")
        self.meta = self.task.metadata()
        # load_model's default: the max subnet of a supernet run, the best checkpoint of a static run
        self.subnet = subnet or ("max" if any((self.run / "subnets").glob("*.json")) else "best checkpoint")

    def predict(self, image: np.ndarray, name: str) -> np.ndarray:
        from kdnas.predict import saliency_model_map

        out = saliency_model_map(self.model, self.task, image).double().cpu().numpy()
        if not np.isfinite(out).all():
            raise DataError(self.run, f"the model's prediction for stimulus {name!r} holds NaN or infinite values",
                            expected="finite model outputs")
        return out

    def describe(self) -> dict[str, Any]:
        m = self.meta
        return {"source": "run", "run": str(self.run), "subnet": self.subnet,
                "input_size": list(m["input_size"]), "output_size": list(m["target_size"]),
                "normalize": m["normalize"], "input_resize": "bilinear, antialiased, align_corners=False",
                "post_blur": (f"gaussian sigma {m['blur_sigma']:g} px at the output size, kernel "
                              f"{m.get('blur_kernel') or 'auto'}") if m.get("blur_sigma") else "none"}


# -- data and baseline ----------------------------------------------------------------------------
def _open_data(data: Path | None, format: str, split: str | None, run: Path | None, loader_opts: dict,
               split_seed: int) -> tuple[Any, dict[str, Any], Any]:
    """``(dataset, description, opener)``; ``opener(split)`` opens another split of the same data."""
    from kdnas.data.saliency import canonical_format, open_saliency_dataset

    whole = split == "all"  # as in the CXR evaluation: every stimulus of the dataset
    split = None if whole else split
    if data is None:
        if run is None:
            raise ConfigError("a dataset is required: give data (--data DIR --format FMT) to score predictions")
        from kdnas.api import load_run_config

        d = load_run_config(run).data
        if d.format == "builtin":
            from kdnas.data.synthetic.saliency import builtin_saliency_root

            root, fmt = builtin_saliency_root(**d.builtin), "folder"
        elif d.root is None:
            raise ConfigError(f"run {run} has no data.root; give the dataset with data (--data)")
        else:
            root, fmt = Path(d.root), canonical_format(d.format)
        if canonical_format(format) != fmt:
            raise ConfigError(f"format {format!r} does not match the run's own data ({fmt}; built-in sets are "
                              "'folder'); give data to score another dataset")
        loader_opts = {**({} if d.format == "builtin" else d.options), **loader_opts}
        names = {"train": d.train_split, "val": d.val_split, "test": d.test_split}
        split = None if whole else names.get(split, split) if split else (d.test_split or d.val_split)
        source = "run config" + (" (built-in synthetic set)" if d.format == "builtin" else "")
    else:
        root, fmt, source, names = Path(data), canonical_format(format), "data", {}
        if not root.exists():
            raise DataError(root, "dataset folder not found", expected=f"a {fmt} dataset folder")

    def opener(which: str | None):
        return open_saliency_dataset(root, fmt, split=names.get(which, which), seed=split_seed, **loader_opts)

    ds = opener(split)
    info = {"source": source, "root": str(root), "format": fmt, "split": split or "all",
            "split_seed": split_seed, "loader_options": dict(sorted(loader_opts.items())), "n_selected": len(ds)}
    return ds, info, opener


class _Baseline:
    """The IG baseline for each stimulus size: uniform, a training-split centre bias, or a file."""

    def __init__(self, choice: str | None, opener, evaluated: list[str], log_density: bool):
        self.choice = choice
        self.log_density = log_density
        self._cache: dict[tuple[int, int], Any] = {}
        self.info: dict[str, Any] = {"choice": choice}
        if choice is None:
            self.info["description"] = "none (IG not scored)"
        elif choice == "uniform":
            self.info["description"] = "uniform density 1/(H*W) at each stimulus size"
        elif choice == "train":
            self._fit_train(opener, evaluated)
        else:
            self.path = Path(choice)
            if self.path.suffix.lower() != ".npy":
                raise DataError(self.path, "baseline is neither 'uniform', 'train' nor a .npy file",
                                expected="baseline 'uniform', 'train' or a .npy centre-bias map")
            load_center_bias(self.path, None, log_density=log_density)  # a missing or bad file fails here
            self.info.update(file=str(self.path), log_density=log_density,
                             description=f"centre bias from {self.path.name}"
                             + (" (log-density)" if log_density else "")
                             + ", resized to each stimulus size (bilinear_zoom), normalised to sum 1")

    def _fit_train(self, opener, evaluated: list[str]) -> None:
        try:
            train = opener("train")
        except DataError as exc:
            raise DataError(exc.path, f"baseline 'train' needs the dataset's training split: {exc.problem}",
                            row=exc.row, column=exc.column, expected=exc.expected) from exc
        self.fixations, self.sizes = [], []
        for name in train.names:
            s = train.load(name)
            self.fixations.append(s.fixations)
            self.sizes.append(s.size)
        if not self.fixations:
            raise DataError(getattr(train, "root", None), "baseline 'train': the training split is empty",
                            expected="training images with fixations")
        overlap = len(set(train.names) & set(evaluated))
        self.info.update(split=getattr(train, "split", "train"), n_images=len(self.fixations),
                         n_fixations=int(sum(len(f) for f in self.fixations)), overlap_with_evaluated=overlap,
                         description="centre bias fitted on the training split's fixations "
                                     "(center_bias_from_fixations: pooled, rescaled to each stimulus size, "
                                     "gaussian sigma 5% of the larger side, zero padding, uniform mix 0.01)")

    def for_size(self, size: tuple[int, int]) -> Any:
        if self.choice in (None, "uniform"):
            return self.choice
        if size not in self._cache:
            if self.choice == "train":
                self._cache[size] = center_bias_from_fixations(self.fixations, self.sizes, size)
            else:
                self._cache[size] = load_center_bias(self.path, size, log_density=self.log_density)
        return self._cache[size]

    def sources(self) -> list[str]:
        return [self._cache[k].describe() for k in sorted(self._cache)]


# -- the command ----------------------------------------------------------------------------------
def evaluate_saliency(*, data: Path | None, format: str, out: Path, split: str | None = None,
                      predictions: Path | None = None, run: Path | None = None, subnet: str | None = None,
                      preset: str = "mit", metrics: list[str] | None = None, baseline: str | None = None,
                      limit: int | None = None, seed: int = 0, options: dict | None = None) -> dict:
    """Score a folder of maps (``predictions``) or a run's model (``run``) on a saliency dataset.

    Exactly one of ``predictions``/``run``. ``data=None`` with a run scores the run's own dataset
    (default split: its test split). ``baseline`` (IG): ``None`` (IG not scored), ``"uniform"``,
    ``"train"`` (centre bias of the dataset's training-split fixations) or a ``.npy`` file. ``seed``
    drives AUC-Borji/sAUC sampling, the AUC-Judd jitter and the choice of sAUC's other images.
    Writes ``out/per_image.csv`` and ``out/summary.json``; returns the summary.
    """
    from kdnas.data.saliency import canonical_format

    if (predictions is None) == (run is None):
        raise ConfigError("give exactly one of predictions (--predictions DIR, a folder of maps) or run (a trained "
                          "run folder)" + ("; both were given" if predictions is not None else ""))
    p = get_preset(preset.strip().lower() if isinstance(preset, str) else preset)
    fmt = canonical_format(format)
    ev_opts, loader_opts = _split_options(options, fmt)
    chosen, warnings = _resolve_metrics(metrics, baseline)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    pred_index = _index_predictions(Path(predictions)) if predictions is not None else None
    ds, data_info, opener = _open_data(None if data is None else Path(data), fmt, split, run, loader_opts,
                                       ev_opts.get("split_seed", 42))
    names = list(ds.names[:limit] if limit else ds.names)
    if not names:
        raise DataError(data_info["root"], f"no stimuli to evaluate in split {data_info['split']!r}",
                        expected="at least one stimulus")
    data_info.update(n_evaluated=len(names), limit=limit)
    if pred_index is not None:
        source = _check_prediction_names(Path(predictions), pred_index, names, ds.names, warnings)
        predict = None
    else:
        model = _ModelPredictor(Path(run), subnet, str(ev_opts.get("device", "cpu")))
        source, predict = model.describe(), model.predict
    if "sAUC" in chosen and len(names) < 2:
        chosen.remove("sAUC")
        warnings.append("sAUC not scored: it needs at least two evaluated images (other-image negatives)")
    base = _Baseline(baseline if "IG" in chosen else None, opener, names, ev_opts.get("baseline_log_density", False))
    if base.info.get("overlap_with_evaluated"):
        warnings.append(f"baseline 'train': {base.info['overlap_with_evaluated']} evaluated images are in the "
                        "training split the centre bias was fitted on (IG is optimistic for them)")
    evaluator = SaliencyEvaluator(preset=p, metrics=tuple(chosen), interpolation=ev_opts.get("interpolation"),
                                  gt_source=ev_opts.get("gt_source", "auto"), judd_jitter=ev_opts.get("judd_jitter"),
                                  seed=seed, dataset=f"{fmt}:{data_info['root']}", split=data_info["split"])
    scoring = _score_all(evaluator, ds, names, pred_index, predict, Path(run) if run else None, base,
                         ev_opts.get("sauc_other_images"), seed, warnings)
    summary = _summary(evaluator, p, chosen, data_info, source, base, ev_opts, scoring, warnings, seed)
    atomic_write_text(Path(out) / PER_IMAGE_NAME, _per_image_csv(evaluator.rows, chosen))
    atomic_write_json(Path(out) / SUMMARY_NAME, summary)
    return summary


def _score_all(evaluator: SaliencyEvaluator, ds, names: list[str], pred_index: dict[str, Path] | None, predict,
               run: Path | None, base: _Baseline, n_other: int | None, seed: int, warnings: list[str]) -> dict:
    """Score every stimulus into ``evaluator``; returns what the summary reports about the inputs."""
    fixations = sizes = None
    if "sAUC" in evaluator.metrics:
        # negatives come from the other evaluated images: a first pass keeps only their fixations and
        # sizes (holding every decoded image and density would not fit for large datasets)
        fixations, sizes = [], []
        for name in names:
            s = ds.load(name)
            fixations.append(s.fixations)
            sizes.append(s.size)
    pred_sizes: Counter = Counter()
    stretched: list[str] = []
    example = None
    for i, name in enumerate(names):
        sample = ds.load(name)
        where = pred_index[name] if pred_index is not None else run
        pred = read_prediction_map(where, name) if pred_index is not None else predict(sample.image, name)
        (h, w), (ph, pw) = sample.size, pred.shape
        pred_sizes[f"{ph}x{pw}"] += 1
        if abs((ph / pw) / (h / w) - 1) > ASPECT_TOLERANCE:
            stretched.append(f"{name}: {ph}x{pw} for a {h}x{w} stimulus")
        other = None
        if fixations is not None:
            other, desc = other_image_fixations(fixations, sizes, i, sample.size, preset=evaluator.preset,
                                                seed=seed, n_other=n_other)
            example = example or f"{name}: {desc}"
        try:  # IG needs the baseline at this stimulus' size
            evaluator.add(pred, sample, other, baseline=base.for_size(sample.size))
        except (DataError, ConfigError):
            raise
        except ValueError as exc:  # the engine's checks, reported with the file that caused them
            raise DataError(where, f"cannot score stimulus {name!r}: {exc}") from exc
    if stretched:
        warnings.append(f"{len(stretched)} predictions have another aspect ratio than their stimulus and were "
                        f"stretched by the resize (e.g. {'; '.join(stretched[:3])})")
    return {"pred_sizes": pred_sizes, "n_other": n_other, "negatives_example": example}


def _check_prediction_names(folder: Path, index: dict[str, Path], names: list[str], selection: list[str],
                            warnings: list[str]) -> dict[str, Any]:
    missing = [n for n in names if n not in index]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(folder / f"{missing[0]}.png", f"no prediction for {len(missing)} of {len(names)} "
                        f"stimuli ({shown})", expected=f"a map per stimulus: {folder}/NAME.png, NAME.npy or NAME.jpg")
    known = set(selection)
    extra = sorted(n for n in index if n not in known)
    if extra:
        warnings.append(f"{len(extra)} prediction files match no stimulus of the evaluated selection and were "
                        f"ignored (e.g. {', '.join(index[n].name for n in extra[:3])})")
    suffixes = Counter(index[n].suffix.lower() for n in names)
    return {"source": "folder", "path": str(folder), "n_files": len(index), "n_used": len(names),
            "file_types": dict(sorted(suffixes.items())), "unmatched": len(extra),
            "reading": "grey levels as stored (8/16-bit PNG, JPEG luminance) or .npy floats, cast to float64"}


def _metric_stats(rows: list[dict], chosen: list[str], warnings: list[str]) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for m in chosen:
        vals = np.array([r[m] for r in rows if m in r], dtype=np.float64)
        finite = vals[np.isfinite(vals)]
        stats[m] = {"mean": float(finite.mean()) if finite.size else None,
                    "std": float(finite.std(ddof=1)) if finite.size > 1 else None,
                    "n": int(finite.size), "n_nan": int(vals.size - finite.size)}
        if stats[m]["n_nan"]:
            warnings.append(f"{m}: {stats[m]['n_nan']} images gave NaN (e.g. a constant prediction or an image "
                            "without fixations); the mean excludes them")
    return stats


def _summary(evaluator: SaliencyEvaluator, p, chosen: list[str], data_info: dict, source: dict, base: _Baseline,
             ev_opts: dict, scoring: dict, warnings: list[str], seed: int) -> dict[str, Any]:
    import kdnas

    proto, rows = evaluator.summary()["protocol"], evaluator.rows
    stats = _metric_stats(rows, chosen, warnings)
    negatives: Any = "sAUC not scored"
    if "sAUC" in chosen:
        m_other = p.sauc_other_images if scoring["n_other"] is None else scoring["n_other"]
        sampled = bool(m_other) and m_other < len(rows) - 1
        negatives = {"rule": proto["sauc_negatives"], "other_images": m_other if sampled else "all",
                     "selection": f"random per image, seeded with seed + image index (seed {seed})" if sampled
                     else f"all {len(rows) - 1} other evaluated images",
                     "pool": "the other evaluated images, fixations rescaled to the scored stimulus",
                     "example": scoring["negatives_example"]}
    interp = proto["interpolation"]
    protocol = {
        "preset": p.name, "preset_description": p.description, "metrics": chosen,
        "evaluation_size": "native stimulus size",
        "stimulus_sizes": dict(sorted(Counter(f"{r['height']}x{r['width']}" for r in rows).items())),
        "prediction_sizes": dict(sorted(scoring["pred_sizes"].items())),
        "interpolation": interp, "interpolation_description": INTERPOLATION_DESCRIPTIONS.get(interp, interp),
        "ground_truth": proto["ground_truth"] or "not used (no CC/KLD/SIM/EMD)",
        "blur": {"ground_truth_from_fixations": gt_description(p),
                 "prediction": source.get("post_blur", "none (maps scored as given)")},
        "baseline": {**base.info, "per_size": base.sources() or None},
        "sauc_negatives": negatives,
        "duplicates": proto["duplicates"], "auc_judd_jitter": proto["auc_judd_jitter"], "seed": proto["seed"],
        "averaging": "mean over images of per-image values; NaN values excluded and counted (n_nan); "
                     "std is the sample standard deviation over images (ddof=1)",
        "evaluation_options": {k: ev_opts[k] for k in sorted(ev_opts)},
        "preset_choices": p.describe(),
    }
    return {"task": "saliency", "kdnas_version": kdnas.__version__, "n_images": len(rows), "metrics": stats,
            "protocol": protocol, "data": data_info, "predictions": source, "warnings": warnings,
            "outputs": {"per_image": PER_IMAGE_NAME, "summary": SUMMARY_NAME}}


def _per_image_csv(rows: list[dict[str, Any]], chosen: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "width", "height", "n_fixations", *chosen])
    for r in rows:
        writer.writerow([r["name"], r["width"], r["height"], r["fixations"],
                         *(repr(float(r[m])) if m in r else "" for m in chosen)])
    return buf.getvalue()


def format_saliency_table(summary: dict) -> str:
    """A ``metric | mean | std | n`` table with a protocol footer, for the terminal."""
    stats = summary["metrics"]
    width = max([len("metric"), *map(len, stats)])

    def num(v: Any) -> str:
        return "nan" if v is None else f"{v:.4f}"
    lines = [f"{'metric':<{width}}  {'mean':>8}  {'std':>8}  {'n':>5}"]
    lines.append("-" * len(lines[0]))
    for m, s in stats.items():
        n = f"{s['n']}" + (f" ({s['n_nan']} NaN)" if s["n_nan"] else "")
        lines.append(f"{m:<{width}}  {num(s['mean']):>8}  {num(s['std']):>8}  {n:>5}")
    pr, data, src = summary["protocol"], summary["data"], summary["predictions"]
    neg, gt = pr["sauc_negatives"], pr["ground_truth"]
    scored = (f"run {src['run']} (subnet {src['subnet']})" if src["source"] == "run"
              else f"maps in {src['path']} ({src['n_used']} used)")
    lines += [
        "",
        f"preset: {pr['preset']} - {pr['preset_description']}",
        f"scored: {scored}",
        f"data: {summary['n_images']} images of {data['format']} {data['root']} (split {data['split']})",
        f"evaluation size: {pr['evaluation_size']}; interpolation: {pr['interpolation']} "
        f"({pr['interpolation_description']})",
        f"ground truth: {gt if isinstance(gt, str) else '; '.join(gt)}",
        f"prediction blur: {pr['blur']['prediction']}",
        f"IG baseline: {pr['baseline']['description']}",
        "sAUC negatives: " + (neg if isinstance(neg, str) else f"{neg['rule']}, {neg['other_images']} other images"),
        f"averaging: per image; seed {pr['seed']}; AUC-Judd jitter {pr['auc_judd_jitter']}",
    ]
    return "\n".join(lines + [f"warning: {w}" for w in summary.get("warnings", [])])
