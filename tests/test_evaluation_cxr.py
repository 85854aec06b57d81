"""CXR evaluation (``kdnas.evaluation.cxr``) end to end on tiny trained runs.

Two runs are trained once per module on the built-in synthetic NIH-style set; they are scored on
their own test split, on real NIH ChestX-ray14 images from ``../shared/data`` and on small CSV
datasets written here, and every reported number is re-derived from the per-image CSV with
scikit-learn or by hand.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

from kdnas.api import train
from kdnas.evaluation.cxr import evaluate_cxr, format_cxr_table
from kdnas.metrics.multilabel import bootstrap_auroc_ci
from kdnas.utils.errors import ConfigError, DataError, KdnasError

# data.limit only shortens training; the evaluation scores the whole configured split
TINY = {"train.epochs": 1, "data.limit": 16, "data.builtin": {"n_images": 60, "size": 64, "seed": 0}}
RUN_LABELS = ["Atelectasis", "Cardiomegaly", "Effusion", "Mass", "Nodule", "Pneumothorax"]
NIH64 = {"images_dir": "images-64", "skip_bad": True}
CSV_LABELS = ["Atelectasis", "Pleural Effusion"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run A (seed 0, 64 px) and run B (seed 1, 48 px input) of the tiny CXR teacher config."""
    root = tmp_path_factory.mktemp("cxr_eval")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KDNAS_CACHE", str(root / "cache"))  # the built-in set is generated here, not in ~/.cache
        train("cxr_tiny_teacher", out_dir=root / "run_a", overrides=TINY, progress=False)
        train("cxr_tiny_teacher", out_dir=root / "run_b", progress=False,
              overrides={**TINY, "seed": 1, "data.input_size": [48, 48]})
        yield {"a": root / "run_a", "b": root / "run_b", "root": root}


def _strict_json(path: Path) -> dict:
    def no_constant(name):
        raise AssertionError(f"non-standard JSON constant {name} in {path}")

    return json.loads(path.read_text(), parse_constant=no_constant)


def _per_image(path: Path) -> tuple[list[dict], list[str]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader), list(reader.fieldnames)


def _columns(rows: list[dict], labels: list[str], prefix: str = "") -> np.ndarray:
    def value(cell: str) -> float:
        return math.nan if cell == "" else float(cell)

    return np.array([[value(r[prefix + x]) for x in labels] for r in rows], dtype=np.float64)


def _hand_ece(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """Textbook ECE: sum over equal-width bins of (n_b / n) |accuracy_b - confidence_b|."""
    total, n = 0.0, len(y)
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(yi, pi) for yi, pi in zip(y, p, strict=True) if lo <= pi < hi or (b == bins - 1 and pi == 1.0)]
        if inside:
            acc = sum(v for v, _ in inside) / len(inside)
            conf = sum(q for _, q in inside) / len(inside)
            total += len(inside) / n * abs(acc - conf)
    return total


