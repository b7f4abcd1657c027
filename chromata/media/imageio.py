"""Decoding and encoding archive images with OpenCV, keeping bit depth and orientation.

Decoding honours EXIF orientation and keeps 16-bit samples. Dimensions are read from the file's header
first (``probe``), so an image over the configured pixel limit — a decompression bomb — is refused before a
single pixel is decoded; running out of memory while decoding is reported as ``too_large`` as well.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from chromata.errors import ImageError
from chromata.media.formats import (
    BY_NAME,
    FORMATS,
    OUTPUT_FORMAT_NAMES,
    SAME_FORMAT_FALLBACK,
    format_of,
    is_image_key,
    is_media_key,
    is_video_key,
)

__all__ = ["SAME_FORMAT_FALLBACK", "is_image_key", "is_media_key", "is_video_key"]  # re-exported

# The format tables, derived from the one registry (chromata.media.formats) for the callers that read them here.
IMAGE_EXTENSIONS = frozenset(ext for f in FORMATS if "film" not in f.kinds for ext in f.extensions)
VIDEO_EXTENSIONS = frozenset(ext for f in FORMATS if "film" in f.kinds for ext in f.extensions)
TIFF_EXTENSIONS = BY_NAME["tiff"].extensions
CONTENT_TYPES = {ext: f.mime for f in FORMATS for ext in f.extensions}
OUTPUT_FORMATS = {name: BY_NAME[name].extension for name in OUTPUT_FORMAT_NAMES}  # --format -> extension
# A grey scan stored as RGB differs between channels only by compression noise.
GREY_CHANNEL_TOLERANCE = 6.0  # in 8-bit units, 99.5th percentile of |channel - mean|


@dataclass(frozen=True)
class DecodedImage:
    pixels: NDArray[Any]  # (H, W) grey or (H, W, 3) BGR, uint8 or uint16, sRGB
    bit_depth: int
    is_colour: bool
    # an RGB source's ICC profile other than sRGB: "converted from …" (8-bit, by littleCMS) or "not sRGB: …"
    # (16-bit, read as if sRGB; reported as the input reason ``icc_not_srgb``)
    colour_space_note: str | None = None

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


@dataclass(frozen=True)
class Probe:
    """What a file's header says, read without decoding its pixels."""

    format: str  # "TIFF", "JPEG", "PNG", … ("" when the header is not recognised)
    width: int
    height: int
    frames: int = 1
    pixels: int = 0  # all frames/pages together
    icc: bytes | None = field(default=None, repr=False)  # the embedded ICC profile
    data_end: int = 0  # TIFF: the byte where the last strip or tile ends (truncation check)

    @property
    def megapixels(self) -> float:
        return self.pixels / 1e6


_BOMB = re.compile(r"Image size \((\d+) pixels\)")


def probe(data: bytes | str) -> Probe:
    """Dimensions and frame count from a file's header (bytes or a local path), decoding no pixels.

    TIFF pages are read with tifffile (any size); other formats with Pillow's lazy ``open``. An
    unrecognised header gives ``Probe("", 0, 0)``: the decoder then says what is wrong with the file."""
    if isinstance(data, bytes):
        head = data[:4]
    else:
        with open(data, "rb") as fh:
            head = fh.read(4)
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _probe_tiff(data)
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's own bomb warning: the limit applied is ours
        try:
            with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
                frames = int(getattr(im, "n_frames", 1))
                icc = im.info.get("icc_profile")
                pixels = im.width * im.height * frames
                return Probe(str(im.format or ""), im.width, im.height, frames, pixels, bytes(icc) if icc else None)
        except Image.DecompressionBombError as exc:  # over Pillow's 2 x 89 MP: size is in the message
            m = _BOMB.search(str(exc))
            n = int(m.group(1)) if m else 0
            return Probe("", 0, 0, 1, n)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, IndexError, EOFError):
            return Probe("", 0, 0)  # IndexError: a malformed GIF (found by fuzzing)


MAX_TIFF_PAGES = 10_000


