"""Uncertain-label policies (CheXpert ``-1``) and the teacher-soft-label contract.

Label arrays use 1 = positive, 0 = negative, NaN = unknown, -1 = uncertain. A policy
replaces every -1 entry:

=================  ============================================================
``ignore``         -1 -> NaN (masked in the loss and AUROC; U-Ignore)
``zeros``          -1 -> 0 (U-Zeros)
``ones``           -1 -> 1 (U-Ones)
``smooth``         -1 -> U(0.55, 0.85), label smoothing of U-Ones (Pham et al.)
``smooth_zeros``   -1 -> U(0, 0.3), label smoothing of U-Zeros
``teacher``        -1 is **kept**; the distiller fills it with the teacher probability
=================  ============================================================

Teacher contract: with ``teacher`` the loaders leave -1 in ``labels`` and samples carry
``meta["uncertain_mask"]`` (bool, True where -1). Before any hard-label loss, the distiller
calls :func:`fill_uncertain` with the teacher's sigmoid probabilities for the same entries;
a -1 reaching a loss is a bug (:func:`check_resolved` guards it).
"""

from __future__ import annotations

import numpy as np

from kdnas.utils.errors import ConfigError, DataError

UNCERTAINTY_POLICIES = ("ignore", "zeros", "ones", "smooth", "smooth_zeros", "teacher")
_ALIASES = {"u-ignore": "ignore", "u-zeros": "zeros", "u-ones": "ones", "lsr": "smooth", "lsr_ones": "smooth",
            "label_smoothing": "smooth", "lsr_zeros": "smooth_zeros", "teacher_soft": "teacher"}
SMOOTH_RANGES = {"smooth": (0.55, 0.85), "smooth_zeros": (0.0, 0.3)}


def check_policy(policy: str) -> str:
    """Canonical policy name; unknown names raise :class:`ConfigError` listing the valid ones."""
    name = _ALIASES.get(str(policy).strip().lower(), str(policy).strip().lower())
    if name not in UNCERTAINTY_POLICIES:
        raise ConfigError(f"unknown uncertainty policy {policy!r}; valid: {', '.join(UNCERTAINTY_POLICIES)}")
    return name


def apply_uncertainty(labels: np.ndarray, policy: str, seed: int = 0,
                      smooth_range: tuple[float, float] | None = None) -> np.ndarray:
    """A copy of ``labels`` (float32) with every -1 replaced according to ``policy``.

    The smoothing draws come from ``numpy.random.default_rng(seed)`` over the whole array in
    row-major order, so the same file and seed give the same soft labels.
    """
    policy = check_policy(policy)
    out = np.array(labels, dtype=np.float32, copy=True)
    unc = out == -1
    if policy == "teacher" or not unc.any():
        return out
    if policy == "ignore":
        out[unc] = np.nan
    elif policy == "zeros":
        out[unc] = 0.0
    elif policy == "ones":
        out[unc] = 1.0
    else:
        lo, hi = smooth_range if smooth_range is not None else SMOOTH_RANGES[policy]
        if not 0.0 <= lo <= hi <= 1.0:
            raise ConfigError(f"smooth_range must satisfy 0 <= low <= high <= 1, got {(lo, hi)}")
        draws = np.random.default_rng(seed).uniform(lo, hi, size=out.shape).astype(np.float32)
        out[unc] = draws[unc]
    return out


def fill_uncertain(labels: np.ndarray, teacher_probs: np.ndarray) -> np.ndarray:
    """Replace the -1 (uncertain) entries of ``labels`` with the teacher's probabilities.

    ``teacher_probs`` has the same shape (sigmoid outputs in [0, 1]); known labels and NaN
    stay as they are. Works on NumPy arrays and torch tensors alike (returns the same type).
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        torch = None
    if torch is not None and isinstance(labels, torch.Tensor):
        if labels.shape != teacher_probs.shape:
            raise DataError(None, f"labels {tuple(labels.shape)} and teacher probabilities "
                                  f"{tuple(teacher_probs.shape)} differ in shape")
        probs = teacher_probs.to(labels.dtype)
        return torch.where(labels == -1, probs, labels)
    lab = np.asarray(labels, dtype=np.float32)
    probs = np.asarray(teacher_probs, dtype=np.float32)
    if lab.shape != probs.shape:
        raise DataError(None, f"labels {lab.shape} and teacher probabilities {probs.shape} differ in shape")
    unc = lab == -1
    if unc.any() and (np.isnan(probs[unc]).any() or probs[unc].min() < 0 or probs[unc].max() > 1):
        raise DataError(None, "teacher probabilities for uncertain entries must lie in [0, 1]",
                        expected="sigmoid outputs, not logits")
    return np.where(unc, probs, lab).astype(np.float32)


def check_resolved(labels: np.ndarray) -> None:
    """Raise if uncertain (-1) entries remain, i.e. a policy was not applied before a loss/metric."""
    arr = np.asarray(labels)
    if np.any(arr == -1):
        raise DataError(None, f"{int(np.sum(arr == -1))} uncertain (-1) labels left unresolved",
                        expected="labels in {0, 1, NaN} or soft labels in [0, 1] (apply an uncertainty policy)")
