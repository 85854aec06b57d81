"""Benchmark: kdnas saliency metrics vs. pysaliency on the same 480x640 maps, in one run.

Metrics: CC + KLD (MIT_KLDiv) + SIM + NSS + exact all-pixel AUC, per image, under the
``pysaliency`` preset (so the values must agree). pysaliency is timed through its own
per-map functions (``pysaliency.metrics.CC/MIT_KLDiv/SIM/NSS`` and the ``general_roc``
kernel that ``SaliencyMapModel.AUC`` uses), which is its fastest path; kdnas through
``batch_metrics`` on the whole batch, in float64 (the exact numbers) and in float32 (the
allowed fast path; values within ~1e-6). Timings are interleaved and the median of the
repeats is reported.

Data: the 10 SALICON example maps (``../shared/data/saliency/reference/inputs/sal_*.png``)
with the official SALICON fixations (every point, duplicates kept) and a sigma-19 empirical
density. Two scenarios: ``png8`` (the maps as stored: integer values, passed as float64
like pysaliency gets them; the uint8 arrays themselves are timed too) and ``float`` (the
same maps blurred with sigma 2 px, i.e. continuous model-like outputs).

Both sides run on the same number of CPU threads (``--threads``, default 1: pysaliency's
NumPy kernels are single-threaded, and one thread is also the robust setting on a shared,
loaded machine where OpenMP threads stall); that is the headline ratio. ``--kdnas-threads``
adds kdnas-only timings on other thread counts (labelled ``kdnas_only``; pysaliency cannot
use more than one core). ``kdnas_ms_per_map_alone`` times each metric on its own. The load
average at start and end is recorded.

Run: ``python benchmarks/saliency_metrics.py [--repeats 7] [--copies 3] [--threads 1]
[--kdnas-threads 2]``; prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path


def _threads_from_argv(argv: list[str]) -> int:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return 1


# NumPy's BLAS reads these when it is first imported, so they are set before the imports
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = str(_threads_from_argv(sys.argv[1:]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "saliency"
METRICS = ("CC", "KLD", "SIM", "NSS", "AUC")


def load_salicon() -> tuple[np.ndarray, list[np.ndarray]]:
    from PIL import Image

    ann = json.loads((SHARED / "salicon/annotations/fixations_train2014examples.json").read_text())
    ids = sorted(im["id"] for im in ann["images"])
    points: dict[int, list] = {i: [] for i in ids}
    for a in ann["annotations"]:
        points[a["image_id"]] += a["fixations"]
    # SALICON stores 1-based [row, col]; kdnas uses 0-based (x, y)
    fix = [np.array([[c - 1, r - 1] for r, c in points[i]], dtype=np.float64) for i in ids]
    maps = np.stack([np.asarray(Image.open(SHARED / f"reference/inputs/sal_{i}.png"), dtype=np.float64)
                     for i in ids])
    return maps, fix


def pysaliency_scores(maps: np.ndarray, gts: np.ndarray, fix: list[np.ndarray]) -> dict[str, np.ndarray]:
    from pysaliency.metrics import CC, NSS, SIM, MIT_KLDiv
    from pysaliency.roc import general_roc

    out = {m: np.empty(len(maps)) for m in METRICS}
    for k, (s, g, f) in enumerate(zip(maps, gts, fix, strict=True)):
        xs, ys = f[:, 0].astype(int), f[:, 1].astype(int)
        out["CC"][k] = CC(s, g)
        out["KLD"][k] = MIT_KLDiv(s, g)
        out["SIM"][k] = SIM(s, g)
        out["NSS"][k] = NSS(s, xs, ys).mean()
        out["AUC"][k] = general_roc(s[ys, xs].astype(float), s.flatten().astype(float))[0]
    return out


def kdnas_scores(maps: torch.Tensor, gts: torch.Tensor, fix: list[np.ndarray], dtype: torch.dtype | None = None,
                 metrics: tuple[str, ...] = METRICS) -> dict[str, torch.Tensor]:
    from kdnas.metrics.saliency import batch_metrics

    return batch_metrics(maps, gts, fix, metrics=metrics, preset="pysaliency", dtype=dtype or maps.dtype)


def timed(fn, repeats: int) -> list[float]:
    return [_once(fn) for _ in range(repeats)]


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _median_tp(fn, n_maps: int, repeats: int) -> float:
    fn()
    return n_maps / statistics.median(timed(fn, repeats))


def run(repeats: int, copies: int, threads: int, kdnas_threads: list[int]) -> dict:
    from kdnas.metrics.saliency import fixation_map, gaussian_blur

    maps10, fix10 = load_salicon()
    maps_np = np.concatenate([maps10] * copies)
    fix = fix10 * copies
    counts = fixation_map(fix10, (480, 640), rounding="floor")
    gts_np = np.concatenate([gaussian_blur(counts, 19.0).numpy()] * copies)
    scenarios = {"png8": maps_np, "float": gaussian_blur(torch.from_numpy(maps_np), 2.0).numpy()}
    load_start = os.getloadavg()[0]
    result = {
        "benchmark": "saliency_metrics",
        "metrics": list(METRICS),
        "preset": "pysaliency",
        "maps": len(maps_np),
        "size": [480, 640],
        "device": "cpu",
        "threads": threads,
        "kdnas_only_threads": kdnas_threads,
        "torch": torch.__version__,
        "repeats": repeats,
        "scenarios": {},
    }
    gts_t = torch.from_numpy(gts_np)
    for name, maps in scenarios.items():
        result["scenarios"][name] = scenario(name, maps, gts_np, gts_t, fix, repeats, threads, kdnas_threads)
    result["load_average_1min"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    return result


def scenario(name: str, maps: np.ndarray, gts_np: np.ndarray, gts_t: torch.Tensor, fix: list[np.ndarray],
             repeats: int, threads: int, kdnas_threads: list[int]) -> dict:
    """Throughputs and largest differences of one scenario (see the module docstring)."""
    n = len(maps)
    maps_t = torch.from_numpy(np.ascontiguousarray(maps))
    maps_32, gts_32 = maps_t.float(), gts_t.float()
    ref = pysaliency_scores(maps, gts_np, fix)  # also warms up numba
    got = kdnas_scores(maps_t, gts_t, fix)
    got_32 = kdnas_scores(maps_32, gts_32, fix)
    t_ref, t_kd, t_32 = [], [], []
    for _ in range(repeats):  # interleave so load changes hit every side alike
        t_ref.append(_once(lambda: pysaliency_scores(maps, gts_np, fix)))
        t_kd.append(_once(lambda: kdnas_scores(maps_t, gts_t, fix)))
        t_32.append(_once(lambda: kdnas_scores(maps_32, gts_32, fix)))
    ref_tp, kd_tp, kd32_tp = (n / statistics.median(t) for t in (t_ref, t_kd, t_32))
    entry = {
        "pysaliency_maps_per_s": round(ref_tp, 2),
        "kdnas_maps_per_s": round(kd_tp, 2),
        "ratio": round(kd_tp / ref_tp, 2),
        "max_abs_diff": {m: float(np.max(np.abs(ref[m] - got[m].numpy()))) for m in METRICS},
        "kdnas_float32_maps_per_s": round(kd32_tp, 2),
        "ratio_float32": round(kd32_tp / ref_tp, 2),
        "max_abs_diff_float32": {m: float(np.max(np.abs(ref[m] - got_32[m].double().numpy()))) for m in METRICS},
    }
    if name == "png8":  # the uint8 arrays as stored: computed in float64, no integrality test needed
        maps_u8 = torch.from_numpy(maps.astype(np.uint8))
        got_u8 = kdnas_scores(maps_u8, gts_t, fix, torch.float64)
        u8_tp = _median_tp(lambda: kdnas_scores(maps_u8, gts_t, fix, torch.float64), n, repeats)
        entry["kdnas_uint8_input_maps_per_s"] = round(u8_tp, 2)
        entry["ratio_uint8_input"] = round(u8_tp / ref_tp, 2)
        entry["max_abs_diff_uint8_input"] = max(float(np.max(np.abs(ref[m] - got_u8[m].numpy()))) for m in METRICS)
    entry["kdnas_ms_per_map_alone"] = {
        m: round(1e3 / _median_tp(lambda m=m: kdnas_scores(maps_t, gts_t, fix, metrics=(m,)), n, repeats), 3)
        for m in METRICS}
    for k in kdnas_threads:
        torch.set_num_threads(k)
        try:
            tp = _median_tp(lambda: kdnas_scores(maps_t, gts_t, fix), n, repeats)
        finally:
            torch.set_num_threads(threads)
        entry[f"kdnas_only_threads_{k}_maps_per_s"] = round(tp, 2)
        entry[f"kdnas_only_threads_{k}_vs_pysaliency_1_thread"] = round(tp / ref_tp, 2)
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--copies", type=int, default=3, help="how many times the 10 maps are repeated")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for both libraries")
    ap.add_argument("--kdnas-threads", type=int, nargs="*", default=[2],
                    help="extra kdnas-only timings on these thread counts (pysaliency is single-threaded)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    if not hasattr(np, "trapz"):  # pysaliency still calls the removed numpy.trapz (benchmark-only shim)
        np.trapz = np.trapezoid
    print(json.dumps(run(args.repeats, args.copies, args.threads, args.kdnas_threads), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
