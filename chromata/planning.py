"""Planning a run: list the source, drop what earlier runs already recorded, cut into shards."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from chromata.config import RunConfig
from chromata.imageio import is_image_key
from chromata.manifest import fragment_key, read_manifest
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


def plan_run(cfg: RunConfig, run_id: str | None = None) -> RunPlan:
    """Checks both locations, then lists and shards the work still to do."""
    src = open_storage(cfg.source, cfg.endpoint_url)
    dst = open_storage(cfg.destination, cfg.endpoint_url)
    src.check_readable()
    dst.check_writable()
    seen = read_manifest(dst, columns=["source_key", "source_etag", "source_size", "status", "model_sha256"])
    current_model = weights_sha256(cfg.model) if cfg.reprocess_if_model_changed else None
    versions = zip(
        seen["source_key"].to_pylist(),
        seen["source_etag"].to_pylist(),
        seen["source_size"].to_pylist(),
        seen["status"].to_pylist(),
        seen["model_sha256"].to_pylist(),
        strict=True,
    )
    done = {
        (k, e, s)
        for k, e, s, st, model in versions
        if not (cfg.retry_failed and st == "failed") and (current_model is None or model == current_model)
    }
    known_keys = set(seen["source_key"].to_pylist())
    listed_keys: set[str] = set()
    listed = ignored = skipped = 0

    def todo() -> Iterator[ObjectInfo]:
        nonlocal listed, ignored, skipped
        for obj in src.list():
            if not is_image_key(obj.key):
                ignored += 1
                continue
            listed += 1
            listed_keys.add(obj.key)
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
    deleted = sorted(known_keys - listed_keys)
    if deleted:
        log.warning("%d images recorded by earlier runs are gone from the source, e.g. %s", len(deleted), deleted[0])
    plan = RunPlan(run_id or new_run_id(), tuple(shards), listed, skipped, ignored, len(deleted), tuple(deleted[:20]))
    log.info(
        "planned %d images in %d shards (%d already done, %d non-image files ignored)",
        plan.images,
        len(plan.shards),
        skipped,
        ignored,
    )
    return plan
