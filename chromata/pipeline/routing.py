"""Routing: what kind of media an object is, decided from its key, size and header before any pixel is
decoded, and the limits every kind obeys (safe key, pixel limit, memory budget).

``intake`` returns an ``Item`` of kind ``still`` (colorized in memory, batched), ``pages`` (a multi-page
TIFF), ``banded`` (a TIFF too large for memory, processed in bands from a local file) or ``film`` (a video,
streamed from a local file); it raises ``ImageError`` for an object no kind may take.
"""

from __future__ import annotations

import hashlib

from chromata.archive.storage import KeyRefused, Storage, safe_key
from chromata.config import RunConfig
from chromata.errors import ImageError
from chromata.media.formats import extension_of, is_video_key
from chromata.media.imageio import TIFF_EXTENSIONS, check_pixel_limit, probe
from chromata.pipeline.shards import ShardStats
from chromata.pipeline.work import Item

# What the in-memory path needs per pixel at its peak (decoded samples, float L*, upsampled chroma, Lab and
# sRGB intermediates, the quantised output and its encoding): measured 50 B (8-bit) to 62 B (16-bit).
IN_MEMORY_BYTES_PER_PIXEL = 64


def in_memory_pixels(cfg: RunConfig) -> int:
    """The most pixels the in-memory path may hold for one image (or one chunk of film frames) under the
    worker's memory budget: three quarters of it (the model and the images in flight need the rest)."""
    return cfg.memory_budget_mb * 2**20 * 3 // 4 // IN_MEMORY_BYTES_PER_PIXEL


def intake(item: Item, source: Storage, cfg: RunConfig, stats: ShardStats) -> None:
    """Decide ``item.kind`` (reading the bytes of the kinds held in memory into ``item.data``, with their
    hash); what it learns stays on the item even when it raises, for the failed row."""
    obj = item.obj
    try:
        safe_key(obj.key)
    except KeyRefused as exc:
        raise ImageError("unsafe_key", str(exc)) from exc
    is_tiff = extension_of(obj.key) in TIFF_EXTENSIONS
    if is_video_key(obj.key):
        item.kind = "film"  # streamed from a local file: never read whole into memory
        return
    if is_tiff and obj.size > cfg.memory_budget_mb * 2**20 // 8:
        item.kind = "banded"  # never read whole into memory
        return
    data = source.read(obj.key)
    stats.read_sizes.append(len(data))
    item.sha256 = hashlib.sha256(data).hexdigest()
    item.info = info = probe(data)
    check_pixel_limit(info, cfg.max_pixels)  # before a single pixel is decoded
    item.data = data
    if info.pixels > in_memory_pixels(cfg):
        if info.format == "TIFF" and info.frames == 1:
            item.kind = "banded"
            return
        need = info.pixels * IN_MEMORY_BYTES_PER_PIXEL / 2**30
        pages = f" x {info.frames} pages" if info.frames > 1 else ""
        advice = "split its pages" if info.frames > 1 else "save it as TIFF (processed in tiles)"
        raise ImageError(
            "too_large",
            f"{info.width}x{info.height}{pages} needs about {need:.1f} GiB to colorize in memory, over "
            f"this worker's memory budget of {cfg.memory_budget_mb} MiB; {advice} or raise memory_budget_mb",
        )
    item.kind = "pages" if is_tiff and info.frames > 1 else "still"
