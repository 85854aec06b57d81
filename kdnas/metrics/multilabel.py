"""Multi-label metrics for chest X-ray classification (metrics.md §16), float64 and NaN-masked.

* Per label, only entries with a known label (0 or 1; NaN = unknown) are scored. A label with
  no positives or no negatives among them has an undefined AUROC: NaN, excluded from the macro
  mean, and the number excluded is reported.
* AUROC is the Mann-Whitney statistic with ties counted 0.5 (scikit-learn ``roc_auc_score`` per
  column for point estimates; an equivalent weighted formula for bootstrap replicates).
* Bootstrap CIs resample **clusters** (patients) with replacement; a label undefined in a
  replicate is dropped from that replicate's macro mean (not redrawn). Percentile intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from kdnas.utils.errors import DataError

_CHUNK = 64  # bootstrap replicates per vectorised block (fixed: results do not depend on memory)


def _as_2d(y_true: Any, y_score: Any, *, probabilities: bool = False) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if s.ndim == 1:
        s = s[:, None]
    if y.ndim != 2 or y.shape != s.shape:
        raise DataError(None, f"y_true {np.shape(y_true)} and scores {np.shape(y_score)} must have the same "
                              "N x C shape")
    known = ~np.isnan(y)
    if np.any(y[known] == -1):
        raise DataError(None, "y_true contains uncertain (-1) labels", expected="0, 1 or NaN (apply an "
                                                                                "uncertainty policy first)")
    if not np.all((y[known] == 0) | (y[known] == 1)):
        raise DataError(None, "y_true must be binary where known", expected="0, 1 or NaN")
    if np.any(~np.isfinite(s[known])):
        raise DataError(None, "scores are NaN or infinite where the label is known", expected="finite scores")
    if probabilities and np.any((s[known] < 0) | (s[known] > 1)):
        raise DataError(None, "probabilities outside [0, 1]", expected="sigmoid outputs, not logits")
    return y, s


def per_label_auroc(y_true: Any, y_score: Any) -> np.ndarray:
    """AUROC per label (column), NaN-masked; NaN where a label lacks positives or negatives."""
    y, s = _as_2d(y_true, y_score)
    out = np.full(y.shape[1], np.nan)
    for c in range(y.shape[1]):
        known = ~np.isnan(y[:, c])
        yc = y[known, c]
        if yc.size and 0 < yc.sum() < yc.size:
            out[c] = roc_auc_score(yc, s[known, c])
    return out


def _macro(values: np.ndarray) -> tuple[float, int]:
    defined = ~np.isnan(values)
    return (float(values[defined].mean()) if defined.any() else float("nan")), int((~defined).sum())


def mean_auroc(y_true: Any, y_score: Any) -> dict[str, Any]:
    """Macro mean AUROC over defined labels: ``{"mean", "n_excluded", "excluded", "per_label"}``.

    ``excluded`` lists the column indices whose AUROC is undefined (no positives or no negatives).
    """
    per = per_label_auroc(y_true, y_score)
    mean, n_excl = _macro(per)
    return {"mean": mean, "n_excluded": n_excl, "excluded": [int(i) for i in np.flatnonzero(np.isnan(per))],
            "per_label": per}


def _pairing(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Indices of negatives (by score) and positives, and for each positive the number of
    negatives scoring strictly below it (``lo``) and at most equal to it (``hi``)."""
    neg = np.flatnonzero(y == 0)
    neg = neg[np.argsort(s[neg], kind="mergesort")]
    pos = np.flatnonzero(y == 1)
    s_neg = s[neg]
    return neg, pos, np.searchsorted(s_neg, s[pos], "left"), np.searchsorted(s_neg, s[pos], "right")


