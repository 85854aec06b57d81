"""Plots and the markdown report of the demo (matplotlib, Agg backend, atomic writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kdnas.utils.io import atomic_save  # noqa: E402


def _save(fig, path: Path) -> None:
    atomic_save(path, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight", format="png"), suffix=".png")
    plt.close(fig)


def plot_training_curves(runs: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Training loss and validation selection score per epoch, one line per run."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, history in runs.items():
        epochs = [h["epoch"] + 1 for h in history]
        axes[0].plot(epochs, [h["train"].get("loss", np.nan) for h in history], marker="o", label=label)
        axes[1].plot(epochs, [h["score"] for h in history], marker="o", label=label)
    axes[0].set(title="training loss", xlabel="epoch")
    axes[1].set(title="validation selection score (lower is better)", xlabel="epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, path)


def plot_roc_curves(curves: dict[str, tuple[np.ndarray, np.ndarray, list[str]]], path: Path) -> None:
    """Per-label ROC curves of several models side by side. ``curves[name] = (labels, scores, names)``."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 4), squeeze=False)
    for ax, (title, (y, s, names)) in zip(axes[0], curves.items(), strict=True):
        for j, name in enumerate(names):
            known = ~np.isnan(y[:, j])
            if len(np.unique(y[known, j])) < 2:
                continue
            fpr, tpr, _ = roc_curve(y[known, j], s[known, j])
            ax.plot(fpr, tpr, label=f"{name} ({roc_auc_score(y[known, j], s[known, j]):.3f})")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set(title=title, xlabel="false positive rate", ylabel="true positive rate")
        ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)


def plot_saliency_overlays(rows: list[dict[str, Any]], path: Path) -> None:
    """``rows``: dicts with ``image`` (HxWx3 uint8), ``gt`` and named predictions (HxW)."""
    from kdnas.predict import overlay

    keys = [k for k in rows[0] if k not in ("image", "name")]
    fig, axes = plt.subplots(len(rows), 1 + len(keys), figsize=(2.6 * (1 + len(keys)), 2.1 * len(rows)),
                             squeeze=False)
    for r, row in enumerate(rows):
        axes[r, 0].imshow(row["image"])
        axes[r, 0].set_title(row.get("name", ""), fontsize=8)
        for c, key in enumerate(keys, start=1):
            m = np.asarray(row[key], dtype=np.float32)
            axes[r, c].imshow(overlay(row["image"], m / max(float(m.max()), 1e-8)))
            axes[r, c].set_title(key, fontsize=8)
        for ax in axes[r]:
            ax.axis("off")
    _save(fig, path)
