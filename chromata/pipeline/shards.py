"""Shards: the unit of work an engine schedules and the manifest commits (one fragment each).

A shard is a run of consecutive listed objects; its id hashes their keys, versions and attempt numbers, so a
re-listing of the same work reproduces it. ``ShardResult`` is what a worker hands back: the rows in the
shard's order, with where the time went (``ShardStats``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace

from chromata.archive.storage import ObjectInfo
from chromata.config import RunConfig
from chromata.record.manifest import ImageRecord, Status


@dataclass(frozen=True)
class Shard:
    shard_id: str
    objects: tuple[ObjectInfo, ...]

    @property
    def total_bytes(self) -> int:
        return sum(o.size for o in self.objects)


def shard_id_for(objects: Iterable[ObjectInfo], attempt: Callable[[str], int] = lambda key: 0) -> str:
    """Derived from the shard's keys, versions and attempt numbers (how many manifest rows each key
    already has): a re-listing of the same work reproduces it, so an interrupted run resumes into the
    same fragment, while a retry of committed work (``--retry-failed``) gets a fragment of its own."""
    h = hashlib.sha256()
    for o in objects:
        n = attempt(o.key)
        h.update(f"{o.key}\t{o.etag}\t{o.size}{f'#{n}' if n else ''}\n".encode())
    return h.hexdigest()[:16]


def make_shards(
    objects: Iterable[ObjectInfo], shard_size: int, attempt: Callable[[str], int] = lambda key: 0
) -> Iterator[Shard]:
    """Group a key-ordered stream of objects into consecutive shards without holding it all."""
    batch: list[ObjectInfo] = []
    for obj in objects:
        batch.append(obj)
        if len(batch) == shard_size:
            yield Shard(shard_id_for(batch, attempt), tuple(batch))
            batch = []
    if batch:
        yield Shard(shard_id_for(batch, attempt), tuple(batch))


@dataclass
class ShardStats:
    """Where a shard's time went, measured in the worker; the driver turns it into metrics."""

    decode_seconds: list[float] = field(default_factory=list)  # per image: read, hash, decode, L*, checks
    encode_seconds: list[float] = field(default_factory=list)  # per image: merge, encode, write, heatmap
    inference_seconds: list[float] = field(default_factory=list)  # per batch: the model alone
    batch_seconds: list[float] = field(default_factory=list)  # per batch: first image taken -> outputs queued
    read_sizes: list[int] = field(default_factory=list)  # list.append is atomic across the I/O threads
    written_sizes: list[int] = field(default_factory=list)
    cpu_seconds: float = 0.0  # CPU time of the worker process during the shard (all its threads)
    gpu_utilisation: list[float] = field(default_factory=list)  # NVML samples at each batch, 0..1

    @property
    def bytes_read(self) -> int:
        return sum(self.read_sizes)

    @property
    def bytes_written(self) -> int:
        return sum(self.written_sizes)


@dataclass
class ShardResult:
    shard_id: str
    records: list[ImageRecord]
    seconds: float
    worker: str = ""
    stats: ShardStats = field(default_factory=ShardStats)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.records if r.status == status)


def merge_results(shard: Shard, parts: Iterable[ShardResult], cfg: RunConfig) -> ShardResult:
    """One result for ``shard`` from the results of its parts (a shard run image by image), its rows in
    the shard's order, its statistics pooled, the review policy applied to the whole shard again."""
    parts = list(parts)
    order = {o.key: i for i, o in enumerate(shard.objects)}
    records = sorted((r for part in parts for r in part.records), key=lambda r: order.get(r.source_key, len(order)))
    stats = ShardStats(cpu_seconds=sum(part.stats.cpu_seconds for part in parts))
    for f in fields(ShardStats):
        if f.name != "cpu_seconds":
            for part in parts:
                getattr(stats, f.name).extend(getattr(part.stats, f.name))
    workers = ", ".join(sorted({part.worker for part in parts if part.worker}))
    seconds = sum(part.seconds for part in parts)
    return ShardResult(shard.shard_id, route_for_review(records, cfg), seconds, workers, stats)


def route_for_review(records: list[ImageRecord], cfg: RunConfig) -> list[ImageRecord]:
    """Apply the review policy: the confidence threshold, or a budget (the least confident fraction of
    the colorized images, counted per shard so that a shard's commit never waits for the whole run). An
    image queued by the budget alone says so (``least_confident``), so no queued item is without a reason."""
    if cfg.review_budget is None:
        return records
    ok = sorted((r for r in records if r.status == "ok"), key=lambda r: (r.confidence or 0.0, r.source_key))
    quota = review_items(cfg, len(ok))
    chosen = {r.source_key for r in ok[:quota]}
    routed = []
    for r in records:
        reasons = [c for c in r.confidence_reasons if c != LEAST_CONFIDENT]
        if r.source_key in chosen:
            reasons.append(LEAST_CONFIDENT)
        routed.append(replace(r, needs_review=r.source_key in chosen, confidence_reasons=reasons))
    return routed


def review_items(cfg: RunConfig, colorized: int) -> int:
    """How many of a shard's ``colorized`` images the review budget sends to curators (0 with a threshold)."""
    return math.ceil(cfg.review_budget * colorized) if cfg.review_budget is not None else 0


LEAST_CONFIDENT = "least_confident"  # chromata.judgement.reasons has its text
