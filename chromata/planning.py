"""Planning a run: list the source, drop what earlier runs already recorded, cut into shards.

The source is listed (S3 prefixes folder by folder on several threads) or read from an S3 Inventory
report (``inventory``: :mod:`chromata.inventory`); either way objects arrive in ascending key order.
The manifest's history is read once (from its compactions where there are some:
:mod:`chromata.compaction`), kept as Arrow columns sorted by source key, and walked alongside the
listing, so that 10⁷ recorded images cost a few hundred bytes each and no Python object each.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from chromata.compaction import read_parts_with_layout
from chromata.config import RunConfig
from chromata.errors import StorageError
from chromata.formats import BY_EXTENSION, is_media_key
from chromata.manifest import HISTORY_COLUMNS, fragment_key
from chromata.models import weights_sha256
from chromata.pipeline import Shard, make_shards
from chromata.storage import ObjectInfo, S3Storage, list_objects, open_storage

log = logging.getLogger(__name__)

LIST_WORKERS = 8  # threads listing an S3 source folder by folder


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    shards: tuple[Shard, ...]
    listed: int  # image objects found in the source
    already_done: int  # of those, recorded by an earlier run (same key, ETag and size)
    ignored: int  # non-image objects in the source
    deleted: int = 0  # recorded by earlier runs, no longer in the source (reported, never acted on)
    deleted_examples: tuple[str, ...] = ()

    @property
    def images(self) -> int:
        return sum(len(s.objects) for s in self.shards)


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def preflight(cfg: RunConfig) -> None:
    """Fail fast with one clear message if the source cannot be listed or the destination written."""
    open_storage(cfg.source, cfg.endpoint_url).check_readable()
    open_storage(cfg.destination, cfg.endpoint_url).check_writable()


# An extension is what ``posixpath.splitext`` finds: the last dot of the last path segment, not
# counting the segment's leading dots (``is_media_key``, vectorised).
_EXTENSION = r"(?:^|/)\.*[^./][^/]*?(?P<ext>\.[^./]*)$"
_MEDIA_EXTENSIONS = pa.array(sorted(BY_EXTENSION), pa.string())


def media_mask(keys: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``is_media_key`` of every key, in one pass over an Arrow column."""
    ext = pc.struct_field(pc.extract_regex(keys, _EXTENSION), "ext")
    return pc.fill_null(pc.is_in(pc.utf8_lower(ext), value_set=_MEDIA_EXTENSIONS), False)


def _equals(col: pa.ChunkedArray, value: str) -> pa.ChunkedArray:
    """``col == value`` (null: False) for a plain or dictionary-encoded string column."""
    out = []
    for chunk in col.chunks:
        if pa.types.is_dictionary(chunk.type):
            hit = pc.fill_null(pc.equal(chunk.dictionary, value), False)
            out.append(pc.fill_null(pc.take(hit, chunk.indices), False))
        else:
            out.append(pc.fill_null(pc.equal(chunk, value), False))
    return pa.chunked_array(out, pa.bool_())


