"""A per-image confidence score in [0, 1] with machine-readable reasons.

Definition (version 1, not yet calibrated to error probabilities):

    certainty = clip((U_UNSURE - mean_u) / (U_UNSURE - U_CERTAIN), 0, 1)
    score     = certainty × INPUT_PENALTY ** (number of input checks that fired)

where ``mean_u`` is the mean over pixels of the normalised entropy of the model's predicted ab-bin
distribution (0 = one colour is certain, 1 = every colour equally likely). The two anchors spread the
range the built-in model actually produces on held-out photos (mean_u from 0.49 to 0.68) over [0, 1].
On the 35 validation photos mean_u ranks images by CIEDE2000 with AUROC 0.78 (worse half vs better
half). Input checks run on the image's own lightness and each multiplies the score by
``INPUT_PENALTY``: they flag conditions under which any colorization is unreliable, however sure the
model is.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

SCORE_VERSION = "1"
INPUT_PENALTY = 0.6
LOW_CONTRAST_STD = 6.0  # std of L* (0..100) below which an image is mostly flat
UNDEREXPOSED_MEAN = 12.0
OVEREXPOSED_MEAN = 92.0
TINY_SIDE = 64  # px
HIGH_UNCERTAINTY = 0.62  # mean normalised entropy above which the model's colours are guesses (top ~15 %)
U_CERTAIN = 0.45  # mean normalised entropy that scores 1.0
U_UNSURE = 0.70  # … and 0.0


HEATMAP_LONG_SIDE = 256  # px: small enough to list beside a manifest, big enough to see regions


def heatmap_png(uncertainty: NDArray[np.float32], width: int, height: int) -> bytes:
    """Per-region confidence as a small PNG with the image's aspect ratio (viridis: bright = confident)."""
    scale = HEATMAP_LONG_SIDE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    certainty = np.clip(1.0 - uncertainty, 0.0, 1.0).astype(np.float32)
    grey = cv2.resize(certainty, size, interpolation=cv2.INTER_LINEAR) * 255.0 + 0.5
    coloured = cv2.applyColorMap(grey.astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    ok, buf = cv2.imencode(".png", coloured)
    if not ok:  # pragma: no cover - OpenCV always encodes PNG
        raise RuntimeError("could not encode heatmap")
    return bytes(buf.tobytes())


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
    certainty = float(np.clip((U_UNSURE - mean_u) / (U_UNSURE - U_CERTAIN), 0.0, 1.0))
    value = certainty * INPUT_PENALTY ** len(reasons)
    if mean_u > HIGH_UNCERTAINTY:
        reasons.append("high_chroma_uncertainty")
    return ConfidenceReport(score=round(value, 4), reasons=tuple(reasons), mean_uncertainty=mean_u)
