"""The one interface every colorization model implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from chromata.calibration import Calibration

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class ChromaPrediction:
    """Model output for a batch: chroma and a per-pixel uncertainty, both at the model's resolution."""

    ab: F32  # (N, h, w, 2), CIE a*/b*
    uncertainty: F32  # (N, h, w), 0 = certain … 1 = no idea


@runtime_checkable
class Colorizer(Protocol):
    """Predicts chroma from lightness. ``input_size`` is the square working resolution."""

    name: str
    weights_sha256: str
    input_size: int
    device: str
    calibration: Calibration | None  # maps the raw confidence score to P(good colorization)

    def predict_ab(self, lightness: F32) -> ChromaPrediction:
        """``lightness``: (N, input_size, input_size) float32 L* in [0, 100]."""
        ...

    def describe(self) -> dict[str, object]:
        """Provenance facts about the model (name, weights hash, decoding parameters)."""
        ...
