"""``kdnas demo``: both tasks end to end on the built-in synthetic data, on a CPU, in minutes.

1. Saliency: a reduced-width SalNAS supernet at low resolution, trained with the sandwich rule and
   Self-KD; the max and min subnets are extracted, BN-recalibrated and scored on the test split.
2. CXR: a small timm teacher (ResNet-18), then an EEEA-Net-C2 student at reduced input size
   distilled from it (per-class Bernoulli KD), and the same student without KD (same budget, seed).
3. ``summary.json``, plots (training curves, ROC curves, saliency overlays) and ``report.md``.

A killed demo resumes where it stopped when run again with the same ``--out``.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from kdnas import __version__
from kdnas.config.schema import parse_config, set_dotted
from kdnas.train.checkpoint import latest_checkpoint
from kdnas.utils.io import atomic_write_json, atomic_write_text

DEMO_CONFIGS = Path(__file__).resolve().parent / "configs" / "demo"
SALIENCY_METRICS = ("CC", "KLD", "NSS", "SIM", "AUC_Judd")

# A much smaller demo for the end-to-end test (same code path, about a minute).
TINY = {
    "saliency": {"data.builtin": {"n_images": 48, "size": [64, 96], "seed": 0}, "train.epochs": 2,
                 "train.batch_size": 8, "train.bn_calibration.num_images": 16},
    "teacher": {"data.builtin": {"n_images": 96, "size": 96, "seed": 0}, "train.epochs": 2},
    "student": {"data.builtin": {"n_images": 96, "size": 96, "seed": 0}, "train.epochs": 2},
}


def _say(msg: str, progress: bool) -> None:
    if progress:
        print(f"[kdnas demo] {msg}", flush=True)


def _config(name: str, out: Path, overrides: dict[str, Any]):
    data = yaml.safe_load((DEMO_CONFIGS / f"{name}.yaml").read_text())
    for key, value in overrides.items():
        set_dotted(data, key, copy.deepcopy(value))
    data["output_dir"] = str(out)
    return parse_config(data, f"demo config {name}")


def _train(cfg, progress: bool) -> dict[str, Any]:
    from kdnas.train.trainer import Trainer

    out = Path(cfg.output_dir)
    resume = latest_checkpoint(out / "checkpoints") is not None  # continue a killed demo
    return Trainer(cfg, resume=resume, progress=progress).fit()


def run_demo(out_dir: str | Path = "kdnas_demo", tiny: bool = False, progress: bool = True) -> dict[str, Any]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    started = time.time()
    size = TINY if tiny else {"saliency": {}, "teacher": {}, "student": {}}
    timings: dict[str, float] = {}

    _say("1/4 saliency: SalNAS supernet (reduced width, low resolution), sandwich rule + Self-KD", progress)
    t = time.time()
    sal = _train(_config("saliency", out / "saliency", size["saliency"]), progress)
    timings["saliency_s"] = round(time.time() - t, 1)

    _say("2/4 CXR: training the timm teacher (ResNet-18)", progress)
    t = time.time()
    teacher = _train(_config("cxr_teacher", out / "cxr_teacher", size["teacher"]), progress)
    timings["cxr_teacher_s"] = round(time.time() - t, 1)

    _say("3/4 CXR: distilling into EEEA-Net-C2 (Bernoulli KD), then the same student without KD", progress)
    t = time.time()
    kd_over = {**size["student"], "distill.teachers": [{"name": "resnet18", "checkpoint": str(out / "cxr_teacher"),
                                                        "input_size": [96, 96]}]}
    student_kd = _train(_config("cxr_student", out / "cxr_student_kd", kd_over), progress)
    timings["cxr_student_kd_s"] = round(time.time() - t, 1)
    t = time.time()
    nokd_over = {**size["student"], "distill.kind": "none", "distill.teachers": [], "name": "demo-cxr-student-nokd"}
    student_nokd = _train(_config("cxr_student", out / "cxr_student_nokd", nokd_over), progress)
    timings["cxr_student_nokd_s"] = round(time.time() - t, 1)

    _say("4/4 report: plots and summary", progress)
    summary = _summarise(sal, teacher, student_kd, student_nokd)
    summary["timings"] = {**timings, "total_s": round(time.time() - started, 1)}
    summary["tiny"] = tiny
    _plots_and_report(out, summary, sal, teacher, student_kd, student_nokd)
    atomic_write_json(out / "summary.json", summary)
    _say(f"done in {summary['timings']['total_s']:.0f}s -> {out / 'summary.json'}, {out / 'report.md'}", progress)
    return summary


def _summarise(sal, teacher, student_kd, student_nokd) -> dict[str, Any]:
    def sal_entry(which: str) -> dict[str, Any]:
        m = sal["models"][which]
        return {**{k: m["metrics"][k] for k in SALIENCY_METRICS}, "params": m["costs"]["params"],
                "macs": m["costs"]["macs"], "arch": m["arch"]}

    def auc(run) -> float:
        return run["models"]["model"]["metrics"]["mean_auroc"]

    return {
        "kdnas_version": __version__,
        "saliency": {"max": sal_entry("max"), "min": sal_entry("min"),
                     "protocol": {"data": "built-in synthetic saliency set, test split",
                                  "resolution": sal["models"]["max"]["metrics"]["protocol"]["resolution"],
                                  "metrics": "MIT definitions (preset mit), per-image mean at the model output size",
                                  "distill": sal["distill"], "macs": "FlopCounterMode/2 at the subnet's resolution"}},
        "cxr": {"teacher_auc": auc(teacher), "student_kd_auc": auc(student_kd), "student_nokd_auc": auc(student_nokd),
                "teacher": {"model": "resnet18", **_costs(teacher)},
                "student": {"model": "eeea_c2", **_costs(student_kd)},
                "protocol": {"data": "built-in synthetic CXR set, patient-disjoint test split",
                             "metric": "mean AUROC over the synthetic findings", "distill": student_kd["distill"]}},
    }


def _costs(run) -> dict[str, Any]:
    c = run["models"]["model"]["costs"]
    return {"params": c["params"], "macs": c["macs"], "input_size": c["working_size"]}


def _plots_and_report(out: Path, summary: dict, sal, teacher, student_kd, student_nokd) -> None:
    from kdnas.api import load_model
    from kdnas.report import plot_roc_curves, plot_saliency_overlays, plot_training_curves

    plots = out / "plots"
    plot_training_curves({"saliency supernet": sal["history"]}, plots / "saliency_training.png")
    plot_training_curves({"teacher": teacher["history"], "student + KD": student_kd["history"],
                          "student, no KD": student_nokd["history"]}, plots / "cxr_training.png")
    curves = {}
    for title, run in (("teacher", "cxr_teacher"), ("student + KD", "cxr_student_kd"),
                       ("student, no KD", "cxr_student_nokd")):
        model, task = load_model(out / run)
        pred = task.predict(model, _test_loader(task), torch.device("cpu"))
        curves[title] = (pred["labels"], pred["logits"], task.label_names)
    plot_roc_curves(curves, plots / "cxr_roc.png")
    plot_saliency_overlays(_saliency_rows(out / "saliency"), plots / "saliency_overlays.png")
    atomic_write_text(out / "report.md", _report_markdown(summary))


def _test_loader(task):
    from torch.utils.data import DataLoader

    sets = task.datasets(calib_images=1)
    return DataLoader(sets["test"] if "test" in sets else sets["val"], batch_size=32, collate_fn=task.collate)


@torch.no_grad()
def _saliency_rows(run_dir: Path, n: int = 4) -> list[dict[str, Any]]:
    from kdnas.api import load_model

    models = {w: load_model(run_dir, w) for w in ("max", "min")}
    task = models["max"][1]
    test = task.datasets(calib_images=1)["test"]
    rows = []
    for i in range(min(n, len(test))):
        sample = test.base[test.indices[i]]
        item = test[i]
        row = {"name": sample.name, "image": sample.image, "ground truth": test.density_of(sample)}
        for which, (model, _) in models.items():
            pred = model(item["image"][None], output_size=sample.size)[0]
            row[f"{which} subnet"] = pred.numpy()
        rows.append(row)
    return rows


def _report_markdown(s: dict[str, Any]) -> str:
    sal, cxr = s["saliency"], s["cxr"]
    lines = ["# kdnas demo report", "",
             f"kdnas {s['kdnas_version']}; total time {s['timings']['total_s']:.0f} s "
             f"({'tiny' if s['tiny'] else 'full'} demo). Built-in synthetic data; numbers show that the pipeline "
             "learns, they are not benchmark results.", "",
             "## Saliency: SalNAS supernet + Self-KD", "",
             f"Protocol: {sal['protocol']['metrics']}; resolution {sal['protocol']['resolution']}; "
             f"{sal['protocol']['data']}. MACs: {sal['protocol']['macs']}.", "",
             "| subnet | CC | KLD | NSS | SIM | AUC-Judd | params | MACs |", "|---|---|---|---|---|---|---|---|"]
    for which in ("max", "min"):
        m = sal[which]
        lines.append(f"| {which} | {m['CC']:.3f} | {m['KLD']:.3f} | {m['NSS']:.3f} | {m['SIM']:.3f} | "
                     f"{m['AUC_Judd']:.3f} | {m['params'] / 1e6:.2f} M | {m['macs'] / 1e6:.1f} M |")
    lines += ["", "![saliency training](plots/saliency_training.png)", "",
              "![saliency overlays](plots/saliency_overlays.png)", "",
              "## Chest X-ray: teacher -> EEEA-Net-C2 distillation", "",
              f"Protocol: {cxr['protocol']['metric']}; {cxr['protocol']['data']}.", "",
              "| model | mean AUROC | params | MACs | input (px) |", "|---|---|---|---|---|",
              f"| teacher (ResNet-18) | {cxr['teacher_auc']:.3f} | {cxr['teacher']['params'] / 1e6:.2f} M | "
              f"{cxr['teacher']['macs'] / 1e6:.1f} M | {cxr['teacher']['input_size']} |",
              f"| EEEA-Net-C2 + KD | {cxr['student_kd_auc']:.3f} | {cxr['student']['params'] / 1e6:.2f} M | "
              f"{cxr['student']['macs'] / 1e6:.1f} M | {cxr['student']['input_size']} |",
              f"| EEEA-Net-C2, no KD | {cxr['student_nokd_auc']:.3f} | same | same | same |", "",
              "![cxr training](plots/cxr_training.png)", "", "![cxr roc](plots/cxr_roc.png)", "",
              "Timings (s): " + ", ".join(f"{k} {v}" for k, v in s["timings"].items()), ""]
    return "\n".join(lines)