def test_own_split_metrics_match_independent_references(runs, tmp_path):
    out = tmp_path / "eval"
    s = evaluate_cxr(run=runs["a"], out=out, n_boot=300, seed=3)
    assert {p.name for p in out.iterdir()} == {"cxr_eval.json", "per_image.csv", "roc.png",
                                              "bootstrap_replicates.csv"}
    assert _strict_json(out / "cxr_eval.json") == s  # NaN is written as null; the return value is the file
    rows, header = _per_image(out / "per_image.csv")
    assert header == ["name", "patient", *RUN_LABELS, *[f"p_{x}" for x in RUN_LABELS]]
    y, p = _columns(rows, RUN_LABELS), _columns(rows, RUN_LABELS, "p_")
    patients = [r["patient"] for r in rows]
    assert s["n_images"] == len(rows) > 0
    assert s["n_patients"] == len(set(patients)) < len(rows)  # follow-ups: several images per patient
    assert all(r["name"].startswith(f"{int(r['patient']):08d}_") for r in rows)  # NIH names carry the patient id
    prot = s["protocol"]
    assert prot["evaluation_unit"] == "image" and prot["image_size"] == [64, 64]
    assert prot["bootstrap"] == {**prot["bootstrap"], "B": 300, "seed": 3, "resampling_unit": "patient"}
    assert prot["dataset"]["source"] == "run config" and prot["dataset"]["split"] == "test"
    assert prot["dataset"]["split_info"]["method"] == "official"

    defined = []
    for j, lab in enumerate(RUN_LABELS):
        r = s["per_label"][lab]
        known = ~np.isnan(y[:, j])
        assert r["n_pos"] == int((y[known, j] == 1).sum()) and r["n_known"] == int(known.sum())
        assert r["prevalence"] == pytest.approx(r["n_pos"] / r["n_known"])
        assert r["ece"] == pytest.approx(_hand_ece(y[known, j], p[known, j]), abs=1e-12)
        if 0 < r["n_pos"] < r["n_known"]:
            defined.append(lab)
            assert r["excluded"] is None
            assert r["auroc"] == pytest.approx(roc_auc_score(y[known, j], p[known, j]), abs=1e-12)
            assert r["ap"] == pytest.approx(average_precision_score(y[known, j], p[known, j]), abs=1e-12)
            lo, hi = r["auroc_ci"]
            assert lo <= r["auroc"] <= hi and hi - lo > 0
    m = s["mean"]
    assert m["n_labels"] == len(defined) >= 3
    assert m["auroc"] == pytest.approx(np.mean([s["per_label"][x]["auroc"] for x in defined]), abs=1e-12)
    assert m["ap"] == pytest.approx(np.mean([s["per_label"][x]["ap"] for x in defined]), abs=1e-12)
    assert m["auroc_ci"][0] <= m["auroc"] <= m["auroc_ci"][1]
    known = ~np.isnan(y)
    assert m["ece_pooled"] == pytest.approx(_hand_ece(y[known], p[known]), abs=1e-12)

    # the CI is the patient (cluster) bootstrap: recomputed from the CSV with the patient ids it matches,
    # and differs from an image-level bootstrap of the same predictions
    logits = np.log(p) - np.log1p(-p)
    by_patient = bootstrap_auroc_ci(y, logits, groups=patients, n_boot=300, seed=3)
    by_image = bootstrap_auroc_ci(y, logits, groups=None, n_boot=300, seed=3)
    assert m["auroc_ci"] == pytest.approx(list(by_patient["ci"]), abs=1e-12)
    assert m["auroc_ci"] != pytest.approx(list(by_image["ci"]), abs=1e-6)
    with open(out / "bootstrap_replicates.csv", newline="") as fh:
        reps = list(csv.DictReader(fh))
    assert len(reps) == 300
    macro = np.array([float(r["mean_auroc"]) for r in reps])
    assert np.percentile(macro, [2.5, 97.5]) == pytest.approx(m["auroc_ci"], abs=1e-12)
    with Image.open(out / "roc.png") as im:
        assert im.format == "PNG" and im.size[0] > 300


