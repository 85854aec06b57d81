"""Sample types shared by every dataset loader.

Loaders return these plain containers; tasks turn them into tensors (resize, augment,
normalise). Keeping loaders free of torch transforms lets metrics and evaluation score
at the stimulus' native resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class SaliencySample:
    """One saliency stimulus at its native resolution.

    ``fixations`` are **0-based** ``(x, y)`` pixel coordinates in the stimulus frame
    (column, row), float64, shape ``(N, 2)``; duplicates are kept exactly as the dataset
    records them (metric presets decide whether they collapse). They are never stored as
    resized binary maps.
    """

    name: str
    image: np.ndarray  # H x W x 3 uint8 RGB
    fixations: np.ndarray  # N x 2 float64, columns x, y (0-based)
    density: np.ndarray | None = None  # H x W float64 empirical saliency map, if the dataset has one
    size: tuple[int, int] = (0, 0)  # (height, width) of the stimulus
    subjects: np.ndarray | None = None  # N int, observer index per fixation, when known
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.size == (0, 0):
            self.size = (int(self.image.shape[0]), int(self.image.shape[1]))
        self.fixations = np.asarray(self.fixations, dtype=np.float64).reshape(-1, 2)


class SaliencyDataset(Sequence):
    """Base class of saliency loaders: an indexable sequence of :class:`SaliencySample`.

    Subclasses fill ``self.names`` (sorted stimulus names, the order every split refers
    to) and implement ``load(name)``.
    """

    names: list[str]
    root: Path
    format_name: str = "base"

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, idx):  # type: ignore[override]
        if isinstance(idx, slice):
            return [self.load(n) for n in self.names[idx]]
        return self.load(self.names[idx])

    def load(self, name: str) -> SaliencySample:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class Box:
    """A labelled bounding box ``(x, y, w, h)`` in pixels of a stated reference frame."""

    label: str
    x: float
    y: float
    w: float
    h: float

    def scaled(self, sx: float, sy: float) -> Box:
        return Box(self.label, self.x * sx, self.y * sy, self.w * sx, self.h * sy)


@dataclass
class CXRRecord:
    """One chest radiograph entry of a label file (no pixels yet).

    ``labels`` is float32 over the dataset's label list: 1 positive, 0 negative,
    NaN unknown, -1 uncertain (only before an uncertainty policy is applied).
    ``boxes`` are in the frame ``box_frame`` = (width, height) the dataset states
    (NIH: the 1024 x 1024 released images).
    """

    name: str
    image_path: Path
    labels: np.ndarray
    patient_id: str | None = None
    study_id: str | None = None
    view: str | None = None
    boxes: list[Box] = field(default_factory=list)
    box_frame: tuple[int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class CXRSample:
    """A decoded radiograph: grey float32 image in [0, 1] (H x W), labels, boxes in image pixels."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    boxes: list[Box] = field(default_factory=list)
    patient_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
