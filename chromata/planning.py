"""Planning a run: list the source, drop what earlier runs already recorded, cut into shards."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from chromata.config import RunConfig
from chromata.imageio import is_image_key
from chromata.manifest import fragment_key, processed_versions
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

    @property
    def images(self) -> int:
        return sum(len(s.objects) for s in self.shards)


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def plan_run(cfg: RunConfig, run_id: str | None = None) -> RunPlan:
    """Checks both locations, then lists and shards the work still to do."""
    src = open_storage(cfg.source, cfg.endpoint_url)
    dst = open_storage(cfg.destination, cfg.endpoint_url)
    src.check_readable()
    dst.check_writable()
    done = processed_versions(dst)
    if cfg.retry_failed:
        from chromata.manifest import read_manifest

        t = read_manifest(dst, columns=["source_key", "source_etag", "source_size", "status"])
        failed = {
            (k, e, s)
            for k, e, s, st in zip(
                t["source_key"].to_pylist(),
                t["source_etag"].to_pylist(),
                t["source_size"].to_pylist(),
                t["status"].to_pylist(),
                strict=True,
            )
            if st == "failed"
        }
        done -= failed
    listed = ignored = skipped = 0

    def todo() -> Iterator[ObjectInfo]:
        nonlocal listed, ignored, skipped
        for obj in src.list():
            if not is_image_key(obj.key):
                ignored += 1
                continue
            listed += 1
            if (obj.key, obj.etag, obj.size) in done:
                skipped += 1
                continue
            yield obj

    shards = []
    for shard in make_shards(todo(), cfg.shard_size):
        if dst.exists(fragment_key(shard.shard_id)):  # committed by an earlier, interrupted run
            skipped += len(shard.objects)
            continue
        shards.append(shard)
    plan = RunPlan(run_id or new_run_id(), tuple(shards), listed, skipped, ignored)
    log.info(
        "planned %d images in %d shards (%d already done, %d non-image files ignored)",
        plan.images,
        len(plan.shards),
        skipped,
        ignored,
    )
    return plan
