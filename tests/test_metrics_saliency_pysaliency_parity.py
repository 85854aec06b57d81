"""The ``pysaliency`` preset against pysaliency itself (test dependency) on the real SALICON maps.

Maps: ``reference/inputs/sal_<id>.png``; fixations: every point of the official SALICON
annotation JSON (duplicates kept, 1-based [row, col] converted to 0-based (x, y)); ground
truth for the map metrics: the sigma-19 blurred fixation counts and the real SALICON-val maps.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kdnas.metrics.saliency import (
    auc_exact,
    auc_judd,
    auc_shuffled,
    batch_metrics,
    cc,
    fixation_map,
    gaussian_blur,
    kld,
    nss,
    sim,
)

pysaliency = pytest.importorskip("pysaliency")
if not hasattr(np, "trapz"):  # pysaliency still calls numpy.trapz (removed in NumPy 2.4); test-only shim
    np.trapz = np.trapezoid
from pysaliency.metrics import CC, NSS, SIM, MIT_KLDiv  # noqa: E402

TOL = 1e-6
# pysaliency's MIT_KLDiv takes log(0) on zero pixels by design (exp(-inf) = 0 afterwards)
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")


@pytest.fixture(scope="module")
def salicon(shared_data: Path, salicon_fixations) -> dict:
    root = shared_data / "saliency"
    ids, fix = salicon_fixations
    maps = np.stack([np.asarray(Image.open(root / f"reference/inputs/sal_{i}.png"), dtype=np.float64)
                     for i in ids])
    gts = gaussian_blur(fixation_map(fix, (480, 640)), 19.0).numpy()
    return {"ids": ids, "fix": fix, "maps": maps, "gts": gts}


class _Maps(pysaliency.SaliencyMapModel):
    """A pysaliency model that returns our stored maps; stimulus k is a constant image of value k."""

    def __init__(self, maps: np.ndarray):
        super().__init__(caching=False)
        self.maps = maps

    def _saliency_map(self, stimulus: np.ndarray) -> np.ndarray:
        return self.maps[int(stimulus.flat[0])]


@pytest.fixture(scope="module")
def model(salicon: dict):
    n = len(salicon["ids"])
    stimuli = pysaliency.Stimuli([np.full((480, 640), k, dtype=np.uint8) for k in range(n)])
    fix = salicon["fix"]
    xs = np.concatenate([f[:, 0] for f in fix])
    ys = np.concatenate([f[:, 1] for f in fix])
    ns = np.concatenate([np.full(len(f), k) for k, f in enumerate(fix)])
    fixations = pysaliency.Fixations.create_without_history(xs, ys, ns)
    return _Maps(salicon["maps"]), stimuli, fixations


def _close(ref, got) -> None:
    ref = np.asarray(ref, dtype=np.float64)
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=TOL)


def test_map_metrics_equal_pysaliency(salicon: dict) -> None:
    maps, gts = salicon["maps"], salicon["gts"]
    _close([CC(m, g) for m, g in zip(maps, gts, strict=True)], cc(maps, gts, "pysaliency"))
    _close([MIT_KLDiv(m, g) for m, g in zip(maps, gts, strict=True)], kld(maps, gts, "pysaliency"))
    _close([SIM(m, g) for m, g in zip(maps, gts, strict=True)], sim(maps, gts, "pysaliency"))


def test_map_metrics_on_salicon_val_ground_truth(shared_data: Path) -> None:
    ref = shared_data / "saliency/reference/inputs"
    for name in ("COCO_val2014_000000000192", "COCO_val2014_000000000208"):
        g = np.asarray(Image.open(ref / f"{name}.png"), dtype=np.float64)
        slices = np.stack([np.asarray(Image.open(ref / f"{name}_{s}.png"), dtype=np.float64) for s in range(5)])
        gts = np.broadcast_to(g, slices.shape)
        _close([CC(s, g) for s in slices], cc(slices, gts, "pysaliency"))
        _close([MIT_KLDiv(s, g) for s in slices], kld(slices, gts, "pysaliency"))
        _close([SIM(s, g) for s in slices], sim(slices, gts, "pysaliency"))


def test_nss_equals_pysaliency_per_image_mean(salicon: dict) -> None:
    ref = [NSS(m, f[:, 0], f[:, 1]).mean() for m, f in zip(salicon["maps"], salicon["fix"], strict=True)]
    _close(ref, nss(salicon["maps"], salicon["fix"], "pysaliency"))


def test_exact_auc_equals_pysaliency(salicon: dict, model) -> None:
    m, stimuli, fixations = model
    _close(m.AUC_per_image(stimuli, fixations, nonfixations="uniform"), auc_exact(salicon["maps"], salicon["fix"]))
    _close(m.AUC_per_image(stimuli, fixations, nonfixations="unfixated"),
           auc_exact(salicon["maps"], salicon["fix"], "unfixated"))


def test_exact_auc_kernels_agree_on_continuous_maps(salicon: dict, model) -> None:
    """Blurred (non-integer) maps take the LUT path; pysaliency is still the reference."""
    blurred = gaussian_blur(torch.from_numpy(salicon["maps"][:3]), 2.0).numpy()
    _, stimuli, fixations = model
    ref = _Maps(blurred).AUC_per_image(stimuli[:3], fixations[fixations.n < 3], nonfixations="uniform")
    for method in ("auto", "lut", "search"):
        _close(ref, auc_exact(blurred, salicon["fix"][:3], method=method))


def test_auc_judd_equals_pysaliency(salicon: dict, model) -> None:
    m, stimuli, fixations = model
    # default: jitter N(0,1)*1e-7 from RandomState(42), image after image
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jittered = pysaliency.saliency_map_models.RandomNoiseSaliencyMapModel(m, noise_size=1e-7, random_seed=42)
        ref_jitter = jittered.AUC_per_image(stimuli, fixations, nonfixations="unfixated", thresholds="fixations")
    _close(ref_jitter, auc_judd(salicon["maps"], salicon["fix"], "pysaliency"))
    assert float(auc_judd(salicon["maps"], salicon["fix"], "pysaliency").mean()) == pytest.approx(
        m.AUC_Judd(stimuli, fixations), abs=TOL)
    ref_plain = m.AUC_per_image(stimuli, fixations, nonfixations="unfixated", thresholds="fixations")
    _close(ref_plain, auc_judd(salicon["maps"], salicon["fix"], "pysaliency", jitter=False))


def test_shuffled_auc_equals_pysaliency(salicon: dict, model) -> None:
    m, stimuli, fixations = model
    fix = salicon["fix"]
    other = [np.concatenate([f for j, f in enumerate(fix) if j != i]) for i in range(len(fix))]
    _close(m.AUC_per_image(stimuli, fixations, nonfixations="shuffled"),
           auc_shuffled(salicon["maps"], fix, other, "pysaliency"))


def test_batch_metrics_equal_pysaliency(salicon: dict) -> None:
    maps, gts, fix = salicon["maps"], salicon["gts"], salicon["fix"]
    got = batch_metrics(maps, gts, fix, metrics=("CC", "KLD", "SIM", "NSS", "AUC"), preset="pysaliency")
    _close([CC(a, b) for a, b in zip(maps, gts, strict=True)], got["CC"])
    _close([MIT_KLDiv(a, b) for a, b in zip(maps, gts, strict=True)], got["KLD"])
    _close([SIM(a, b) for a, b in zip(maps, gts, strict=True)], got["SIM"])
    _close([NSS(a, f[:, 0], f[:, 1]).mean() for a, f in zip(maps, fix, strict=True)], got["NSS"])


def test_pysaliency_guards(salicon: dict) -> None:
    """pysaliency CC is 0 for a constant prediction; NSS skips the division (0)."""
    g = salicon["gts"][0]
    flat = np.full((480, 640), 3.0)
    assert CC(flat, g) == 0.0
    assert float(cc(flat, g, "pysaliency")[0]) == 0.0
    f = salicon["fix"][0]
    assert float(nss(flat, [f], "pysaliency")[0]) == NSS(flat, f[:, 0], f[:, 1]).mean() == 0.0
    zero = np.zeros((480, 640))
    assert float(sim(zero, g, "pysaliency")[0]) == pytest.approx(SIM(zero, g), abs=TOL)
    assert float(kld(zero, g, "pysaliency")[0]) == pytest.approx(MIT_KLDiv(zero, g), abs=TOL)
