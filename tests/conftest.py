"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("KDNAS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

# Two cores in CI: keep intra-op threads bounded so parallel subprocess tests do not oversubscribe.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real dataset samples beside the checkout (``../shared/data``)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (set KDNAS_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def kdnas_cache(tmp_path_factory) -> Path:
    """One built-in-data cache for the whole session (tests that train share generated sets)."""
    path = tmp_path_factory.mktemp("kdnas_cache")
    os.environ["KDNAS_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_cxr_run(kdnas_cache, tmp_path_factory) -> Path:
    """A trained (2 epochs) EEEA-Net-C2 run on the built-in CXR set at 64 px, shared by several tests."""
    from kdnas import api

    out = tmp_path_factory.mktemp("runs") / "cxr"
    api.train("cxr_tiny_teacher", out_dir=out, progress=False, overrides={
        "model.name": "eeea_c2", "data.builtin": {"n_images": 120, "size": 64, "seed": 0}})
    return out


@pytest.fixture(scope="session")
def tiny_saliency_run(kdnas_cache, tmp_path_factory) -> Path:
    """A trained (1 epoch) tiny SalNAS supernet run with Self-KD, shared by several tests."""
    from kdnas import api

    out = tmp_path_factory.mktemp("runs") / "saliency"
    api.train("salnas_tiny", out_dir=out, progress=False, overrides={
        "train.epochs": 1, "data.builtin": {"n_images": 32, "size": [48, 64], "seed": 0},
        "train.batch_size": 8, "train.bn_calibration.num_images": 8, "train.tensorboard": False})
    return out


@pytest.fixture(scope="session")
def salicon_fixations(shared_data) -> tuple[list[int], list]:
    """The 10 SALICON example images' ids (sorted) and every annotated point (duplicates kept), parsed
    independently of kdnas's loaders: 1-based [row, col] -> 0-based (x, y)."""
    import json

    import numpy as np

    ann = json.loads((shared_data / "saliency/salicon/annotations/fixations_train2014examples.json").read_text())
    ids = sorted(im["id"] for im in ann["images"])
    points: dict[int, list] = {i: [] for i in ids}
    for a in ann["annotations"]:
        points[a["image_id"]] += a["fixations"]
    return ids, [np.array([[c - 1, r - 1] for r, c in points[i]], dtype=np.float64) for i in ids]
