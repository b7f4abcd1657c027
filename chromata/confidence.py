"""A per-image confidence score in [0, 1] with machine-readable reasons.

Definition (version 1, uncalibrated):

    score = (1 - mean_u) × Π penalty(reason) over the input checks that fired

where ``mean_u`` is the mean over pixels of the normalised entropy of the model's predicted ab-bin
distribution (0 = one colour is certain, 1 = every colour equally likely). Input checks run on the
image's own lightness and each multiplies the score by ``INPUT_PENALTY``: they flag conditions under
which any colorization is unreliable, however sure the model is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SCORE_VERSION = "1"
INPUT_PENALTY = 0.6
LOW_CONTRAST_STD = 6.0  # std of L* (0..100) below which an image is mostly flat
UNDEREXPOSED_MEAN = 12.0
OVEREXPOSED_MEAN = 92.0
TINY_SIDE = 64  # px
HIGH_UNCERTAINTY = 0.55  # mean normalised entropy above which the model's colours are guesses


@dataclass(frozen=True)
class ConfidenceReport:
    score: float
    reasons: tuple[str, ...]
    mean_uncertainty: float


def input_reasons(lightness: NDArray[np.float32], width: int, height: int) -> list[str]:
    """Checks on the input alone (L* at any resolution)."""
    reasons = []
    if min(width, height) < TINY_SIDE:
        reasons.append("tiny_image")
    mean = float(lightness.mean())
    if float(lightness.std()) < LOW_CONTRAST_STD:
        reasons.append("low_contrast")
    if mean < UNDEREXPOSED_MEAN:
        reasons.append("underexposed")
    elif mean > OVEREXPOSED_MEAN:
        reasons.append("overexposed")
    return reasons


def score(
    uncertainty: NDArray[np.float32], lightness: NDArray[np.float32], width: int, height: int
) -> ConfidenceReport:
    """Combine the model's per-pixel uncertainty with the input checks into one report."""
    mean_u = float(np.clip(uncertainty.mean(), 0.0, 1.0))
    reasons = input_reasons(lightness, width, height)
    value = (1.0 - mean_u) * INPUT_PENALTY ** len(reasons)
    if mean_u > HIGH_UNCERTAINTY:
        reasons.append("high_chroma_uncertainty")
    return ConfidenceReport(score=round(value, 4), reasons=tuple(reasons), mean_uncertainty=mean_u)
