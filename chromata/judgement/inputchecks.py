"""Checks on an input scan that make any colorization of it unreliable, or change how to treat it.

Each check is a plain function on the decoded pixels or their L* and returns facts; ``input_reasons``
turns them into the machine-readable reason codes stored in the manifest:

``tiny_image``, ``low_contrast``, ``low_dynamic_range``, ``underexposed``, ``overexposed``,
``heavy_noise``, ``document_text``, ``sepia_toned`` / ``cyanotype`` / ``toned_monochrome``; and, from decoding,
``icc_not_srgb`` (a 16-bit RGB scan tagged with another colour space, read as if it were sRGB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from chromata.colormath import color

F32 = NDArray[np.float32]

TINY_SIDE = 64  # px
LOW_CONTRAST_STD = 6.0  # std of L* (0..100) below which an image is mostly flat
LOW_DYNAMIC_RANGE = 30.0  # L* spread between the 1st and 99th percentile
UNDEREXPOSED_MEAN = 12.0
OVEREXPOSED_MEAN = 92.0
HEAVY_NOISE_SIGMA = 3.0  # L* units, Immerkær's estimate on smooth regions
TONE_CHROMA = 4.0  # a pixel with chroma below this is neutral
TONE_CONCENTRATION = 0.92  # mean resultant length of chroma-weighted hue: one hue = toned print
TONE_MAX_CHROMA = 45.0  # 95th percentile chroma above which an image is really in colour
TONE_MAX_SPREAD = 2.5  # rms of a*/b* around their mean at the same L*, for a toned print
ANALYSIS_SIDE = 768  # px: long side at which document and noise checks look at the image


@dataclass(frozen=True)
class Tone:
    kind: str  # "grey", "colour", "sepia_toned", "cyanotype", "toned_monochrome"
    hue_degrees: float | None = None
    concentration: float | None = None


def classify_tone(bgr: NDArray[Any]) -> Tone:
    """Tell a truly colour image from a monochrome print that is toned (sepia, cyanotype, …).

    A toned print has chroma of one hue only (the chroma-weighted hue angles have a mean resultant
    length close to 1), and its chroma is a function of its lightness alone: within each band of L* the
    a*/b* values barely vary. A colour photo dominated by one hue fails the second test (a brown animal
    on green grass of the same lightness). Toned images are colorized from their L*, not skipped.
    """
    small = _downscale(color.to_unit_float(bgr), 256)
    lab = color.bgr_to_lab(small)
    a, b = lab[..., 1].ravel(), lab[..., 2].ravel()
    chroma = np.hypot(a, b)
    chromatic = chroma > TONE_CHROMA
    if chromatic.mean() < 0.02:
        return Tone("grey")
    hue = np.arctan2(b[chromatic], a[chromatic])
    weights = chroma[chromatic]
    resultant = np.hypot((weights * np.cos(hue)).sum(), (weights * np.sin(hue)).sum()) / weights.sum()
    mean_hue = math.degrees(math.atan2((weights * np.sin(hue)).sum(), (weights * np.cos(hue)).sum())) % 360
    if (
        resultant < TONE_CONCENTRATION
        or np.percentile(chroma, 95) > TONE_MAX_CHROMA
        or _chroma_spread_given_lightness(lab) > TONE_MAX_SPREAD
    ):
        return Tone("colour", mean_hue, float(resultant))
    if 20.0 <= mean_hue <= 110.0:  # orange–yellow–brown
        kind = "sepia_toned"
    elif 190.0 <= mean_hue <= 300.0:  # blue (Prussian blue of the cyanotype process)
        kind = "cyanotype"
    else:
        kind = "toned_monochrome"
    return Tone(kind, mean_hue, float(resultant))


def _chroma_spread_given_lightness(lab: F32) -> float:
    """RMS deviation of (a*, b*) from their mean within 2-unit bands of L*: 0 for a pure toning curve."""
    bands = np.clip(lab[..., 0].ravel() / 2.0, 0, 50).astype(np.int64)
    total = 0.0
    for ch in (1, 2):
        v = lab[..., ch].ravel().astype(np.float64)
        counts = np.bincount(bands, minlength=51)
        means = np.bincount(bands, weights=v, minlength=51) / np.maximum(counts, 1)
        total += float(((v - means[bands]) ** 2).mean())
    return math.sqrt(total)


def noise_sigma(lightness: F32) -> float:
    """Noise standard deviation of L* by Immerkær's method (1996), ignoring the strongest edges."""
    img = _downscale(lightness, ANALYSIS_SIDE)
    if min(img.shape) < 8:
        return 0.0
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = np.abs(cv2.filter2D(img, cv2.CV_32F, kernel))[1:-1, 1:-1]
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0)[1:-1, 1:-1]
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1)[1:-1, 1:-1]
    grad = cv2.magnitude(np.ascontiguousarray(gx), np.ascontiguousarray(gy))  # OpenCV passes: a third the time
    smooth = (grad <= np.percentile(grad, 50)).view(np.uint8)  # texture and edges inflate the estimate
    return float(math.sqrt(math.pi / 2.0) * cv2.mean(np.ascontiguousarray(response), mask=smooth)[0] / 6.0)


