"""An item's files as the app shows them: which key in the destination holds its colorization or heatmap,
browser-sized previews of them, and its manifest row.

Items address their files by keys relative to the destination (``output_key``, ``heatmap_key``), so a
destination copied, synced or mounted elsewhere still serves its images. An item queued before those keys
were stored is resolved through its shard's manifest fragment, and last through the URIs it recorded
(refused when they point outside the destination). The original greyscale is shown as the L* of the
colorized output, which chromata keeps bit-identical to the source's luminance, so the app needs read
access to the derivatives only. No web framework imports here.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Generic, TypeVar

import cv2
import numpy as np

from chromata.archive.storage import Storage, key_for_uri, safe_key
from chromata.colormath import color
from chromata.errors import StorageError
from chromata.record.manifest_index import ManifestIndex
from chromata.review.schema import QueueEntry

log = logging.getLogger(__name__)
KINDS = ("colour", "grey", "heatmap")
THUMB_MAX = 240  # the queue grid's cards: two thumbnails side by side and a heatmap
K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A small least-recently-used cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key: K, value: V) -> None:
        self.items[key] = value
        while len(self.items) > self.size:
            self.items.popitem(last=False)


def render_preview(data: bytes, kind: str, max_side: int) -> tuple[bytes, str]:
    """(bytes, media type) of a preview at most ``max_side`` pixels: JPEG, or PNG for heatmaps."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise StorageError("not a readable image")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    h, w = img.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    unit = color.to_unit_float(img)
    if kind == "grey" and unit.ndim == 3:  # the output's L* (= the source's luminance) as neutral grey
        lab = color.bgr_to_lab(unit)
        lab[..., 1:] = 0.0
        unit = color.lab_to_bgr(lab)
    out = color.from_unit_float(unit, np.uint8)
    ext, media, params = (
        (".png", "image/png", []) if kind == "heatmap" else (".jpg", "image/jpeg", [cv2.IMWRITE_JPEG_QUALITY, 88])
    )
    ok, buf = cv2.imencode(ext, out, params)
    if not ok:
        raise StorageError("cannot encode preview")
    return buf.tobytes(), media


class ItemFiles:
    """The destination's files of queue items: keys, previews (cached) and manifest rows (one fragment read
    per shard, cached: fragments are written once and never change)."""

    def __init__(self, storage: Storage, preview_max: int) -> None:
        self.storage = storage
        self.preview_max = preview_max
        self.previews: LRU[tuple[int, str, str], tuple[bytes, str]] = LRU(64)
        self.thumbs: LRU[tuple[int, str, str], tuple[bytes, str]] = LRU(1024)  # a few grid pages, ~10 kB each
        self.fragments: LRU[str, ManifestIndex] = LRU(32)

    def manifest_row(self, entry: QueueEntry) -> dict[str, Any] | None:
        """The manifest row of exactly this item's output, read from its shard's fragment (None when the
        fragment is absent or holds no such row)."""
        index = self.fragments.get(entry.shard_id)
        if index is None:
            index = ManifestIndex.load(self.storage, shard_ids=[entry.shard_id], with_decisions=False)
            if not len(index):
                return None  # not cached: the fragment may be there on the next look
            self.fragments.put(entry.shard_id, index)
        return index.version(entry.image_id, entry.output_sha256)

    def provenance(self, entry: QueueEntry) -> dict[str, Any]:
        """The manifest row's non-empty fields; {} when the manifest cannot be read (it must not hide the item)."""
        try:
            row = self.manifest_row(entry) or {}
        except StorageError as exc:
            log.warning("manifest unavailable for item %s: %s", entry.id, exc)
            return {}
        return {k: v for k, v in row.items() if v not in (None, "", [])}

    def key(self, entry: QueueEntry, kind: str) -> str:
        """The key of the item's colorization (``colour``, ``grey``) or ``heatmap``; StorageError if none
        is known or the recorded address leaves the destination."""
        heat = kind == "heatmap"
        stored = entry.heatmap_key if heat else entry.output_key
        if stored:
            return safe_key(stored)
        row = self.manifest_row(entry) or {}
        known = row.get("heatmap_key" if heat else "output_key")
        if known:
            return safe_key(str(known))
        uri = (entry.heatmap_uri or row.get("heatmap_uri")) if heat else entry.output_uri
        if not uri:
            raise StorageError(f"item {entry.id} has no {kind}")
        return key_for_uri(self.storage, str(uri))

    def preview(self, entry: QueueEntry, kind: str) -> tuple[bytes, str]:
        cache_key = (entry.id, kind, entry.output_sha256)
        cached = self.previews.get(cache_key)
        if cached is None:
            cached = render_preview(self.storage.read(self.key(entry, kind)), kind, self.preview_max)
            self.previews.put(cache_key, cached)
        return cached

    def thumbnail(self, entry: QueueEntry, kind: str) -> tuple[bytes, str]:
        """A small preview (at most THUMB_MAX pixels) for the queue grid, rendered like ``preview``."""
        cache_key = (entry.id, kind, entry.output_sha256)
        cached = self.thumbs.get(cache_key)
        if cached is None:
            cached = render_preview(self.storage.read(self.key(entry, kind)), kind, min(THUMB_MAX, self.preview_max))
            self.thumbs.put(cache_key, cached)
        return cached