class History:
    """The manifest's rows as sorted columns (source key, ETag, size, "counts as done"), matched against
    a listing in the same key order by one forward cursor (converted to Python a chunk at a time)."""

    CHUNK = 65_536

    def __init__(self, keys: pa.ChunkedArray, etags: pa.ChunkedArray, sizes: pa.ChunkedArray, done: pa.ChunkedArray):
        self.keys, self.etags, self.sizes, self.done = keys, etags, sizes, done
        self.rows = len(keys)
        self._base = 0
        self._k: list[str] = []
        self._e: list[str | None] = []
        self._s: list[int | None] = []
        self._d: list[bool] = []
        self._i = 0
        self._last_gone: str | None = None
        self._previous = ""
        self.gone = 0
        self.gone_examples: list[str] = []

    @classmethod
    def from_table(cls, table: pa.Table, *, redo_failed: bool, model_sha256: str | None) -> History:
        """``table``: the manifest's ``HISTORY_COLUMNS``. A row counts as done unless it failed and
        ``redo_failed`` is set, or was made by other weights than ``model_sha256`` (when given)."""
        done = pc.is_valid(table["source_key"])  # every row, unless a condition below says otherwise
        if redo_failed:
            done = pc.and_(done, pc.invert(_equals(table["status"], "failed")))
        if model_sha256 is not None:
            done = pc.and_(done, _equals(table["model_sha256"], model_sha256))
        keys, etags, sizes = table["source_key"], table["source_etag"], table["source_size"].cast(pa.int64())
        del table
        order = pc.sort_indices(keys)
        return cls(keys.take(order), etags.take(order), sizes.take(order), done.take(order))

    def _next_chunk(self) -> bool:
        self._base += len(self._k)
        if self._base >= self.rows:
            self._k = []
            return False
        end = min(self.rows, self._base + self.CHUNK)
        self._k = self.keys.slice(self._base, end - self._base).to_pylist()
        self._e = self.etags.slice(self._base, end - self._base).to_pylist()
        self._s = self.sizes.slice(self._base, end - self._base).to_pylist()
        self._d = self.done.slice(self._base, end - self._base).to_pylist()
        self._i = 0
        return True

    def match(self, key: str, etag: str, size: int) -> tuple[bool, int]:
        """(an earlier run recorded this exact version as done, how many rows the key has). Keys must
        come in ascending order; recorded keys passed over are counted as gone from the source."""
        if key < self._previous:
            raise StorageError(f"the listing is not in key order: {key!r} came after {self._previous!r}")
        self._previous = key
        rows, done = 0, False
        while True:
            if self._i >= len(self._k) and not self._next_chunk():
                break
            hk = self._k[self._i]
            if hk < key:
                if hk != self._last_gone:
                    self._last_gone = hk
                    self.gone += 1
                    if len(self.gone_examples) < 20:
                        self.gone_examples.append(hk)
                self._i += 1
                continue
            if hk != key:
                break
            rows += 1
            done = done or (self._d[self._i] and self._e[self._i] == etag and self._s[self._i] == size)
            self._i += 1
        return done, rows

    def finish(self) -> None:
        """After the whole listing: every recorded key not reached is gone too."""
        while self._i < len(self._k) or self._next_chunk():
            hk = self._k[self._i]
            if hk != self._last_gone:
                self._last_gone = hk
                self.gone += 1
                if len(self.gone_examples) < 20:
                    self.gone_examples.append(hk)
            self._i += 1


