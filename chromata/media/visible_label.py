"""The optional visible label: "AI-colorized", small and legible, in the bottom-right ``corner`` or on a
``border`` strip below the image, drawn after colorization at the output's own bit depth (8 or 16). A banded
TIFF draws it band by band (:func:`label_corner_rows`, :func:`label_border_strip`)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

LABEL_TEXT = "AI-colorized"


def _text_mask(width: int, height: int, scale: float, thickness: int, org: tuple[int, int]) -> NDArray[np.float32]:
    mask = np.zeros((height, width), np.uint8)  # OpenCV draws text on 8-bit images only
    cv2.putText(mask, LABEL_TEXT, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
    return mask.astype(np.float32)[..., None] / 255.0


def _label_geometry(width: int, height: int) -> tuple[float, int, int, int, int, int]:
    """Text scale, thickness, text width/height, baseline and padding for an image of this size."""
    scale = max(0.35, min(height, width) / 900)
    thickness = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(LABEL_TEXT, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    return scale, thickness, tw, th, base, max(3, th // 2)


def _top(dtype: np.dtype[Any]) -> float:
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def label_border_strip(width: int, height: int, dtype: np.dtype[Any]) -> NDArray[Any]:
    """The strip the ``border`` style adds below an image of ``width`` x ``height`` (BGR, that dtype)."""
    scale, thickness, _, th, base, pad = _label_geometry(width, height)
    sh = th + base + 2 * pad
    alpha = _text_mask(width, sh, scale, thickness, (pad, pad + th))
    top = _top(dtype)
    strip = (top * 0.1) * (1 - alpha) + top * alpha
    return np.repeat(strip, 3, axis=2).astype(dtype)


def label_corner_rows(band: NDArray[Any], y0: int, height: int) -> NDArray[Any]:
    """Draw the ``corner`` label into the rows ``y0 …`` of an image ``height`` rows tall of which ``band``
    holds a horizontal band (the whole image when ``y0 == 0`` and the band is all of it)."""
    w = band.shape[1]
    scale, thickness, tw, th, base, pad = _label_geometry(w, height)
    bw, bh = min(w, tw + 2 * pad), min(height, th + base + 2 * pad)
    lo, hi = max(y0, height - bh), min(y0 + band.shape[0], height)
    if lo >= hi:
        return band
    alpha = _text_mask(bw, bh, scale, thickness, (pad, bh - pad - base))[lo - (height - bh) : hi - (height - bh)]
    out = band.copy()
    box = out[lo - y0 : hi - y0, w - bw :].astype(np.float32) * 0.35  # darkened so the text reads on any image
    out[lo - y0 : hi - y0, w - bw :] = (box * (1 - alpha) + _top(band.dtype) * alpha).astype(band.dtype)
    return out


def visible_label(bgr: NDArray[Any], style: str) -> NDArray[Any]:
    """Draw "AI-colorized" small and legible: in the bottom-right ``corner`` or on a ``border`` below.
    Works at the image's own bit depth (8 or 16)."""
    if style == "none":
        return bgr
    if style == "corner":
        return label_corner_rows(bgr, 0, bgr.shape[0])
    if style == "border":
        return np.vstack([bgr, label_border_strip(bgr.shape[1], bgr.shape[0], bgr.dtype)])
    raise ValueError(f"unknown label style {style!r}: use corner, border or none")
