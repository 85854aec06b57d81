"""Shuffled AUC (``mit``): negatives drawn without replacement, without permuting the pool.

``subset_split_aucs`` samples how many of a split's negatives fall in each class of pool
values (multivariate hypergeometric) instead of permuting the pool. Its split AUCs must have
exactly the distribution of MATLAB's scheme: here every subset of a small pool is enumerated
and scored with an independent NumPy port of one ``AUC_shuffled`` split.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import torch

from kdnas.metrics.saliency import auc_shuffled
from kdnas.metrics.saliency.auc import subset_split_aucs

STEP = 0.1
EPS = np.finfo(np.float64).eps


def _mit_split(pos: np.ndarray, neg: np.ndarray) -> float:
    """One split of AUC_shuffled.m: thresholds fliplr(0:0.1:max), tp/fp with >=, (0,0) and (1,1), trapz.

    Octave's range 0:step:m holds k * step for k < floor((m + step) / step + 3 eps), the
    last element clamped to m.
    """
    m = max(pos.max(), neg.max())
    n = int(np.floor((m + STEP) / STEP + 3 * EPS))
    thr = np.arange(n) * STEP
    thr[-1] = min(thr[-1], m)
    thr = thr[::-1]
    tp = np.r_[0, [(pos >= t).mean() for t in thr], 1]
    fp = np.r_[0, [(neg >= t).mean() for t in thr], 1]
    return float(np.trapezoid(tp, fp))


def _pool() -> tuple[np.ndarray, np.ndarray]:
    """Values on grid points, just below them (where Octave clamps the last threshold), above the
    largest positive, and repeated."""
    below = [np.nextafter(k * STEP, 0.0) for k in (3, 5, 8)]
    pool = np.array([0.0, 2 * STEP, 0.25, 3 * STEP, *below, 0.55, 0.55, 0.93, 1.0])
    pos = np.array([0.05, 0.3, 0.3, 0.62, 0.71])
    return pos, pool


def test_split_aucs_have_the_distribution_of_subsets_drawn_without_replacement() -> None:
    pos, pool = _pool()
    n_take = 4
    exact = np.array([_mit_split(pos, pool[list(c)]) for c in itertools.combinations(range(len(pool)), n_take)])
    values, prob = np.unique(np.round(exact, 12), return_counts=True)
    prob = prob / prob.sum()
    got = subset_split_aucs(torch.from_numpy(pos), torch.ones(len(pos), dtype=torch.float64), torch.from_numpy(pool),
                            n_take, 40000, STEP, "octave", seed=5).numpy()
    # every split scores a value some subset scores
    idx = np.searchsorted(values, np.round(got, 12))
    assert np.all(values[np.clip(idx, 0, len(values) - 1)] == np.round(got, 12))
    freq = np.bincount(idx, minlength=len(values)) / len(got)
    # 40000 splits: a frequency's standard error is <= 0.0025
    assert np.abs(np.cumsum(freq) - np.cumsum(prob)).max() < 0.01
    assert np.abs(freq - prob).max() < 0.01
    assert got.mean() == pytest.approx(exact.mean(), abs=3 * exact.std() / np.sqrt(len(got)))


def test_drawing_the_whole_pool_is_deterministic() -> None:
    pos, pool = _pool()
    got = subset_split_aucs(torch.from_numpy(pos), torch.ones(len(pos), dtype=torch.float64), torch.from_numpy(pool),
                            len(pool), 7, STEP, "octave", seed=0)
    assert torch.allclose(got, torch.full((7,), _mit_split(pos, pool), dtype=torch.float64), rtol=0, atol=1e-15)


def test_shuffled_auc_is_seeded_and_cheap_on_a_large_pool() -> None:
    """100 splits against ~60k other-image pixels: reproducible per seed and fast (no permutation)."""
    rng = np.random.default_rng(0)
    pred = rng.random((240, 320))
    fix = [np.stack([rng.integers(0, 320, 3000), rng.integers(0, 240, 3000)], 1).astype(np.float64)]
    other = [np.stack([rng.integers(0, 320, 70000), rng.integers(0, 240, 70000)], 1).astype(np.float64)]
    a = auc_shuffled(pred, fix, other, "mit", seed=1)
    assert torch.equal(a, auc_shuffled(pred, fix, other, "mit", seed=1))
    assert not torch.equal(a, auc_shuffled(pred, fix, other, "mit", seed=2))
    assert abs(float(a[0]) - 0.5) < 0.02  # random map, random fixations
    t0 = time.perf_counter()
    auc_shuffled(pred, fix, other, "mit", seed=3)
    assert time.perf_counter() - t0 < 1.0  # a full permutation per split took ~0.1-0.4 s per image