def _check_tiff_directories(fh: io.BufferedIOBase | io.BytesIO) -> None:
    """Walk a TIFF's chain of directories (IFDs) before any library parses it: a chain that loops back on
    itself made tifffile spin forever on a 544-byte file (found by fuzzing), so loops and absurd page
    counts are refused here, at the cost of a few reads."""
    fh.seek(0)
    head = fh.read(16)
    order = "<" if head[:2] == b"II" else ">"
    big = head[2:4] in (b"\x2b\x00", b"\x00\x2b")  # BigTIFF: 8-byte offsets and counts
    if len(head) < (16 if big else 8):
        raise ImageError("truncated", f"TIFF header cut short after {len(head)} bytes")
    offset = struct.unpack(order + ("Q" if big else "I"), head[8:16] if big else head[4:8])[0]
    count_fmt, entry, next_fmt = ("Q", 20, "Q") if big else ("H", 12, "I")
    seen: set[int] = set()
    while offset:
        if offset in seen:
            raise ImageError("decode_error", "malformed TIFF: its chain of directories loops back on itself")
        if len(seen) >= MAX_TIFF_PAGES:
            raise ImageError("unsupported_format", f"TIFF with more than {MAX_TIFF_PAGES:,} pages")
        seen.add(offset)
        fh.seek(offset)
        raw = fh.read(struct.calcsize(count_fmt))
        if len(raw) < struct.calcsize(count_fmt):
            return  # points past the end: the truncation check reports it
        (entries,) = struct.unpack(order + count_fmt, raw)
        fh.seek(offset + len(raw) + entries * entry)
        raw = fh.read(struct.calcsize(next_fmt))
        if len(raw) < struct.calcsize(next_fmt):
            return
        (offset,) = struct.unpack(order + next_fmt, raw)


def _probe_tiff(data: bytes | str) -> Probe:
    import tifffile

    if isinstance(data, bytes):
        _check_tiff_directories(io.BytesIO(data))
    else:
        with open(data, "rb") as fh:
            _check_tiff_directories(fh)
    try:
        with tifffile.TiffFile(io.BytesIO(data) if isinstance(data, bytes) else data) as tif:
            pages = [p for p in tif.pages if isinstance(p, tifffile.TiffPage) and not p.is_reduced]
            if not pages:
                return Probe("", 0, 0)
            tables = [(p.dataoffsets, p.databytecounts) for p in tif.pages]
            icc = pages[0].tags.get(34675)  # InterColorProfile
            info = Probe(
                "TIFF",
                int(pages[0].imagewidth),
                int(pages[0].imagelength),
                len(pages),
                sum(int(p.imagewidth) * int(p.imagelength) for p in pages),
                bytes(icc.value) if icc is not None else None,
            )
    except Exception:  # a broken header: let the decoder report it
        return Probe("", 0, 0)
    if any(len(offsets) != len(counts) for offsets, counts in tables):  # found by fuzzing
        raise ImageError("decode_error", "malformed TIFF: strip offsets and byte counts do not match")
    end = max((int(o) + int(n) for offs, counts in tables for o, n in zip(offs, counts, strict=True)), default=0)
    return replace(info, data_end=end)


def check_pixel_limit(info: Probe, max_pixels: int) -> None:
    """Refuse an image whose header declares more pixels than allowed, before any decoding."""
    if info.pixels > max_pixels:
        dims = f"{info.width}x{info.height}" if info.width else "the image"
        dims += f" x {info.frames} frames" if info.frames > 1 else ""
        raise ImageError(
            "too_large",
            f"{dims} declares {info.pixels:,} pixels, over the {max_pixels:,} pixel limit (refused before decoding)",
        )


def check_complete(data: bytes, info: Probe) -> None:
    """Refuse a file cut short (an interrupted copy or upload): decoders fill the missing part with grey and
    report nothing, which would put a half-grey scan into the archive. JPEG: the end-of-image marker after
    the last scan; PNG: the IEND chunk; TIFF: every strip or tile inside the file."""
    fmt = info.format
    if fmt == "JPEG" or data[:2] == b"\xff\xd8":  # by signature too: a header Pillow rejects still reaches OpenCV
        sos = data.rfind(b"\xff\xda")
        if data.find(b"\xff\xd9", max(sos, 0)) < 0:
            raise ImageError("truncated", f"JPEG ends after {len(data):,} bytes without its end-of-image marker")
    elif fmt == "PNG" or data[:8] == b"\x89PNG\r\n\x1a\n":
        pos = 8
        while pos + 8 <= len(data):  # chunk lengths before OpenCV sees them: it allocates what they declare
            length, kind = struct.unpack(">I4s", data[pos : pos + 8])
            if pos + 12 + length > len(data):  # a 103-byte PNG declaring a 4 GB IDAT (found by fuzzing)
                raise ImageError(
                    "truncated", f"PNG chunk {kind.decode('latin-1')!r} declares {length:,} bytes; the file ends first"
                )
            if kind == b"IEND":
                return
            pos += 12 + length
        raise ImageError("truncated", f"PNG ends after {len(data):,} bytes without its IEND chunk")
    elif data[:4] in (b"II*\x00", b"MM\x00*"):  # classic TIFF (its directory is often at the end)
        first_ifd = struct.unpack("<I" if data[:2] == b"II" else ">I", data[4:8])[0] if len(data) >= 8 else 0
        if first_ifd + 2 > len(data):
            raise ImageError("truncated", f"TIFF directory at byte {first_ifd:,} but the file ends at {len(data):,}")
        if info.data_end > len(data):
            raise ImageError(
                "truncated", f"TIFF data runs to byte {info.data_end:,} but the file ends at {len(data):,}"
            )