def _auroc_weighted(pairing: tuple[np.ndarray, ...], weights: np.ndarray) -> np.ndarray:
    """AUROC per weight row: sum_pos w_i (W_neg below + half W_neg tied) / (W_pos W_neg)."""
    neg, pos, lo, hi = pairing
    cum = np.zeros((weights.shape[0], neg.size + 1))
    np.cumsum(weights[:, neg], axis=1, out=cum[:, 1:])
    w_pos = weights[:, pos]
    num = 0.5 * (w_pos * (cum[:, lo] + cum[:, hi])).sum(axis=1)
    den = w_pos.sum(axis=1) * cum[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def weighted_auroc(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of one label for each row of ``weights`` (B x n sample multiplicities).

    ``y`` (n,) binary, ``s`` (n,) scores. AUC = sum over positive/negative pairs of
    w_i w_j ([s_i > s_j] + 0.5 [s_i = s_j]) / (W_pos W_neg); NaN when a class has zero weight.
    With unit weights this is the Mann-Whitney AUROC.
    """
    pairing = _pairing(np.asarray(y, dtype=np.float64), np.asarray(s, dtype=np.float64))
    return _auroc_weighted(pairing, np.atleast_2d(np.asarray(weights, dtype=np.float64)))


def _cluster_weights(groups: Sequence[Any] | None, n: int, n_boot: int, seed: int):
    """Yield B x n sample multiplicities, _CHUNK replicates at a time, from a patient bootstrap."""
    if groups is None:
        codes = np.arange(n)
    else:
        if len(groups) != n:
            raise DataError(None, f"groups has {len(groups)} entries for {n} samples", expected="one id per sample")
        _, codes = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    n_groups = int(codes.max()) + 1 if n else 0
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        b = min(_CHUNK, n_boot - done)
        draws = rng.integers(0, n_groups, size=(b, n_groups))
        flat = (np.arange(b)[:, None] * n_groups + draws).ravel()
        counts = np.bincount(flat, minlength=b * n_groups).reshape(b, n_groups).astype(np.float64)
        yield counts[:, codes]
        done += b


def _replicate_aurocs(y: np.ndarray, scores: Sequence[np.ndarray], groups, n_boot: int, seed: int) -> list[np.ndarray]:
    """Per-replicate per-label AUROCs (B x C) for each score matrix, on shared resampled indices."""
    n, c = y.shape
    outs = [np.full((n_boot, c), np.nan) for _ in scores]
    # sort each (label, model) once; every replicate reuses the order with its own weights
    prepared = []
    for j in range(c):
        known = np.flatnonzero(~np.isnan(y[:, j]))
        per_model = []
        for s in scores:
            neg, pos, lo, hi = _pairing(y[known, j], s[known, j])
            per_model.append((known[neg], known[pos], lo, hi))
        prepared.append(per_model if known.size else None)
    row = 0
    for w in _cluster_weights(groups, n, n_boot, seed):
        b = w.shape[0]
        for j, per_model in enumerate(prepared):
            if per_model is None:
                continue
            for out, pairing in zip(outs, per_model, strict=True):
                out[row:row + b, j] = _auroc_weighted(pairing, w)
        row += b
    return outs


def _percentile_ci(values: np.ndarray, alpha: float) -> tuple[float, float]:
    v = values[~np.isnan(values)]
    if v.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(v, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    defined = ~np.isnan(a)
    total = np.where(defined, a, 0.0).sum(axis=1)
    count = defined.sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def bootstrap_auroc_ci(y_true: Any, y_score: Any, groups: Sequence[Any] | None = None, n_boot: int = 1000,
                       seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """Cluster-bootstrap percentile CIs of the per-label and macro-mean AUROC.

    ``groups`` = patient id per sample (None: each sample is its own cluster). Returns the point
    estimates, ``ci`` (macro) and ``per_label_ci`` (C x 2), and the per-replicate values
    ``replicates`` (B,) and ``per_label_replicates`` (B x C) with NaN where undefined.
    """
    y, s = _as_2d(y_true, y_score)
    if n_boot < 1:
        raise DataError(None, f"n_boot must be >= 1, got {n_boot}")
    point = mean_auroc(y, s)
    (reps,) = _replicate_aurocs(y, [s], groups, n_boot, seed)
    macro = _nanmean_rows(reps)
    return {
        "mean": point["mean"], "per_label": point["per_label"], "n_excluded": point["n_excluded"],
        "ci": _percentile_ci(macro, alpha),
        "per_label_ci": np.array([_percentile_ci(reps[:, j], alpha) for j in range(reps.shape[1])]),
        "replicates": macro, "per_label_replicates": reps,
        "undefined_replicates": np.isnan(reps).sum(axis=0),
        "n_boot": n_boot, "seed": seed, "alpha": alpha,
        "n_clusters": len(set(map(str, groups))) if groups is not None else y.shape[0],
        "method": "cluster bootstrap (resample patients with replacement), percentile interval; labels undefined "
                  "in a replicate are dropped from that replicate's macro mean",
    }


def paired_bootstrap_diff(y_true: Any, score_a: Any, score_b: Any, groups: Sequence[Any] | None = None,
                          n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """CI of AUROC(A) - AUROC(B) from one set of resampled patients shared by both models.

    ``p_value`` is the two-sided bootstrap p-value of the macro difference,
    ``min(1, 2 * min(P(d <= 0), P(d >= 0)))`` over replicates.
    """
    y, a = _as_2d(y_true, score_a)
    _, b = _as_2d(y_true, score_b)
    pa, pb = per_label_auroc(y, a), per_label_auroc(y, b)
    ra, rb = _replicate_aurocs(y, [a, b], groups, n_boot, seed)
    per_diff = ra - rb
    macro = _nanmean_rows(ra) - _nanmean_rows(rb)
    valid = macro[~np.isnan(macro)]
    p = min(1.0, 2.0 * min((valid <= 0).mean(), (valid >= 0).mean())) if valid.size else float("nan")
    return {
        "diff": _macro(pa)[0] - _macro(pb)[0], "per_label_diff": pa - pb,
        "ci": _percentile_ci(macro, alpha),
        "per_label_ci": np.array([_percentile_ci(per_diff[:, j], alpha) for j in range(per_diff.shape[1])]),
        "replicates": macro, "per_label_replicates": per_diff, "p_value": float(p),
        "n_boot": n_boot, "seed": seed, "alpha": alpha,
    }


def average_precision(y_true: Any, y_score: Any) -> np.ndarray:
    """Average precision per label (scikit-learn), NaN-masked; NaN where a label has no positives."""
    y, s = _as_2d(y_true, y_score)
    out = np.full(y.shape[1], np.nan)
    for c in range(y.shape[1]):
        known = ~np.isnan(y[:, c])
        if y[known, c].sum() > 0:
            out[c] = average_precision_score(y[known, c], s[known, c])
    return out


def expected_calibration_error(y_true: Any, y_prob: Any, n_bins: int = 15, average: str | None = "pooled"):
    """ECE with ``n_bins`` equal-width bins on [0, 1] (last bin closed), over known entries.

    ECE = sum_b (n_b / n) |mean(y in b) - mean(p in b)|. ``average``: ``"pooled"`` (all known
    entries of all labels together), ``"macro"`` (mean of per-label ECEs) or None (per-label array).
    """
    y, p = _as_2d(y_true, y_prob, probabilities=True)
    if n_bins < 1:
        raise DataError(None, f"n_bins must be >= 1, got {n_bins}")

    def ece(yv: np.ndarray, pv: np.ndarray) -> float:
        if yv.size == 0:
            return float("nan")
        idx = np.minimum((pv * n_bins).astype(np.int64), n_bins - 1)
        count = np.bincount(idx, minlength=n_bins).astype(np.float64)
        gap = np.abs(np.bincount(idx, weights=yv, minlength=n_bins) - np.bincount(idx, weights=pv, minlength=n_bins))
        return float(gap.sum() / count.sum())  # sum_b |sum y - sum p| / n == sum_b n_b/n |acc - conf|

    known = ~np.isnan(y)
    if average == "pooled":
        return ece(y[known], p[known])
    per = np.array([ece(y[known[:, c], c], p[known[:, c], c]) for c in range(y.shape[1])])
    if average is None:
        return per
    if average == "macro":
        return _macro(per)[0]
    raise DataError(None, f"average must be 'pooled', 'macro' or None, got {average!r}")


def roc_curves(y_true: Any, y_score: Any, label_names: Sequence[str] | None = None) -> dict[str, dict | None]:
    """Per-label ROC curves for plotting: ``{name: {"fpr", "tpr", "thresholds", "auroc"}}`` (None if undefined)."""
    y, s = _as_2d(y_true, y_score)
    names = list(label_names) if label_names is not None else [str(c) for c in range(y.shape[1])]
    if len(names) != y.shape[1]:
        raise DataError(None, f"{len(names)} label names for {y.shape[1]} columns")
    per = per_label_auroc(y, s)
    out: dict[str, dict | None] = {}
    for c, name in enumerate(names):
        if np.isnan(per[c]):
            out[name] = None
            continue
        known = ~np.isnan(y[:, c])
        fpr, tpr, thr = roc_curve(y[known, c], s[known, c])
        out[name] = {"fpr": fpr, "tpr": tpr, "thresholds": thr, "auroc": float(per[c])}
    return out
