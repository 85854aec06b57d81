"""The ``mit`` preset against values of the official MIT metric code (GNU Octave) on real SALICON maps.

Reference: ``../shared/data/saliency/reference/mit_metrics_octave_salicon.csv`` (README there):
deterministic rows must match to 1e-6, randomly sampled rows (AUC-Borji, sAUC) within 0.005.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kdnas.metrics.saliency import auc_borji, auc_judd, auc_shuffled, cc, kld, mit_blur, nss, sim

REF = "saliency/reference"


@cache
def _png(path: Path) -> np.ndarray:
    arr = np.asarray(Image.open(path), dtype=np.float64)
    arr.flags.writeable = False  # cached: shared between tests
    return arr


@cache
def _rows(root: str) -> list[dict]:
    with open(Path(root) / REF / "mit_metrics_octave_salicon.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _image_id(path: str) -> str:
    return path.split("_")[-1].split(".")[0]


def _fix_coords(fix_map: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(fix_map)
    return np.stack([xs, ys], axis=1).astype(np.float64)  # 0-based (x, y)


@cache
def _score_row(root: str, index: int) -> float:
    return _score(Path(root), _rows(root)[index])


def _scores(shared: Path, keep) -> tuple[list[dict], list[float]]:
    rows = _rows(str(shared))
    picked = [i for i, r in enumerate(rows) if keep(r)]
    return [rows[i] for i in picked], [_score_row(str(shared), i) for i in picked]


def _score(shared: Path, row: dict) -> float:
    ref = shared / REF
    sal = _png(ref / row["saliency_map"])
    metric = row["metric"]
    if row["case"] == "SALICON-val":
        gt = _png(ref / row["ground_truth"])
        fn = {"CC": cc, "KLdiv": kld, "similarity": sim}[metric]
        return float(fn(sal, gt, "mit")[0])
    image = _image_id(row["saliency_map"])
    fix_map = _png(ref / f"inputs/fix_{image}.png") > 0
    fix = [_fix_coords(fix_map)]
    if metric == "AUC_Judd":
        return float(auc_judd(sal, fix, "mit", jitter=False)[0])
    if metric == "NSS":
        return float(nss(sal, fix, "mit")[0])
    if metric == "CC":
        return float(cc(sal, mit_blur(fix_map.astype(np.float64), fc=8), "mit")[0])
    if metric == "AUC_Borji":
        return float(auc_borji(sal, fix, "mit", n_splits=100, step=0.1, seed=0)[0])
    if metric == "AUC_shuffled":
        others = sorted({_image_id(r["saliency_map"]) for r in _rows(str(shared)) if r["case"] == "SALICON"})
        other = np.zeros_like(fix_map)
        for j in others:
            if j != image:
                other |= _png(ref / f"inputs/fix_{j}.png") > 0
        return float(auc_shuffled(sal, fix, [_fix_coords(other)], "mit", seed=0)[0])
    raise AssertionError(f"unexpected metric {metric}")


def _ids(rows: list[dict]) -> list[str]:
    return [f"{r['case']}-{Path(r['saliency_map']).stem}-{r['metric']}" for r in rows]


def test_reference_table_is_complete(shared_data: Path) -> None:
    rows = _rows(str(shared_data))
    assert len(rows) == 80
    deterministic = [r for r in rows if "random" not in r["args"]]
    assert len(deterministic) == 60


def test_every_deterministic_row_to_1e6(shared_data: Path) -> None:
    rows, got = _scores(shared_data, lambda r: "random" not in r["args"])
    errors = {i: abs(g - float(r["value"])) for i, r, g in zip(_ids(rows), rows, got, strict=True)}
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, f"{worst}: {errors[worst]:.3g}"


def test_random_rows_within_sampling_spread(shared_data: Path) -> None:
    rows, got = _scores(shared_data, lambda r: "random" in r["args"])
    assert len(rows) == 20
    errors = {i: abs(g - float(r["value"])) for i, r, g in zip(_ids(rows), rows, got, strict=True)}
    worst = max(errors, key=errors.get)
    assert errors[worst] < 0.005, f"{worst}: {errors[worst]:.3g}"


def test_means_over_the_ten_images(shared_data: Path) -> None:
    """README: means over the 10 SALICON images are AUC_Judd 0.7146, NSS 1.0000, CC 0.6147."""
    means = {}
    for metric in ("AUC_Judd", "NSS", "CC"):
        _, got = _scores(shared_data, lambda r, m=metric: r["case"] == "SALICON" and r["metric"] == m)
        means[metric] = np.mean(got)
    assert means["AUC_Judd"] == pytest.approx(0.7146, abs=5e-5)
    assert means["NSS"] == pytest.approx(1.0000, abs=5e-5)
    assert means["CC"] == pytest.approx(0.6147, abs=5e-5)


def test_annotation_points_with_duplicates_give_the_binary_map_values(shared_data: Path, salicon_fixations) -> None:
    """The mit preset collapses duplicate points: raw SALICON points == the distinct-pixel PNG."""
    rows = {(_image_id(r["saliency_map"]), r["metric"]): float(r["value"])
            for r in _rows(str(shared_data)) if r["case"] == "SALICON"}
    image_ids, fix = salicon_fixations  # 1-based [row, col] converted to 0-based (x, y)
    assert image_ids == sorted({int(i) for i, _ in rows})
    assert sum(len(f) for f in fix) == 73630
    maps = np.stack([_png(shared_data / REF / f"inputs/sal_{i}.png") for i in image_ids])
    judd = auc_judd(maps, fix, "mit", jitter=False)
    nss_vals = nss(maps, fix, "mit")
    for k, i in enumerate(image_ids):
        assert float(judd[k]) == pytest.approx(rows[(str(i), "AUC_Judd")], abs=1e-6)
        assert float(nss_vals[k]) == pytest.approx(rows[(str(i), "NSS")], abs=1e-6)


def test_kld_edge_case_with_zero_regions(shared_data: Path) -> None:
    """The slice map with large zero regions: KLdiv 8.12 (eps handling matters)."""
    ref = shared_data / REF
    s = _png(ref / "inputs/COCO_val2014_000000000208_0.png")
    g = _png(ref / "inputs/COCO_val2014_000000000208.png")
    assert (s == 0).mean() > 0.5
    assert float(kld(s, g, "mit")[0]) == pytest.approx(8.1206532605, abs=1e-6)
