"""The one table of media formats chromata reads and writes.

Every format-dependent decision reads this registry: which keys a run lists, the ``--format`` choices and
their validation, the extension an output gets, its MIME type (storage, review app, IIIF), how it is encoded
(``chromata.media.imageio.encode``), where its XMP label goes (``chromata.media.labels.label_output``), whether the
C2PA SDK signs it, and which media kinds it can hold. Adding a format is one entry here (plus an embedder in
``labels`` if its metadata slot is a new kind of slot).

Media kinds (decided per object by ``chromata.pipeline.routing``): ``still`` (one image in memory),
``pages`` (a multi-page TIFF), ``banded`` (a TIFF too large for memory, processed in bands) and ``film``
(a video, streamed in chunks of frames).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Literal

MediaKind = Literal["still", "pages", "banded", "film"]
XmpSlot = Literal["jpeg", "png", "tiff", "webp", "jp2", "sidecar"]


@dataclass(frozen=True)
class Format:
    name: str  # the --format value
    extensions: tuple[str, ...]  # lower case, with the dot; the first is the one chromata writes
    mime: str
    kinds: frozenset[MediaKind]  # what an output in this format can hold (empty: read only)
    xmp: XmpSlot = "sidecar"  # where the AI label's XMP packet goes
    c2pa_mime: str | None = None  # the MIME type the C2PA SDK signs it as; None: not covered (XMP only)
    eight_bit: bool = False  # samples are written as 8 bit (16-bit sources are rounded)
    fourcc: str | None = None  # films: the OpenCV writer's codec

    @property
    def extension(self) -> str:
        return self.extensions[0]

    @property
    def writable(self) -> bool:
        return bool(self.kinds)


_STILL: frozenset[MediaKind] = frozenset({"still"})
_VIDEO: frozenset[MediaKind] = frozenset({"film"})
FORMATS: tuple[Format, ...] = (
    Format("jpeg", (".jpg", ".jpeg"), "image/jpeg", _STILL, "jpeg", "image/jpeg", eight_bit=True),
    Format("png", (".png",), "image/png", _STILL, "png", "image/png"),
    Format("tiff", (".tif", ".tiff"), "image/tiff", frozenset({"still", "pages", "banded"}), "tiff", "image/tiff"),
    Format("webp", (".webp",), "image/webp", _STILL, "webp", "image/webp", eight_bit=True),
    Format("jp2", (".jp2",), "image/jp2", _STILL, "jp2"),
    Format("bmp", (".bmp",), "image/bmp", _STILL, eight_bit=True),
    Format("gif", (".gif",), "image/gif", frozenset()),  # read only: "same" writes PNG (SAME_FORMAT_FALLBACK)
    Format("mp4", (".mp4",), "video/mp4", _VIDEO, c2pa_mime="video/mp4", eight_bit=True, fourcc="mp4v"),
    Format("m4v", (".m4v",), "video/mp4", _VIDEO, c2pa_mime="video/x-m4v", eight_bit=True, fourcc="mp4v"),
    Format("mov", (".mov",), "video/quicktime", _VIDEO, c2pa_mime="video/quicktime", eight_bit=True, fourcc="mp4v"),
    Format("avi", (".avi",), "video/x-msvideo", _VIDEO, c2pa_mime="video/x-msvideo", eight_bit=True, fourcc="MJPG"),
    Format("mkv", (".mkv",), "video/x-matroska", _VIDEO, eight_bit=True, fourcc="MJPG"),
)
BY_NAME = {f.name: f for f in FORMATS}
BY_EXTENSION = {ext: f for f in FORMATS for ext in f.extensions}
# "same format as the source" for a format chromata reads but does not write
SAME_FORMAT_FALLBACK = {".gif": ".png"}
OUTPUT_FORMAT_NAMES = tuple(f.name for f in FORMATS if f.writable and f.name not in ("bmp", "m4v"))  # --format


def extension_of(key: str) -> str:
    return posixpath.splitext(key)[1].lower()


def format_of(key: str) -> Format | None:
    """The format a key names by its extension (None: not a format chromata knows)."""
    return BY_EXTENSION.get(extension_of(key))


def mime_type(key: str) -> str:
    fmt = format_of(key)
    return fmt.mime if fmt else "application/octet-stream"


def is_image_key(key: str) -> bool:
    fmt = format_of(key)
    return fmt is not None and "film" not in fmt.kinds


def is_video_key(key: str) -> bool:
    fmt = format_of(key)
    return fmt is not None and "film" in fmt.kinds


def is_media_key(key: str) -> bool:
    """What a run colorizes: still images and videos (film reels)."""
    return format_of(key) is not None


def output_format_for(source_key: str, output_format: str, kind: MediaKind) -> Format:
    """The format an output of ``kind`` is written in: the chosen ``--format``, or for ``same`` the source's
    own (or its fallback). Raises ``ValueError`` with the formats that would do when the choice cannot hold
    this kind of media (a film as JPEG, a multi-page TIFF as PNG)."""
    if output_format == "same":
        ext = extension_of(source_key)
        fmt = BY_EXTENSION[SAME_FORMAT_FALLBACK.get(ext, ext)]
        if kind == "banded" and kind not in fmt.kinds:
            fmt = BY_NAME["tiff"]
    else:
        fmt = BY_NAME[output_format]
    if kind not in fmt.kinds:
        fits = ", ".join(name for name in OUTPUT_FORMAT_NAMES if kind in BY_NAME[name].kinds)
        raise ValueError(f"--format {fmt.name} cannot hold {_KIND_NAMES[kind]}; use same or {fits}")
    return fmt


_KIND_NAMES = {
    "still": "a still image",
    "pages": "a multi-page TIFF (one file, several pages)",
    "banded": "a scan too large for memory (written in bands)",
    "film": "a film",
}
