"""Multi-label AUROC, bootstrap CIs, AP, ECE and ROC curves against hand values and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from kdnas.metrics.multilabel import (
    _cluster_weights,
    average_precision,
    bootstrap_auroc_ci,
    expected_calibration_error,
    mean_auroc,
    paired_bootstrap_diff,
    per_label_auroc,
    roc_curves,
    weighted_auroc,
)
from kdnas.utils.errors import DataError


def _data(n: int = 300, c: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.3).astype(np.float64)
    s = y * np.linspace(0.3, 1.5, c) + rng.normal(size=(n, c))
    y[rng.random((n, c)) < 0.1] = np.nan
    return y, np.round(s, 1)  # rounding creates ties


def test_hand_values_with_ties():
    y = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    s = np.array([[0.1, 0.5], [0.4, 0.5], [0.35, 0.2], [0.8, 0.9]])
    # column 0: pairs (0.35>0.1) (0.35<0.4) (0.8>0.1) (0.8>0.4) -> 3/4
    # column 1: positives 0.5, 0.9 vs negatives 0.5, 0.2 -> (0.5 + 1 + 1 + 1) / 4
    np.testing.assert_allclose(per_label_auroc(y, s), [0.75, 0.875])
    assert per_label_auroc(y, s).dtype == np.float64


def test_nan_masking_and_undefined_labels():
    y, s = _data()
    y[:, 3] = 0.0  # no positives: undefined
    y[5, 3] = np.nan
    per = per_label_auroc(y, s)
    for c in range(3):
        known = ~np.isnan(y[:, c])
        assert per[c] == pytest.approx(roc_auc_score(y[known, c], s[known, c]), abs=1e-15)
    assert np.isnan(per[3])
    m = mean_auroc(y, s)
    assert m["n_excluded"] == 1 and m["excluded"] == [3]
    assert m["mean"] == pytest.approx(per[:3].mean(), abs=1e-15)
    np.testing.assert_array_equal(per_label_auroc(y[:, 0], s[:, 0]), per[:1])  # 1-D input = one label


def test_weighted_auroc_equals_sklearn_on_repeated_samples():
    y, s = _data(120, 1, seed=4)
    known = ~np.isnan(y[:, 0])
    yk, sk = y[known, 0], s[known, 0]
    rng = np.random.default_rng(1)
    w = rng.integers(0, 4, size=(5, yk.size)).astype(float)
    got = weighted_auroc(yk, sk, np.vstack([np.ones(yk.size), w]))
    assert got[0] == pytest.approx(roc_auc_score(yk, sk), abs=1e-15)
    for b in range(5):
        idx = np.repeat(np.arange(yk.size), w[b].astype(int))
        assert got[b + 1] == pytest.approx(roc_auc_score(yk[idx], sk[idx]), abs=1e-14)
    assert np.isnan(weighted_auroc(np.array([1.0, 1.0]), np.array([0.1, 0.2]), np.ones((1, 2))))[0]


def test_cluster_bootstrap_resamples_patients():
    groups = ["p1", "p1", "p2", "p3", "p3", "p3"]
    w = np.vstack(list(_cluster_weights(groups, 6, 200, seed=0)))
    assert w.shape == (200, 6)
    assert np.all(w[:, 0] == w[:, 1]) and np.all(w[:, 3] == w[:, 4]) and np.all(w[:, 4] == w[:, 5])
    np.testing.assert_array_equal(w[:, [0, 2, 3]].sum(axis=1), 3)  # 3 patients drawn per replicate


def test_bootstrap_ci_replicates_match_an_independent_resample():
    y, s = _data(200, 3, seed=2)
    groups = np.repeat(np.arange(100), 2)
    r = bootstrap_auroc_ci(y, s, groups=groups, n_boot=50, seed=7)
    again = bootstrap_auroc_ci(y, s, groups=groups, n_boot=50, seed=7)
    np.testing.assert_array_equal(r["per_label_replicates"], again["per_label_replicates"])
    w = np.vstack(list(_cluster_weights(groups, 200, 50, seed=7)))
    for b in (0, 17, 49):
        idx = np.repeat(np.arange(200), w[b].astype(int))
        ref = [roc_auc_score(y[idx, c][~np.isnan(y[idx, c])], s[idx, c][~np.isnan(y[idx, c])]) for c in range(3)]
        np.testing.assert_allclose(r["per_label_replicates"][b], ref, atol=1e-14)
        assert r["replicates"][b] == pytest.approx(np.mean(ref), abs=1e-14)
    lo, hi = r["ci"]
    assert lo <= r["mean"] <= hi
    assert (lo, hi) == pytest.approx(tuple(np.percentile(r["replicates"], [2.5, 97.5])), abs=1e-15)
    assert r["n_clusters"] == 100
    big = bootstrap_auroc_ci(*_data(2000, 3, seed=2), n_boot=50, seed=7)
    assert big["ci"][1] - big["ci"][0] < hi - lo


def test_bootstrap_drops_labels_undefined_in_a_replicate():
    y, s = _data(60, 2, seed=3)
    y[:, 1] = 0.0
    y[0, 1] = 1.0  # a single positive: absent from about a third of the replicates
    r = bootstrap_auroc_ci(y, s, n_boot=300, seed=0)
    undefined = np.isnan(r["per_label_replicates"][:, 1])
    assert 0.2 < undefined.mean() < 0.5 and r["undefined_replicates"][1] == undefined.sum()
    np.testing.assert_allclose(r["replicates"][undefined], r["per_label_replicates"][undefined, 0])


def test_paired_difference():
    y, s = _data(300, 3, seed=5)
    same = paired_bootstrap_diff(y, s, s, n_boot=100)
    assert same["diff"] == 0 and same["ci"] == (0.0, 0.0) and same["p_value"] == 1.0
    noisy = s + np.random.default_rng(9).normal(scale=3.0, size=s.shape)
    d = paired_bootstrap_diff(y, s, noisy, n_boot=200, seed=1)
    assert d["diff"] > 0 and d["ci"][0] > 0 and d["p_value"] < 0.05
    a = bootstrap_auroc_ci(y, s, n_boot=200, seed=1)
    b = bootstrap_auroc_ci(y, noisy, n_boot=200, seed=1)
    np.testing.assert_allclose(d["replicates"], a["replicates"] - b["replicates"], atol=1e-15)
    assert d["diff"] == pytest.approx(a["mean"] - b["mean"], abs=1e-15)


def test_average_precision_matches_sklearn():
    y, s = _data(150, 3, seed=6)
    y[:, 2] = 0.0
    ap = average_precision(y, s)
    for c in range(2):
        known = ~np.isnan(y[:, c])
        assert ap[c] == pytest.approx(average_precision_score(y[known, c], s[known, c]), abs=1e-15)
    assert np.isnan(ap[2])


def test_expected_calibration_error_by_hand():
    y = np.array([1, 0, 1, 0], dtype=float)
    p = np.array([0.9, 0.1, 0.6, 0.7])
    # bin [0, .5): p 0.1, y 0 -> |0 - 0.1| * 1/4; bin [.5, 1]: acc 2/3, conf 2.2/3 -> 0.2/3 * 3/4
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.025 + 0.05, abs=1e-15)
    assert expected_calibration_error([1.0], [1.0], n_bins=15) == 0.0  # p = 1 falls in the last bin
    y2 = np.array([[1, np.nan], [0, 1], [1, 0], [0, 0]])
    p2 = np.array([[0.9, 0.99], [0.1, 0.8], [0.6, 0.3], [0.7, 0.2]])
    per = expected_calibration_error(y2, p2, n_bins=2, average=None)
    assert per[0] == pytest.approx(0.075, abs=1e-15)
    # label 2: known p 0.8 (y 1), 0.3 (y 0), 0.2 (y 0): bin0 conf 0.25 acc 0 -> 0.25*2/3; bin1 |1-0.8|*1/3
    assert per[1] == pytest.approx(0.25 * 2 / 3 + 0.2 / 3, abs=1e-15)
    assert expected_calibration_error(y2, p2, n_bins=2, average="macro") == pytest.approx(per.mean(), abs=1e-15)
    pooled = expected_calibration_error(y2, p2, n_bins=2)
    known = ~np.isnan(y2)
    assert pooled == pytest.approx(expected_calibration_error(y2[known], p2[known], n_bins=2), abs=1e-15)
    with pytest.raises(DataError, match="logits"):
        expected_calibration_error(y, p * 3)


def test_roc_curves_and_input_errors():
    y, s = _data(80, 2, seed=8)
    y[:, 1] = 1.0
    curves = roc_curves(y, s, ["A", "B"])
    known = ~np.isnan(y[:, 0])
    fpr, tpr, thr = roc_curve(y[known, 0], s[known, 0])
    np.testing.assert_array_equal(curves["A"]["fpr"], fpr)
    np.testing.assert_array_equal(curves["A"]["tpr"], tpr)
    assert curves["B"] is None
    with pytest.raises(DataError, match="uncertain"):
        per_label_auroc(np.array([[1.0], [-1.0]]), np.array([[0.2], [0.4]]))
    with pytest.raises(DataError, match="shape"):
        per_label_auroc(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(DataError, match="NaN or infinite"):
        per_label_auroc(np.array([[1.0], [0.0]]), np.array([[np.nan], [0.3]]))
    # a NaN score is fine where the label is unknown
    assert per_label_auroc(np.array([[1.0], [0.0], [np.nan]]), np.array([[0.9], [0.3], [np.nan]]))[0] == 1.0
