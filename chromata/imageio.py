"""Decoding and encoding archive images with OpenCV, keeping bit depth and orientation.

Decoding honours EXIF orientation and keeps 16-bit samples. Images over the configured pixel limit
are refused (OpenCV itself refuses anything over 2^30 pixels before allocating).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from chromata.errors import ImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".jp2"})
CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".jp2": "image/jp2",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".avi": "video/x-msvideo",
    ".mkv": "video/x-matroska",
}
# --format values -> the extension written
OUTPUT_FORMATS = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "jp2": ".jp2", "webp": ".webp"}
# A grey scan stored as RGB differs between channels only by compression noise.
GREY_CHANNEL_TOLERANCE = 6.0  # in 8-bit units, 99.5th percentile of |channel - mean|


def is_image_key(key: str) -> bool:
    return posixpath.splitext(key)[1].lower() in IMAGE_EXTENSIONS


VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".m4v"})


def is_video_key(key: str) -> bool:
    return posixpath.splitext(key)[1].lower() in VIDEO_EXTENSIONS


def is_media_key(key: str) -> bool:
    """What a run colorizes: still images and videos (film reels)."""
    return is_image_key(key) or is_video_key(key)


@dataclass(frozen=True)
class DecodedImage:
    pixels: NDArray[Any]  # (H, W) grey or (H, W, 3) BGR, uint8 or uint16
    bit_depth: int
    is_colour: bool

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def grey(self) -> NDArray[Any]:
        if self.pixels.ndim == 2:
            return self.pixels
        return cv2.cvtColor(self.pixels, cv2.COLOR_BGR2GRAY)


def decode(data: bytes, max_pixels: int) -> DecodedImage:
    """Decode an image file's bytes. Raises ImageError with a reason code for anything unusable."""
    if not data:
        raise ImageError("empty_file", "the file has zero bytes")
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        # ANYDEPTH keeps 16-bit; ANYCOLOR keeps grey as grey; EXIF orientation is applied.
        img = cv2.imdecode(buf, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    except cv2.error as exc:
        raise ImageError("decode_error", str(exc).strip().splitlines()[-1][:200]) from exc
    if img is None:
        raise ImageError("decode_error", "not a readable image (corrupt, truncated or unsupported format)")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise ImageError("too_large", f"{img.shape[1]}x{img.shape[0]} exceeds the {max_pixels} pixel limit")
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageError("unsupported_depth", f"sample type {img.dtype} is not 8- or 16-bit")
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    bit_depth = 16 if img.dtype == np.uint16 else 8
    is_colour = img.ndim == 3 and _has_colour(img)
    return DecodedImage(pixels=img, bit_depth=bit_depth, is_colour=is_colour)


def _has_colour(bgr: NDArray[Any]) -> bool:
    scale = 257.0 if bgr.dtype == np.uint16 else 1.0
    step = max(1, int(np.sqrt(bgr.shape[0] * bgr.shape[1] / 250_000)))
    sample = bgr[::step, ::step].astype(np.float32) / scale
    spread = np.abs(sample - sample.mean(axis=2, keepdims=True)).max(axis=2)
    return bool(np.percentile(spread, 99.5) > GREY_CHANNEL_TOLERANCE)


@dataclass(frozen=True)
class EncodeOptions:
    jpeg_quality: int = 92
    png_compression: int = 6
    webp_quality: int = 95


def encode(bgr: NDArray[Any], ext: str, opts: EncodeOptions) -> bytes:
    """Encode BGR pixels in the format named by ``ext`` (TIFF: LZW, bit depth kept)."""
    ext = ext.lower()
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        if bgr.dtype != np.uint8:
            bgr = (bgr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
        params = [cv2.IMWRITE_JPEG_QUALITY, opts.jpeg_quality]
    elif ext == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, opts.png_compression]
    elif ext in (".tif", ".tiff"):
        params = [cv2.IMWRITE_TIFF_COMPRESSION, 5]  # 5 = LZW
    elif ext == ".webp":
        if bgr.dtype != np.uint8:
            bgr = (bgr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
        params = [cv2.IMWRITE_WEBP_QUALITY, opts.webp_quality]
    elif ext == ".jp2":  # JPEG 2000, lossless (the archival choice), 8 or 16 bit
        params = [cv2.IMWRITE_JPEG2000_COMPRESSION_X1000, 1000]
    elif ext == ".bmp":
        if bgr.dtype != np.uint8:
            bgr = (bgr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    else:
        raise ImageError("unsupported_format", f"cannot encode {ext}")
    ok, out = cv2.imencode(ext, bgr, params)
    if not ok:
        raise ImageError("encode_error", f"OpenCV could not encode {ext}")
    return out.tobytes()