def _write_csv_dataset(folder: Path, pairs: bool, policy_rows=None) -> Path:
    """8 noise radiographs with hand-set labels; ``pairs`` stores every image twice for its patient."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True)
    atel = [1, 0, 1, 0, 0, 1, 0, 0]
    effu = policy_rows or [0, 1, 0, 0, 1, 0, 1, 1]
    lines = ["path,patient,split,Atelectasis,Pleural Effusion"]
    for k in range(8):
        img = (rng.random((32, 32)) * 255).astype(np.uint8)
        copies = ["a", "b"] if pairs else ["a"]
        for c in copies:
            Image.fromarray(img).save(folder / f"p{k}{c}.png")
            lines.append(f"p{k}{c}.png,P{k:02d},test,{atel[k]},{effu[k]}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_patient_resampling_moves_both_images_of_a_patient_together(runs, tmp_path):
    opts = {"patient_column": "patient", "split_column": "split", "label_columns": CSV_LABELS}
    single = _write_csv_dataset(tmp_path / "single", pairs=False)
    double = _write_csv_dataset(tmp_path / "double", pairs=True)
    kw = {"run": runs["a"], "format": "csv", "n_boot": 400, "seed": 11}
    s1 = evaluate_cxr(out=tmp_path / "o1", data=single, options=opts, **kw)
    s2 = evaluate_cxr(out=tmp_path / "o2", data=double, options=opts, **kw)
    s3 = evaluate_cxr(out=tmp_path / "o3", data=double, options={**opts, "patient_column": None}, **kw)
    assert (s1["n_images"], s1["n_patients"]) == (8, 8)
    assert (s2["n_images"], s2["n_patients"]) == (16, 8)
    assert (s3["n_patients"], s3["protocol"]["bootstrap"]["resampling_unit"]) == (16, "image")
    # "Pleural Effusion" maps to the run's Effusion by name; the other four run labels are absent
    assert s1["per_label"]["Effusion"]["dataset_labels"] == ["Pleural Effusion"]
    assert s1["excluded"] == {"n": 4, "labels": dict.fromkeys(["Cardiomegaly", "Mass", "Nodule", "Pneumothorax"],
                                                              "not in dataset")}
    for lab in ("Atelectasis", "Effusion"):
        a, b, c = (s["per_label"][lab] for s in (s1, s2, s3))
        assert a["auroc"] == b["auroc"] == c["auroc"]
        # each resampled patient brings both of its identical images: same replicates as one image each
        assert b["auroc_ci"] == a["auroc_ci"]
    assert s2["mean"]["auroc_ci"] == s1["mean"]["auroc_ci"]
    # resampling the 16 images independently breaks the pairs and narrows the interval
    width = [s["mean"]["auroc_ci"][1] - s["mean"]["auroc_ci"][0] for s in (s2, s3)]
    assert width[1] < width[0]


def test_uncertain_labels_are_not_scored_and_soft_labels_rejected(runs, tmp_path):
    folder = _write_csv_dataset(tmp_path / "unc", pairs=False, policy_rows=[0, 1, -1, 0, 1, -1, 1, 0])
    opts = {"patient_column": "patient", "split_column": "split", "label_columns": CSV_LABELS,
            "uncertainty": "teacher"}
    s = evaluate_cxr(run=runs["a"], out=tmp_path / "o", data=folder, format="csv", options=opts, n_boot=50)
    eff = s["per_label"]["Effusion"]
    assert (eff["n_uncertain"], eff["n_known"], eff["n_pos"]) == (2, 6, 3)
    rows, _ = _per_image(tmp_path / "o" / "per_image.csv")
    known = [(int(r["Effusion"]), float(r["p_Effusion"])) for r in rows if r["Effusion"] != ""]
    assert len(known) == 6
    assert eff["auroc"] == pytest.approx(roc_auc_score(*zip(*known, strict=True)), abs=1e-12)
    with pytest.raises(DataError, match="soft value"):
        evaluate_cxr(run=runs["a"], out=tmp_path / "o2", data=folder, format="csv", n_boot=10,
                     options={**opts, "uncertainty": "smooth"})


def test_real_nih_images_with_few_positives_and_paired_comparison(runs, shared_data, tmp_path):
    nih = shared_data / "cxr" / "nih"
    s = evaluate_cxr(run=runs["a"], out=tmp_path / "nih", data=nih, format="nih", split="all", options=NIH64,
                     n_boot=200, compare=runs["b"])
    # labels from Data_Entry_2017_v2020 (shared/data/README.md): 7 images of 7 patients
    assert (s["n_images"], s["n_patients"]) == (7, 7)
    assert {lab: s["per_label"][lab]["n_pos"] for lab in RUN_LABELS} == {
        "Atelectasis": 2, "Cardiomegaly": 1, "Effusion": 1, "Mass": 0, "Nodule": 0, "Pneumothorax": 0}
    assert s["excluded"] == {"n": 3, "labels": dict.fromkeys(["Mass", "Nodule", "Pneumothorax"], "no positives")}
    assert s["per_label"]["Mass"]["auroc"] is None and s["per_label"]["Mass"]["ece"] is not None
    assert s["mean"]["n_labels"] == 3
    assert s["mean"]["auroc"] == pytest.approx(np.mean([s["per_label"][x]["auroc"] for x in RUN_LABELS[:3]]))
    assert s["boxes"] == {"images_with_boxes": 2, "boxes": {"Atelectasis": 2}}  # 00000181_061, 00000072_000
    ds = s["protocol"]["dataset"]
    assert ds["format"] == "nih" and ds["skipped"] == 112120 - 7  # listed images absent from images-64/
    assert ds["split_info"]["images_dir"].endswith("images-64")

    c = s["compare"]
    assert c["labels"] == RUN_LABELS and c["model"]["input_size"] == [48, 48]
    d = c["diff"]
    assert d["mean_auroc"] == pytest.approx(s["mean"]["auroc"] - c["mean"]["auroc"], abs=1e-12)
    assert d["ci"][0] <= d["mean_auroc"] <= d["ci"][1]
    rows, header = _per_image(tmp_path / "nih" / "per_image.csv")
    assert header[-6:] == [f"compare_p_{x}" for x in RUN_LABELS]
    y, pb = _columns(rows, RUN_LABELS), _columns(rows, RUN_LABELS, "compare_p_")
    assert c["per_label"]["Atelectasis"]["auroc"] == pytest.approx(roc_auc_score(y[:, 0], pb[:, 0]), abs=1e-12)

    table = format_cxr_table(s)
    assert "3 label(s) excluded from the mean: Mass (no positives); Nodule (no positives)" in table
    assert "difference (this - compare)" in table and f"{d['mean_auroc']:.3f}" in table

    # the 1024-px originals: only Cardiomegaly (00000001_000) has a positive among the run's labels
    big = evaluate_cxr(run=runs["a"], out=tmp_path / "big", data=nih, format="nih", split="all", n_boot=50,
                       options={"images_dir": "images", "skip_bad": True})
    assert big["n_images"] == 3 and big["mean"]["n_labels"] == 1 and big["excluded"]["n"] == 5
    assert big["per_label"]["Cardiomegaly"]["n_pos"] == 1


def test_same_inputs_and_seed_give_identical_outputs(runs, tmp_path):
    kw = {"run": runs["a"], "n_boot": 200, "seed": 5, "batch_size": 4, "limit": 10}
    evaluate_cxr(out=tmp_path / "x", **kw)
    evaluate_cxr(out=tmp_path / "y", **kw)
    for name in ("cxr_eval.json", "per_image.csv", "bootstrap_replicates.csv"):
        assert (tmp_path / "x" / name).read_bytes() == (tmp_path / "y" / name).read_bytes(), name


def test_table_layout(runs, tmp_path):
    s = evaluate_cxr(run=runs["a"], out=tmp_path / "t", n_boot=100, labels=["Effusion", "Atelectasis"], limit=12)
    assert s["labels"] == ["Effusion", "Atelectasis"] and s["n_images"] == 12
    lines = format_cxr_table(s).splitlines()
    assert lines[0].split() == ["label", "n+", "n", "AUROC", "[95%", "CI]", "AP", "ECE"]
    for line, lab in zip(lines[2:4], s["labels"], strict=True):
        r = s["per_label"][lab]
        assert line.split()[:3] == [lab, str(r["n_pos"]), str(r["n_known"])]
        cell = (f"{r['auroc']:.3f} [{r['auroc_ci'][0]:.3f}, {r['auroc_ci'][1]:.3f}]" if r["excluded"] is None
                else f"excluded: {r['excluded']}")
        assert cell in line and line.rstrip().endswith(f"{r['ece']:.3f}")
    mean = next(x for x in lines if x.startswith("mean ("))
    assert f"{s['mean']['auroc']:.3f} [{s['mean']['auroc_ci'][0]:.3f}" in mean
    assert lines[-1].startswith("protocol: builtin") and "split test" in lines[-1]
    assert "12 images" in lines[-1] and "B=100" in lines[-1] and "resampling by patient" in lines[-1]
    assert len({len(x) for x in lines[:4]}) == 1  # fixed width: header, rule and label rows align


def test_bad_runs_data_and_options_raise_clear_errors(runs, shared_data, tmp_path):
    nih = shared_data / "cxr" / "nih"
    out = tmp_path / "o"
    with pytest.raises(DataError, match="nowhere"):
        evaluate_cxr(run=tmp_path / "nowhere", out=out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="config.yaml"):
        evaluate_cxr(run=tmp_path / "empty", out=out)
    sal = tmp_path / "salrun"
    sal.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "kdnas" / "configs" / "salnas_tiny.yaml", sal / "config.yaml")
    with pytest.raises(ConfigError, match="multilabel"):
        evaluate_cxr(run=sal, out=out)
    with pytest.raises(ConfigError, match="multilabel"):
        evaluate_cxr(run=runs["a"], out=out, compare=sal)
    with pytest.raises(ConfigError, match="unknown CXR format 'mimic'.*nih, chexpert"):
        evaluate_cxr(run=runs["a"], out=out, data=nih, format="mimic")
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "no_such_nih"))):
        evaluate_cxr(run=runs["a"], out=out, data=tmp_path / "no_such_nih", format="nih")
    with pytest.raises(ConfigError, match="split must be one of"):
        evaluate_cxr(run=runs["a"], out=out, split="holdout")
    with pytest.raises(ConfigError, match="n_boot"):
        evaluate_cxr(run=runs["a"], out=out, n_boot=0)
    with pytest.raises(ConfigError, match="the run's labels"):
        evaluate_cxr(run=runs["a"], out=out, labels=["Hernia"])
    disjoint = tmp_path / "disjoint"
    disjoint.mkdir()
    (disjoint / "labels.csv").write_text("path,Edema,Hernia\nx.png,1,0\n")
    with pytest.raises(ConfigError, match=r"no label of the run.*Atelectasis.*dataset labels: \['Edema', 'Hernia'\]"):
        evaluate_cxr(run=runs["a"], out=out, data=disjoint, format="csv", split="all", options={"check_images": False})
    with pytest.raises(KdnasError, match="unknown option"):
        evaluate_cxr(run=runs["a"], out=out, data=nih, format="nih", options={"image_dir": "images"})
    assert not out.exists()  # nothing is written when the evaluation fails
