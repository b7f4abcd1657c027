"""Planning a run: list the source, drop what earlier runs already recorded, cut into shards."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from chromata.config import RunConfig
from chromata.imageio import is_media_key
from chromata.manifest import HISTORY_COLUMNS, fragment_key, processed_versions, read_manifest
from chromata.models import weights_sha256
from chromata.pipeline import Shard, make_shards
from chromata.storage import ObjectInfo, open_storage

log = logging.getLogger(__name__)


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


class Planner:
    """Streams the work of a run: the source listing is consumed lazily, shard by shard, so a collection
    of millions of keys is never held in memory; only the manifest's history (key → version) is.

    Counters (``listed``, ``already_done``, ``ignored``, ``deleted``) are complete once ``shards()`` has
    been exhausted.
    """

    def __init__(self, cfg: RunConfig, run_id: str | None = None) -> None:
        preflight(cfg)
        self.cfg = cfg
        self.run_id = run_id or new_run_id()
        self.src = open_storage(cfg.source, cfg.endpoint_url)
        self.dst = open_storage(cfg.destination, cfg.endpoint_url)
        seen = read_manifest(self.dst, columns=HISTORY_COLUMNS)
        self._done = processed_versions(
            self.dst,
            redo_failed=cfg.retry_failed,
            model_sha256=weights_sha256(cfg.model) if cfg.reprocess_if_model_changed else None,
            table=seen,
        )
        keys = seen["source_key"].to_pylist()
        self._known = {k: i for i, k in enumerate(dict.fromkeys(keys))}
        self.rerun: frozenset[str] = frozenset()
        if cfg.redo_rejected:  # curators rejected these versions: colorize them again (e.g. another model)
            from chromata.review.store import ReviewQueue

            queue = ReviewQueue(cfg.review_db_url())
            try:
                uris = queue.rerun_source_uris()
            finally:
                queue.close()
            self.rerun = frozenset(k for k in self._known if self.src.uri(k) in uris)
        self._rows_per_key = Counter(keys)
        self._still_there = bytearray(len(self._known))
        self.listed = self.already_done = self.ignored = self.images = self.shard_count = self.bytes = 0
        self.deleted = 0
        self.deleted_examples: tuple[str, ...] = ()

    def _todo(self) -> Iterator[ObjectInfo]:
        for obj in self.src.list():
            if not is_media_key(obj.key):
                self.ignored += 1
                continue
            self.listed += 1
            index = self._known.get(obj.key)
            if index is not None:
                self._still_there[index] = 1
            if (obj.key, obj.etag, obj.size) in self._done and obj.key not in self.rerun:
                self.already_done += 1
                continue
            yield obj

    def shards(self) -> Iterator[Shard]:
        for shard in make_shards(self._todo(), self.cfg.shard_size, lambda key: self._rows_per_key.get(key, 0)):
            if self.dst.exists(fragment_key(shard.shard_id)):  # committed by an earlier, interrupted run
                self.already_done += len(shard.objects)
                continue
            self.images += len(shard.objects)
            self.bytes += shard.total_bytes
            self.shard_count += 1
            yield shard
        gone = [k for k, i in self._known.items() if not self._still_there[i]]
        self.deleted, self.deleted_examples = len(gone), tuple(sorted(gone)[:20])
        if gone:
            log.warning("%d images recorded by earlier runs are gone from the source, e.g. %s", len(gone), gone[0])
        log.info(
            "planned %d images in %d shards (%d already done, %d non-image files ignored)",
            self.images,
            self.shard_count,
            self.already_done,
            self.ignored,
        )


def plan_run(cfg: RunConfig, run_id: str | None = None) -> RunPlan:
    """The whole plan at once (for estimates and tests; runs stream through ``Planner.shards``)."""
    planner = Planner(cfg, run_id)
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
