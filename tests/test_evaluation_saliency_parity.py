"""``kdnas evaluate --task saliency`` against the official MIT code (GNU Octave) on real SALICON maps.

A folder-format dataset is built in ``tmp_path`` from ``../shared/data/saliency``: the real SALICON
stimuli, fixations = the distinct pixels of ``reference/inputs/fix_<id>.png`` as 0-based x,y, no
``maps/`` (so CC uses the preset's fc=8 blur of the fixations), predictions = ``sal_<id>.png``.
Reference values: ``reference/mit_metrics_octave_salicon.csv`` (deterministic rows to 1e-6).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from kdnas.cli.app import app
from kdnas.evaluation.saliency import evaluate_saliency, format_saliency_table

REF = "saliency/reference"
DETERMINISTIC = ("AUC_Judd", "NSS", "CC")


def _reference(shared: Path) -> dict[tuple[str, str], float]:
    """``(image id, metric) -> value`` of the deterministic SALICON rows, checked against their args."""
    out = {}
    with open(shared / REF / "mit_metrics_octave_salicon.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["case"] != "SALICON" or row["metric"] not in DETERMINISTIC:
                continue
            image = Path(row["saliency_map"]).stem.split("_")[1]
            # the computations the rows describe: unjittered AUC-Judd, CC against antonioGaussian fc=8
            expected_args = {"AUC_Judd": "jitter=0", "NSS": "", "CC": ""}[row["metric"]]
            assert row["args"] == expected_args
            if row["metric"] == "CC":
                assert row["ground_truth"] == f"antonioGaussian(inputs/fix_{image}.png;fc=8)"
            out[(image, row["metric"])] = float(row["value"])
    return out


@pytest.fixture(scope="module")
def salicon_case(shared_data: Path, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("salicon_eval")
    data, preds = root / "data", root / "predictions"
    for sub in (data / "stimuli", data / "fixations", preds):
        sub.mkdir(parents=True)
    inputs = shared_data / REF / "inputs"
    ids = sorted(p.stem.split("_")[1] for p in inputs.glob("fix_*.png"))
    for image in ids:
        rows, cols = np.nonzero(np.asarray(Image.open(inputs / f"fix_{image}.png")) > 0)
        (data / "fixations" / f"{image}.csv").write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in zip(cols, rows, strict=True)))
        shutil.copy(shared_data / "saliency/salicon/images/train2014examples" / f"COCO_train2014_000000{image}.jpg",
                    data / "stimuli" / f"{image}.jpg")
        shutil.copy(inputs / f"sal_{image}.png", preds / f"{image}.png")
    summary = evaluate_saliency(data=data, format="folder", out=root / "out", predictions=preds, preset="mit",
                                metrics=list(DETERMINISTIC), options={"judd_jitter": False})
    return {"root": root, "data": data, "predictions": preds, "ids": ids, "summary": summary,
            "reference": _reference(shared_data)}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_image_matches_the_octave_values(salicon_case):
    rows = _rows(salicon_case["root"] / "out" / "per_image.csv")
    assert [r["name"] for r in rows] == salicon_case["ids"] and len(rows) == 10
    assert list(rows[0]) == ["name", "width", "height", "n_fixations", *DETERMINISTIC]
    for r in rows:
        assert (int(r["width"]), int(r["height"])) == (640, 480)
        for metric in DETERMINISTIC:
            assert abs(float(r[metric]) - salicon_case["reference"][(r["name"], metric)]) < 1e-6, (r["name"], metric)
    # README table: distinct fixated pixels per image
    assert {r["name"]: int(r["n_fixations"]) for r in rows}["123067"] == 6909
    assert sum(int(r["n_fixations"]) for r in rows) == 69665


def test_summary_means_and_protocol(salicon_case):
    summary = json.loads((salicon_case["root"] / "out" / "summary.json").read_text())
    assert summary == json.loads(json.dumps(salicon_case["summary"]))  # returned == written
    ref = salicon_case["reference"]
    for metric in DETERMINISTIC:
        expected = np.mean([ref[(i, metric)] for i in salicon_case["ids"]])
        assert summary["metrics"][metric]["mean"] == pytest.approx(expected, abs=1e-6)
        assert summary["metrics"][metric]["n"] == 10 and summary["metrics"][metric]["n_nan"] == 0
    # README: means AUC_Judd 0.7146, NSS 1.0000, CC 0.6147
    assert summary["metrics"]["AUC_Judd"]["mean"] == pytest.approx(0.7146, abs=5e-5)
    assert summary["metrics"]["NSS"]["mean"] == pytest.approx(1.0000, abs=5e-5)
    assert summary["metrics"]["CC"]["mean"] == pytest.approx(0.6147, abs=5e-5)
    pr = summary["protocol"]
    assert pr["preset"] == "mit" and pr["preset_description"].startswith("MIT Saliency Benchmark")
    assert pr["evaluation_size"] == "native stimulus size" and pr["interpolation"] == "bicubic_matlab"
    assert pr["ground_truth"] == ["MIT antonioGaussian fc=8 cycles/image of the binary fixation map"]
    assert pr["auc_judd_jitter"] is False and pr["baseline"]["choice"] is None
    assert pr["sauc_negatives"] == "sAUC not scored" and pr["preset_choices"]["gt_blur_fc"] == 8.0
    assert summary["data"] == {"source": "data", "root": str(salicon_case["data"]), "format": "folder",
                               "split": "all", "split_seed": 42, "loader_options": {}, "n_selected": 10,
                               "n_evaluated": 10, "limit": None}
    assert summary["predictions"]["source"] == "folder" and summary["predictions"]["n_used"] == 10
    assert summary["warnings"] == []
    table = format_saliency_table(summary)
    assert "AUC_Judd" in table and "0.7146" in table and "preset: mit" in table and "bicubic_matlab" in table


def test_cli_matches_the_octave_values(salicon_case, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["evaluate", "--task", "saliency", "--predictions", str(salicon_case["predictions"]),
                                      "--data", str(salicon_case["data"]), "--format", "folder", "--preset", "mit",
                                      "--out", str(out), "--metrics", "AUC_Judd,NSS,CC", "--limit", "3",
                                      "--option", "judd_jitter=false"])
    assert result.exit_code == 0, result.output
    assert "AUC_Judd" in result.output and "native stimulus size" in result.output
    rows = _rows(out / "per_image.csv")
    assert [r["name"] for r in rows] == salicon_case["ids"][:3]
    for r in rows:
        for metric in DETERMINISTIC:
            assert abs(float(r[metric]) - salicon_case["reference"][(r["name"], metric)]) < 1e-6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 3 and summary["data"]["limit"] == 3


def test_cli_default_auc_judd_is_deterministic_and_jitter_is_opt_in(salicon_case, tmp_path):
    """The mit preset's AUC-Judd is MIT's jitter=0 value by default; judd_jitter=true adds MIT's seeded
    tie-breaking jitter, which moves AUC-Judd only (NSS and CC do not change)."""
    args = ["evaluate", "--task", "saliency", "--predictions", str(salicon_case["predictions"]), "--data",
            str(salicon_case["data"]), "--format", "folder", "--preset", "mit", "--limit", "2",
            "--metrics", "AUC_Judd,NSS,CC"]
    ref = salicon_case["reference"]
    default = tmp_path / "default"
    result = CliRunner().invoke(app, [*args, "--out", str(default)])
    assert result.exit_code == 0, result.output
    assert json.loads((default / "summary.json").read_text())["protocol"]["auc_judd_jitter"] is False
    for r in _rows(default / "per_image.csv"):
        for metric in DETERMINISTIC:
            assert abs(float(r[metric]) - ref[(r["name"], metric)]) < 1e-6, (r["name"], metric)
    jittered = tmp_path / "jitter"
    result = CliRunner().invoke(app, [*args, "--out", str(jittered), "--option", "judd_jitter=true"])
    assert result.exit_code == 0, result.output
    assert json.loads((jittered / "summary.json").read_text())["protocol"]["auc_judd_jitter"] is True
    rows = _rows(jittered / "per_image.csv")
    for r in rows:
        assert abs(float(r["NSS"]) - ref[(r["name"], "NSS")]) < 1e-6
        assert abs(float(r["CC"]) - ref[(r["name"], "CC")]) < 1e-6
    # jitter only breaks ties among equal 8-bit levels: close to, but not equal to, the unjittered value
    gaps = [abs(float(r["AUC_Judd"]) - ref[(r["name"], "AUC_Judd")]) for r in rows]
    assert max(gaps) < 0.05 and min(gaps) > 1e-4
