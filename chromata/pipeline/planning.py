"""Planning a run: list the source, drop what earlier runs already recorded, cut into shards.

The source is listed (S3 prefixes folder by folder on several threads) or read from an S3 Inventory
report (``inventory``: :mod:`chromata.archive.inventory`); either way objects arrive in ascending key order.
The manifest's history is read once (from its compactions where there are some:
:mod:`chromata.record.compaction`), kept as Arrow columns sorted by source key, and walked alongside the
listing, so that 10⁷ recorded images cost a few hundred bytes each and no Python object each.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from chromata.archive import list_objects, open_storage
from chromata.archive.s3 import S3Storage
from chromata.archive.storage import ObjectInfo
from chromata.config import RunConfig
from chromata.errors import ConfigError, StorageError
from chromata.media.formats import BY_EXTENSION, is_media_key
from chromata.models import check_model, weights_sha256
from chromata.pipeline import Shard, make_shards
from chromata.record.compaction import history_runs
from chromata.record.manifest import HISTORY_COLUMNS, fragment_key

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
    # a wrong or damaged weights file: one line, before any engine starts — unless the run joins a cluster and the
    # weights are not on this machine (the workers may have them at that path; they then check it themselves)
    try:
        check_model(cfg.model, cfg.model_size)
    except ConfigError as exc:
        if not (cfg.ray_address and str(exc).startswith("model weights not found")):
            raise
        log.warning("%s here; the cluster's workers must have it (--ray-address %s)", exc, cfg.ray_address)


# ``is_media_key``, vectorised. ``posixpath.splitext`` takes the extension from the last dot of the last
# path segment, unless only dots come before it in that segment (".jpg" and "..jpg" have none). Every
# known extension is one dot and letters, so a key ending in one has it, except in that case.
_MEDIA_EXTENSIONS = sorted(BY_EXTENSION)
_DOTS_THEN_NAME = r"(?:^|/)\.+[^./]*$"


def media_mask(keys: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``is_media_key`` of every key, in a few linear passes over an Arrow column."""
    lower = pc.utf8_lower(keys)
    known = pc.ends_with(lower, _MEDIA_EXTENSIONS[0])
    for ext in _MEDIA_EXTENSIONS[1:]:
        known = pc.or_(known, pc.ends_with(lower, ext))
    return pc.fill_null(pc.and_not(known, pc.match_substring_regex(lower, _DOTS_THEN_NAME)), False)


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


class _SortedKeys:
    """Random access to a sorted key column, for ``bisect``."""

    def __init__(self, keys: pa.Array | pa.ChunkedArray) -> None:
        self.keys = keys

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> str:
        return str(self.keys[i].as_py())


def _composite(keys: pa.Array, etags: pa.Array, sizes: pa.Array) -> pa.Array:
    """One string per (key, ETag, size), for membership tests (null where any part is null)."""
    return pc.binary_join_element_wise(keys, etags, pc.cast(sizes, pa.string()), "\x1f")


class History:
    """The manifest's rows as sorted runs of (key, etag, size, done) columns — a compaction's runs, and the
    fragments no compaction lists — matched against a listing in the same key order, a batch at a time:
    each run's rows up to the batch's last key are cut off by binary search, and everything else is
    vectorised (no Python object per recorded row)."""

    def __init__(self, runs: list[pa.Table]) -> None:
        self.runs = [r for r in runs if len(r)]
        self._views = [_SortedKeys(r["key"]) for r in self.runs]
        self._cursors = [0] * len(self.runs)
        self._last: str | None = None
        self.rows = sum(len(r) for r in self.runs)
        self.gone = 0
        self.gone_examples: list[str] = []

    @classmethod
    def from_tables(cls, tables: list[pa.Table], *, redo_failed: bool, model_sha256: str | None) -> History:
        """``tables``: runs of the manifest's ``HISTORY_COLUMNS`` (sorted by source key where possible:
        a run that is not is sorted here), taken out of the list as they are converted so that their
        other columns are freed. A row counts as done unless it failed and ``redo_failed`` is set, or
        was made by other weights than ``model_sha256`` (when given)."""
        runs = []
        while tables:
            t = tables.pop(0)
            if not len(t):
                continue
            done = pc.is_valid(t["source_key"])
            if redo_failed:
                done = pc.and_(done, pc.invert(_equals(t["status"], "failed")))
            if model_sha256 is not None:
                done = pc.and_(done, _equals(t["model_sha256"], model_sha256))
            run = pa.table(
                {
                    "key": t["source_key"],
                    "etag": t["source_etag"],
                    "size": t["source_size"].cast(pa.int64()),
                    "done": done,
                }
            )
            del t
            if len(run) > 1 and not _is_sorted(run["key"]):
                run = run.take(pc.sort_indices(run["key"]))
            runs.append(run)
        return cls(runs)

    def _cut(self, last: str | None) -> pa.Table | None:
        """The rows of every run up to ``last`` (all of them for None) not cut off before."""
        slices = []
        for i, run in enumerate(self.runs):
            lo = self._cursors[i]
            hi = len(run) if last is None else bisect.bisect_right(self._views[i], last, lo=lo)
            if hi > lo:
                slices.append(run.slice(lo, hi - lo))
            self._cursors[i] = hi
        return pa.concat_tables(slices) if slices else None

    def _count_gone(self, keys: pa.ChunkedArray | pa.Array) -> None:
        gone = pc.unique(keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys)
        self.gone += len(gone)
        if len(self.gone_examples) < 20 and len(gone):
            self.gone_examples += sorted(gone.to_pylist())[: 20 - len(self.gone_examples)]

    def match(
        self, keys: pa.Array, etags: pa.Array, sizes: pa.Array, rerun: pa.Array
    ) -> tuple[pa.Array, dict[str, int]]:
        """For a batch of listed objects (keys ascending, after every earlier batch's): which are to do —
        no row records this exact version as done, or the key is in ``rerun`` — and for those with rows,
        how many (the attempt number of their shard id). Recorded keys passed over count as gone."""
        if not len(keys):
            return pa.array([], pa.bool_()), {}
        first, last = keys[0].as_py(), keys[len(keys) - 1].as_py()
        if (self._last is not None and first <= self._last) or not _is_sorted(keys):
            raise StorageError(f"the listing is not in key order (at {first!r}, after {self._last!r})")
        self._last = last
        seen = self._cut(last)
        if seen is None:
            return pc.is_valid(keys), {}
        listed_here = pc.is_in(seen["key"], value_set=keys)
        self._count_gone(pc.filter(seen["key"], pc.invert(listed_here)))
        recorded = seen.filter(seen["done"])
        done = pc.fill_null(
            pc.is_in(
                _composite(keys, etags, sizes),
                value_set=_composite(recorded["key"], recorded["etag"], recorded["size"]),
            ),
            False,
        )
        if len(rerun):
            done = pc.and_(done, pc.invert(pc.is_in(keys, value_set=rerun)))
        todo = pc.invert(done)
        attempts: dict[str, int] = {}
        todo_keys = pc.filter(keys, todo)
        if len(todo_keys):
            counts = pc.value_counts(pc.filter(seen["key"], pc.is_in(seen["key"], value_set=todo_keys)))
            attempts = dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
        return todo, attempts

    def finish(self) -> None:
        """After the whole listing: every recorded key not reached is gone too."""
        rest = self._cut(None)
        if rest is not None:
            self._count_gone(rest["key"])


