"""The engine: one listed object in, one manifest row out, whatever the media.

    listing ──▶ routing.intake ──▶ handler ─────────────▶ output.OutputPath ──▶ records ──▶ ShardResult
               (kind from key,     still  (batched)       confidence over      (ok, failed,
                size, header;      pages  ┐               every unit,          skipped rows;
                limits)            banded ├ large-item    provenance, encode   Failure typed)
                                   film   ┘ thread        + label + sign,
                                                          write, heatmap

``scheduler.ShardProcessor`` owns the threads and batches and is what an execution engine (a Ray actor, a
process pool, a notebook) wraps. Where to add things: an output format → ``chromata.media.formats``; a media kind →
a handler module here and a branch in ``routing.intake`` and ``ShardProcessor.finish_heavy``; an input check
→ ``chromata.judgement.inputchecks`` (every kind runs it through ``InputChecks``). Planning a run (listing,
skipping what earlier runs did, cutting shards) is :mod:`~chromata.pipeline.planning`; scans too large for
memory and films are :mod:`~chromata.pipeline.tiled` and :mod:`~chromata.pipeline.video`; the workers' memory
allocator settings, :mod:`~chromata.pipeline.allocator`.

May import: the run config and everything it runs on — models, judgement, the record, media, the archive,
colour maths; never the studies, training, the CLI or the review app.
"""

from chromata.colormath.color import lightness_of
from chromata.pipeline.output import heatmap_key, output_key
from chromata.pipeline.routing import IN_MEMORY_BYTES_PER_PIXEL, in_memory_pixels
from chromata.pipeline.scheduler import ShardProcessor, gpu_utilisation, thread_split
from chromata.pipeline.shards import (
    Shard,
    ShardResult,
    ShardStats,
    make_shards,
    merge_results,
    route_for_review,
    shard_id_for,
)

__all__ = [
    "IN_MEMORY_BYTES_PER_PIXEL",
    "Shard",
    "ShardProcessor",
    "ShardResult",
    "ShardStats",
    "gpu_utilisation",
    "heatmap_key",
    "in_memory_pixels",
    "lightness_of",
    "make_shards",
    "merge_results",
    "output_key",
    "route_for_review",
    "shard_id_for",
    "thread_split",
]
