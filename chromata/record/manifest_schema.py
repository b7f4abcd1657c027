"""The manifest's schema, defined once: ``ImageRecord`` (the pipeline's result, the manifest row and the review
queue's input) and ``MANIFEST_SCHEMA`` (its Parquet columns, version ``SCHEMA_VERSION`` in the file metadata).

A module of its own so that everything that reads or writes fragments (``chromata.record.manifest``,
``chromata.record.compaction``) shares it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

import pyarrow as pa

SCHEMA_VERSION = "1.2"
MANIFEST_PREFIX = "_chromata/manifest"
HEATMAP_PREFIX = "_chromata/heatmaps"
Status = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class ImageRecord:
    """Everything chromata knows about one image in one run: the manifest row and queue entry."""

    image_id: str
    source_uri: str
    source_key: str
    source_etag: str
    source_size: int
    source_sha256: str | None
    width: int | None
    height: int | None
    bit_depth: int | None
    output_uri: str | None
    output_sha256: str | None
    heatmap_uri: str | None
    status: Status
    error: str | None
    confidence: float | None
    confidence_reasons: list[str] = field(default_factory=list)
    needs_review: bool = False
    model_name: str = ""
    model_sha256: str = ""
    params_json: str = "{}"
    chromata_version: str = ""
    run_id: str = ""
    shard_id: str = ""
    started_at: float = 0.0  # UNIX seconds, UTC
    finished_at: float = 0.0
    duration_ms: float = 0.0
    frames: int | None = None  # videos: frames colorized (images: None)
    error_code: str | None = None  # the failure's code alone ("decode_error"); ``error`` is "code: detail"
    output_key: str | None = None  # the output's key relative to the destination (it can move; the URI can't)
    heatmap_key: str | None = None  # likewise for its confidence heatmap


_TS = pa.timestamp("us", tz="UTC")
MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("source_key", pa.string(), nullable=False),
        pa.field("source_etag", pa.string()),
        pa.field("source_size", pa.int64()),
        pa.field("source_sha256", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("bit_depth", pa.int8()),
        pa.field("output_uri", pa.string()),
        pa.field("output_sha256", pa.string()),
        pa.field("heatmap_uri", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("confidence", pa.float32()),
        pa.field("confidence_reasons", pa.list_(pa.string())),
        pa.field("needs_review", pa.bool_()),
        pa.field("model_name", pa.string()),
        pa.field("model_sha256", pa.string()),
        pa.field("params_json", pa.string()),
        pa.field("chromata_version", pa.string()),
        pa.field("run_id", pa.string()),
        pa.field("shard_id", pa.string()),
        pa.field("started_at", _TS),
        pa.field("finished_at", _TS),
        pa.field("duration_ms", pa.float64()),
        pa.field("frames", pa.int32()),  # added in schema 1.1; older fragments read back as null
        # added in schema 1.2; for older fragments derived on reading (``_derive_1_2``)
        pa.field("error_code", pa.string()),
        pa.field("output_key", pa.string()),
        pa.field("heatmap_key", pa.string()),
    ],
    metadata={"chromata.schema_version": SCHEMA_VERSION},
)
assert [f.name for f in fields(ImageRecord)] == MANIFEST_SCHEMA.names, "schema and record disagree"
