"""A per-image confidence score in [0, 1] with machine-readable reasons.

Version 2 (the default wherever the package ships ``confidence-v2.json``): the certainty is the confidence
estimator's P(the colorization is in the better half) (:mod:`chromata.judgement.assess`), fitted on the real
mistakes of models that never saw the photos, for every model family; the input checks' penalties and the
optional calibration below apply to it as to version 1, and the estimator's region reasons
(``doubtful_colour_<kind>``) join the reasons.

Version 1 (film, and a package without the estimator; not calibrated to error probabilities):

    certainty = clip((U_UNSURE - mean_u) / (U_UNSURE - U_CERTAIN), 0, 1)
    score     = certainty × INPUT_PENALTY ** (number of input checks that fired)

where ``mean_u`` is the mean over pixels of the normalised entropy of the model's predicted ab-bin
distribution (0 = one colour is certain, 1 = every colour equally likely). The two anchors spread the
range the built-in model actually produces on held-out photos (mean_u from 0.49 to 0.68) over [0, 1].
On the 35 validation photos mean_u ranks images by CIEDE2000 with AUROC 0.78 (worse half vs better
half). Input checks (``chromata.judgement.inputchecks``) run on the image itself; each risk they find
multiplies the score by ``INPUT_PENALTY``: they flag conditions under which any colorization is
unreliable, however sure the model is. Tonings (sepia, cyanotype) are recorded but not penalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from chromata.judgement import assess
from chromata.judgement.assess import Assessment
from chromata.judgement.calibration_map import Calibration

SCORE_VERSION = "1"
INPUT_PENALTY = 0.6
# Input reasons that describe the material rather than a risk: recorded, not penalised.
INFORMATIVE_REASONS = frozenset({"sepia_toned", "cyanotype", "toned_monochrome"})
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
    certainty: float = 0.0  # before the input penalties and calibration: what a routing fit rescores
    version: str = SCORE_VERSION


def certainty_v1(mean_uncertainty: float) -> float:
    """Version 1's certainty from the mean normalised entropy."""
    return float(np.clip((U_UNSURE - mean_uncertainty) / (U_UNSURE - U_CERTAIN), 0.0, 1.0))


def score(
    uncertainty: NDArray[np.float32],
    input_reasons: Sequence[str] = (),
    calibration: Calibration | None = None,
    assessment: Assessment | None = None,
) -> ConfidenceReport:
    """Combine the certainty with the input checks (chromata.judgement.inputchecks): the estimator's
    ``assessment`` when there is one (version 2), else the model's per-pixel uncertainty (version 1); with a
    calibration, the result is the fitted probability that the colorization is good."""
    mean_u = float(np.clip(uncertainty.mean(), 0.0, 1.0))
    reasons = list(input_reasons)
    risks = [r for r in reasons if r not in INFORMATIVE_REASONS]
    certainty = assessment.p_better if assessment is not None else certainty_v1(mean_u)
    value = certainty * INPUT_PENALTY ** len(risks)
    if mean_u > HIGH_UNCERTAINTY:
        reasons.append("high_chroma_uncertainty")
    if assessment is not None:
        reasons.extend(r for r in assessment.reasons if r not in reasons)
    version = assess.SCORE_VERSION if assessment is not None else SCORE_VERSION
    if calibration is not None and calibration.applies_to(version):  # a map fitted on another version's scores: not
        value = calibration.apply(value)
    return ConfidenceReport(round(value, 4), tuple(reasons), mean_u, round(certainty, 4), version)
