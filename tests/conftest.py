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