def looks_like_document(lightness: F32) -> bool:
    """A page of text: a bright, mostly empty background carrying many small dark marks in rows."""
    img = _downscale(lightness, ANALYSIS_SIDE)
    if (img > 70.0).mean() < 0.5:
        return False
    grey8 = np.clip(img * 2.55, 0, 255).astype(np.uint8)
    ink = cv2.adaptiveThreshold(grey8, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 25, 15)
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    glyphs = (areas >= 4) & (areas <= 400) & (heights <= img.shape[0] / 20)
    ink_fraction = float((ink > 0).mean())
    if glyphs.sum() < 120 or ink_fraction > 0.25:
        return False
    return _text_lines(ink) >= 7


def _text_lines(ink: NDArray[np.uint8]) -> int:
    """Runs of rows carrying ink separated by empty rows: the line structure of printed text."""
    rows = (ink > 0).mean(axis=1)
    inked = rows > 0.01
    empty = rows < 0.003
    lines, inside = 0, False
    for has_ink, is_empty in zip(inked, empty, strict=True):
        if has_ink and not inside:
            lines += 1
            inside = True
        elif is_empty:
            inside = False
    return lines


def input_reasons(lightness: F32, width: int, height: int, tone: Tone | None = None) -> list[str]:
    """Reason codes for the input alone; ``lightness`` is L* at any resolution (full is best for noise)."""
    reasons = []
    if tone is not None and tone.kind not in ("grey", "colour"):
        reasons.append(tone.kind)
    if min(width, height) < TINY_SIDE:
        reasons.append("tiny_image")
    small = _downscale(lightness, ANALYSIS_SIDE)  # statistics need no more than this
    mean = float(small.mean())
    if float(small.std()) < LOW_CONTRAST_STD:
        reasons.append("low_contrast")
    lo, hi = np.percentile(small, [1, 99])
    if hi - lo < LOW_DYNAMIC_RANGE:
        reasons.append("low_dynamic_range")
    if mean < UNDEREXPOSED_MEAN:
        reasons.append("underexposed")
    elif mean > OVEREXPOSED_MEAN:
        reasons.append("overexposed")
    if noise_sigma(small) > HEAVY_NOISE_SIGMA:
        reasons.append("heavy_noise")
    if looks_like_document(small):
        reasons.append("document_text")
    return reasons


def _downscale(img: F32, side: int) -> F32:
    h, w = img.shape[:2]
    if max(h, w) <= side:
        return img.astype(np.float32, copy=False)
    s = side / max(h, w)
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA).astype(
        np.float32
    )


# -- one item of several units (pages, frames) --------------------------------------------------------
# The same input checks for every media kind.
#
# A still is one unit; a multi-page TIFF has a unit per page; a film has a unit per sampled frame; a banded
# scan's unit is its block-reduced L*. Each unit gets ``chromata.judgement.inputchecks`` on its reduced L* (plus the ICC
# note); the item's reasons are then combined: for pages, a reason on *any* page (each page is a picture a
# curator looks at); for film, a reason on *most* sampled frames (a fade to black is not an underexposed reel).
# The already-colour check follows the same rule.

Rule = Literal["any", "most"]


def unit_tone(pixels: NDArray[Any]) -> Tone | None:
    """The tone of a unit stored with colour channels (None for single-channel greys)."""
    return classify_tone(pixels) if pixels.ndim == 3 and pixels.shape[2] >= 3 else None


@dataclass
class InputChecks:
    """Accumulates the checks over an item's units, in order."""

    rule: Rule = "any"
    units: int = 0
    colour_units: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, lightness: F32, width: int, height: int, tone: Tone | None, icc_note: str | None = None) -> None:
        """One unit: ``lightness`` at any resolution (it is block-reduced here when large)."""
        self.units += 1
        if tone is not None and tone.kind == "colour":
            self.colour_units += 1
            return
        small = color.reduce_lightness(lightness) if max(lightness.shape) > color.REDUCED_SIDE else lightness
        found = input_reasons(small, width, height, tone)
        if icc_note and icc_note.startswith("not sRGB"):
            found.append("icc_not_srgb")
        for reason in found:
            self.counts[reason] = self.counts.get(reason, 0) + 1

    def _holds(self, n: int) -> bool:
        return n > 0 if self.rule == "any" else 2 * n >= max(1, self.units)

    @property
    def already_colour(self) -> bool:
        return self._holds(self.colour_units)

    def reasons(self) -> list[str]:
        return [r for r, n in self.counts.items() if self._holds(n)]