class Planner:
    """Streams the work of a run: the source listing is consumed lazily, shard by shard, so a collection
    of millions of keys is never held in memory; the manifest's history is held as Arrow columns.

    ``rerun_uris``: source URIs to colorize again although they are done (curators rejected them); the
    caller gets them from the review store (the core never imports the review app). ``redo_rejected``
    runs must pass them.

    Counters (``listed``, ``already_done``, ``ignored``, ``deleted``) are complete once ``shards()`` has
    been exhausted.
    """

    def __init__(self, cfg: RunConfig, run_id: str | None = None, rerun_uris: Collection[str] | None = None) -> None:
        if cfg.redo_rejected and rerun_uris is None:
            raise ValueError("redo_rejected: pass the rejected images' source URIs (rerun_uris, from the review store)")
        preflight(cfg)
        self.cfg = cfg
        self.run_id = run_id or new_run_id()
        self.src = open_storage(cfg.source, cfg.endpoint_url)
        self.dst = open_storage(cfg.destination, cfg.endpoint_url)
        parts, layout = read_parts_with_layout(self.dst, list(HISTORY_COLUMNS), dictionary=("status", "model_sha256"))
        self._committed = layout.committed()
        table = (
            pa.concat_tables(parts, promote_options="default")
            if parts
            else pa.schema(
                [
                    ("source_key", pa.string()),
                    ("source_etag", pa.string()),
                    ("source_size", pa.int64()),
                    ("status", pa.string()),
                    ("model_sha256", pa.string()),
                ]
            ).empty_table()
        )
        del parts
        self.history = History.from_table(
            table,
            redo_failed=cfg.retry_failed,
            model_sha256=weights_sha256(cfg.model) if cfg.reprocess_if_model_changed else None,
        )
        del table
        self.rerun: frozenset[str] = self._rerun_keys(rerun_uris or ())
        self._attempts: dict[str, int] = {}
        self.listed = self.already_done = self.ignored = self.images = self.shard_count = self.bytes = 0
        self.deleted = 0
        self.deleted_examples: tuple[str, ...] = ()

    def _rerun_keys(self, uris: Collection[str]) -> frozenset[str]:
        """The recorded keys whose source URI is in ``uris``."""
        if not uris:
            return frozenset()
        root = self.src.uri("x")[:-1]
        wanted = {u[len(root) :] for u in uris if u.startswith(root)}
        wanted = {k for k in wanted if k and self.src.uri(k) in uris}
        if not wanted:
            return frozenset()
        known = pc.filter(self.history.keys, pc.is_in(self.history.keys, value_set=pa.array(sorted(wanted))))
        return frozenset(known.to_pylist())

    def _todo_one(self, key: str, etag: str, size: int) -> bool:
        self.listed += 1
        done, rows = self.history.match(key, etag, size)
        if done and key not in self.rerun:
            self.already_done += 1
            return False
        if rows:
            self._attempts[key] = rows
        return True

    def _todo(self) -> Iterator[ObjectInfo]:
        if self.cfg.inventory:
            yield from self._todo_from_inventory()
            return
        for obj in list_objects(self.src, workers=LIST_WORKERS):
            if not is_media_key(obj.key):
                self.ignored += 1
                continue
            if self._todo_one(obj.key, obj.etag, obj.size):
                yield obj

    def _todo_from_inventory(self) -> Iterator[ObjectInfo]:
        from chromata.inventory import Inventory

        src = self.src
        if not isinstance(src, S3Storage):
            raise StorageError("--inventory describes an S3 bucket: the source must be s3://bucket/prefix")
        inventory = Inventory(str(self.cfg.inventory), self.cfg.endpoint_url)
        if inventory.manifest.source_bucket != src.bucket:
            raise StorageError(
                f"the inventory {self.cfg.inventory} describes bucket {inventory.manifest.source_bucket!r}, "
                f"not the source's {src.bucket!r}"
            )
        for table in inventory.batches(src.prefix):
            media = media_mask(table["key"])
            table_media = table.filter(media)
            self.ignored += len(table) - len(table_media)
            columns = (table_media[c].to_pylist() for c in ("key", "size", "etag", "mtime"))
            for key, size, etag, mtime in zip(*columns, strict=True):
                if self._todo_one(key, etag, size):
                    yield ObjectInfo(key, size, etag, mtime)

    def shards(self) -> Iterator[Shard]:
        for shard in make_shards(self._todo(), self.cfg.shard_size, lambda key: self._attempts.pop(key, 0)):
            key = fragment_key(shard.shard_id)
            if key in self._committed or self.dst.exists(key):  # committed by an earlier, interrupted run
                self.already_done += len(shard.objects)
                continue
            self.images += len(shard.objects)
            self.bytes += shard.total_bytes
            self.shard_count += 1
            yield shard
        self.history.finish()
        self.deleted, self.deleted_examples = self.history.gone, tuple(self.history.gone_examples)
        if self.deleted:
            log.warning(
                "%d images recorded by earlier runs are gone from the source, e.g. %s",
                self.deleted,
                self.deleted_examples[0],
            )
        log.info(
            "planned %d images in %d shards (%d already done, %d non-image files ignored)",
            self.images,
            self.shard_count,
            self.already_done,
            self.ignored,
        )


def plan_run(cfg: RunConfig, run_id: str | None = None, rerun_uris: Collection[str] | None = None) -> RunPlan:
    """The whole plan at once (for estimates and tests; runs stream through ``Planner.shards``)."""
    planner = Planner(cfg, run_id, rerun_uris)
    shards = tuple(planner.shards())
    return RunPlan(
        planner.run_id,
        shards,
        planner.listed,
        planner.already_done,
        planner.ignored,
        planner.deleted,
        planner.deleted_examples,
    )