def decode(data: bytes, max_pixels: int, info: Probe | None = None) -> DecodedImage:
    """Decode an image file's bytes (``info``: its ``probe``, when the caller has it). Raises ImageError
    with a reason code for anything unusable."""
    if not data:
        raise ImageError("empty_file", "the file has zero bytes")
    info = info or probe(data)
    check_pixel_limit(info, max_pixels)
    if info.format == "GIF" and info.frames > 1:
        raise ImageError(
            "unsupported_format", f"animated GIF with {info.frames} frames: convert it to a video or to still images"
        )
    check_complete(data, info)
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        # ANYDEPTH keeps 16-bit; ANYCOLOR keeps grey as grey; EXIF orientation is applied.
        img = cv2.imdecode(buf, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    except MemoryError as exc:
        raise ImageError("too_large", f"out of memory decoding {info.width}x{info.height}") from exc
    except cv2.error as exc:
        text = str(exc).strip().splitlines()[-1][:200]
        if "memory" in text.lower() or "alloc" in text.lower():
            raise ImageError("too_large", f"out of memory decoding {info.width}x{info.height}: {text}") from exc
        raise ImageError("decode_error", text) from exc
    if img is None:
        raise ImageError("decode_error", "not a readable image (corrupt, truncated or unsupported format)")
    if img.shape[0] * img.shape[1] > max_pixels:  # a header that lied about its size
        raise ImageError("too_large", f"{img.shape[1]}x{img.shape[0]} exceeds the {max_pixels} pixel limit")
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageError("unsupported_depth", f"sample type {img.dtype} is not 8- or 16-bit")
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    bit_depth = 16 if img.dtype == np.uint16 else 8
    note = None
    if img.ndim == 3:
        img, note = _to_srgb(img, info.icc)
    is_colour = img.ndim == 3 and _has_colour(img)
    return DecodedImage(pixels=img, bit_depth=bit_depth, is_colour=is_colour, colour_space_note=note)


def _profile_description(profile: bytes) -> str:
    from PIL import ImageCms

    try:
        return str(ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))).strip()
    except Exception:
        return ""


def is_srgb_profile(profile: bytes) -> bool:
    return "srgb" in _profile_description(profile).lower().replace(" ", "")


def _to_srgb(bgr: NDArray[Any], icc: bytes | None) -> tuple[NDArray[Any], str | None]:
    """Pixels in sRGB: an 8-bit image tagged with another RGB profile is converted by littleCMS
    (perceptual intent); 16-bit ones are kept and noted (Pillow's littleCMS binding is 8-bit only)."""
    if not icc or len(icc) < 20 or icc[16:20] != b"RGB " or is_srgb_profile(icc):
        return bgr, None
    name = _profile_description(icc) or "unnamed profile"
    if bgr.dtype != np.uint8:
        return bgr, f"not sRGB: {name}"
    from PIL import Image, ImageCms

    try:
        src = Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]), "RGB")
        out = ImageCms.profileToProfile(
            src, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
    except Exception:  # a broken profile: keep the values, say so
        return bgr, f"not sRGB: {name} (unreadable)"
    assert out is not None
    return np.ascontiguousarray(np.asarray(out)[..., ::-1]), f"converted from {name}"


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
    """Encode BGR pixels in the format named by ``ext`` (TIFF: LZW, bit depth kept; 8-bit-only formats
    round 16-bit samples)."""
    ext = ext.lower()
    fmt = format_of("x" + ext)
    if fmt is None or "still" not in fmt.kinds:
        raise ImageError("unsupported_format", f"cannot encode {ext}")
    if fmt.eight_bit and bgr.dtype != np.uint8:
        bgr = (bgr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    params = {
        "jpeg": [cv2.IMWRITE_JPEG_QUALITY, opts.jpeg_quality],
        "png": [cv2.IMWRITE_PNG_COMPRESSION, opts.png_compression],
        "tiff": [cv2.IMWRITE_TIFF_COMPRESSION, 5],  # 5 = LZW
        "webp": [cv2.IMWRITE_WEBP_QUALITY, opts.webp_quality],
        "jp2": [cv2.IMWRITE_JPEG2000_COMPRESSION_X1000, 1000],  # JPEG 2000, lossless (the archival choice)
    }.get(fmt.name, [])
    ok, out = cv2.imencode(ext, bgr, params)
    if not ok:
        raise ImageError("encode_error", f"OpenCV could not encode {ext}")
    return out.tobytes()