def _is_sorted(keys: pa.Array | pa.ChunkedArray) -> bool:
    """Ascending (ties allowed), checked chunk by chunk and across chunk boundaries, without copying."""
    chunks = [c for c in (keys.chunks if isinstance(keys, pa.ChunkedArray) else [keys]) if len(c)]
    for a, b in itertools.pairwise(chunks):
        if a[len(a) - 1].as_py() > b[0].as_py():
            return False
    return all(len(c) < 2 or bool(pc.all(pc.less_equal(c.slice(0, len(c) - 1), c.slice(1))).as_py()) for c in chunks)


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
        runs, layout = history_runs(self.dst, list(HISTORY_COLUMNS), dictionary=("status", "model_sha256"))
        self._committed = layout.committed()
        self.history = History.from_tables(
            runs,
            redo_failed=cfg.retry_failed,
            model_sha256=weights_sha256(cfg.model) if cfg.reprocess_if_model_changed else None,
        )
        del runs
        self.rerun: frozenset[str] = self._rerun_keys(rerun_uris or ())
        self._rerun = pa.array(sorted(self.rerun), pa.string())
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
        value_set = pa.array(sorted(wanted), pa.string())
        known: set[str] = set()
        for run in self.history.runs:
            known.update(pc.filter(run["key"], pc.is_in(run["key"], value_set=value_set)).to_pylist())
        return frozenset(known)

    def _todo(self) -> Iterator[ObjectInfo]:
        batches = self._from_inventory() if self.cfg.inventory else self._from_listing()
        for table, objects in batches:
            self.listed += len(table)
            todo, attempts = self.history.match(
                table["key"].combine_chunks(),
                table["etag"].combine_chunks(),
                table["size"].combine_chunks(),
                self._rerun,
            )
            self._attempts.update(attempts)
            flags = todo.to_pylist()
            self.already_done += flags.count(False)
            if objects is None:
                rows = table.filter(todo)
                columns = (rows[c].to_pylist() for c in ("key", "size", "etag", "mtime"))
                objects = [ObjectInfo(k, s, e, m) for k, s, e, m in zip(*columns, strict=True)]
                yield from objects
            else:
                yield from itertools.compress(objects, flags)

    def _from_listing(self) -> Iterator[tuple[pa.Table, list[ObjectInfo] | None]]:
        """The source's media objects as it lists them, in batches (of a shard at most, so that the first
        shard is planned as soon as its objects are listed)."""
        size = max(1, min(self.cfg.shard_size, 1024))
        batch: list[ObjectInfo] = []
        for obj in itertools.chain(list_objects(self.src, workers=LIST_WORKERS), [None]):
            if obj is not None and not is_media_key(obj.key):
                self.ignored += 1
                continue
            if obj is not None:
                batch.append(obj)
            if batch and (obj is None or len(batch) >= size):
                table = pa.table(
                    {
                        "key": pa.array([o.key for o in batch], pa.string()),
                        "etag": pa.array([o.etag for o in batch], pa.string()),
                        "size": pa.array([o.size for o in batch], pa.int64()),
                    }
                )
                yield table, batch
                batch = []

    def _from_inventory(self) -> Iterator[tuple[pa.Table, list[ObjectInfo] | None]]:
        from chromata.archive.inventory import Inventory

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
            media = table.filter(media_mask(table["key"]))
            self.ignored += len(table) - len(media)
            yield media, None

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
