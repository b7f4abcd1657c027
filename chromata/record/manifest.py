"""The Parquet manifest: one row per source image per run, written as one fragment per shard.

The schema is defined once, in ``chromata.record.manifest_schema`` (``MANIFEST_SCHEMA``, version ``SCHEMA_VERSION``
in the file metadata), and re-exported here. Fragments live under
``<destination>/_chromata/manifest/shard-<id>.parquet``; the folder is a Parquet dataset that pyarrow, DuckDB,
pandas or Spark read directly.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from chromata.archive.storage import Storage
from chromata.record.manifest_schema import (
    _TS,
    HEATMAP_PREFIX,
    MANIFEST_PREFIX,
    MANIFEST_SCHEMA,
    SCHEMA_VERSION,
    ImageRecord,
    Status,
)

log = logging.getLogger(__name__)
__all__ = ["HEATMAP_PREFIX", "MANIFEST_PREFIX", "MANIFEST_SCHEMA", "SCHEMA_VERSION", "ImageRecord", "Status"]


def image_id_for(source_uri: str) -> str:
    """Stable identifier of a source image across runs (joins manifests, queue and decisions)."""
    return hashlib.sha256(source_uri.encode("utf-8")).hexdigest()[:24]


def fragment_key(shard_id: str) -> str:
    return f"{MANIFEST_PREFIX}/shard-{shard_id}.parquet"


def to_table(records: Sequence[ImageRecord]) -> pa.Table:
    cols: dict[str, list[Any]] = {name: [] for name in MANIFEST_SCHEMA.names}
    for rec in records:
        for name, value in asdict(rec).items():
            if name in ("started_at", "finished_at"):
                value = int(value * 1_000_000)
            cols[name].append(value)
    arrays = []
    for f in MANIFEST_SCHEMA:
        if f.type == _TS:
            arrays.append(pa.array(cols[f.name], type=pa.int64()).cast(_TS))
        else:
            arrays.append(pa.array(cols[f.name], type=f.type))
    return pa.Table.from_arrays(arrays, schema=MANIFEST_SCHEMA)


def write_fragment(storage: Storage, shard_id: str, records: Sequence[ImageRecord]) -> str:
    """Write one shard's rows atomically and at most once: the fragment's existence marks the shard as
    done, so a retried or duplicated commit of the same shard leaves the first one in place."""
    buf = io.BytesIO()
    pq.write_table(to_table(records), buf, compression="zstd")
    key = fragment_key(shard_id)
    if not storage.create_once(key, buf.getvalue(), content_type="application/vnd.apache.parquet"):
        log.info("fragment %s was already committed; keeping the first", key)
    return key


def fragment_keys(storage: Storage) -> list[str]:
    from chromata.record.compaction import is_fragment_key

    return [o.key for o in storage.list(MANIFEST_PREFIX) if is_fragment_key(o.key)]


def read_manifest(storage: Storage, columns: Iterable[str] | None = None, dictionary: Iterable[str] = ()) -> pa.Table:
    """All fragments under the destination as one table (empty table with the schema if none), in
    fragment order; compacted fragments are read from their compaction (:mod:`chromata.record.compaction`).
    ``dictionary``: columns to read dictionary-encoded (few distinct values: status, model_sha256)."""
    from chromata.record.compaction import read_parts

    cols = list(columns) if columns is not None else None
    tables = read_parts(storage, cols, dictionary)
    if not tables:
        schema = MANIFEST_SCHEMA if cols is None else pa.schema([MANIFEST_SCHEMA.field(c) for c in cols])
        return schema.empty_table()
    table = pa.concat_tables(tables, promote_options="default")
    if cols is None:  # fragments written before a column existed read back with it as nulls
        for f in MANIFEST_SCHEMA:
            if f.name not in table.column_names:
                table = table.append_column(f, pa.nulls(len(table), f.type))
    return _derive_1_2(table, storage)


_DERIVED = {"error_code": "error", "output_key": "output_uri", "heatmap_key": "heatmap_uri"}


def _derive_1_2(table: pa.Table, storage: Storage) -> pa.Table:
    """Fill the columns of schema 1.2 on rows written before it (where they are null and their source
    column is there): the code from ``error``, the relative keys from the URIs under ``storage``."""
    root = storage.uri("x")[:-1]
    for name, source in _DERIVED.items():
        if name not in table.column_names or source not in table.column_names:
            continue
        have, src = table[name].to_pylist(), table[source].to_pylist()
        if all(h is not None or s is None for h, s in zip(have, src, strict=True)):
            continue
        derive = error_code_of if name == "error_code" else (lambda uri: _relative(uri, root))
        filled = [h if h is not None or s is None else derive(s) for h, s in zip(have, src, strict=True)]
        table = table.set_column(table.column_names.index(name), name, pa.array(filled, pa.string()))
    return table


def error_code_of(error: str) -> str:
    """The code of an ``error`` written as "code: detail" (rows of schema < 1.2 have no ``error_code``)."""
    return error.split(":", 1)[0].strip()


def _relative(uri: str, root: str) -> str | None:
    return uri[len(root) :] if uri.startswith(root) else None


HISTORY_COLUMNS = ("source_key", "source_etag", "source_size", "status", "model_sha256")


def processed_versions(
    storage: Storage,
    *,
    redo_failed: bool = False,
    model_sha256: str | None = None,
    table: pa.Table | None = None,
) -> set[tuple[str, str, int]]:
    """(source_key, etag, size) of every image an earlier run already recorded — less failed rows with
    ``redo_failed``, and less rows made by other weights when ``model_sha256`` is given. ``table``: the
    manifest's ``HISTORY_COLUMNS`` when the caller has read them already."""
    t = table if table is not None else read_manifest(storage, columns=HISTORY_COLUMNS)
    rows = zip(
        t["source_key"].to_pylist(),
        t["source_etag"].to_pylist(),
        t["source_size"].to_pylist(),
        t["status"].to_pylist(),
        t["model_sha256"].to_pylist(),
        strict=True,
    )
    return {
        (k, e, s)
        for k, e, s, status, model in rows
        if not (redo_failed and status == "failed") and (model_sha256 is None or model == model_sha256)
    }


def records_needing_review(storage: Storage) -> list[ImageRecord]:
    """Every committed row that the review policy sent to curators (to re-enqueue idempotently)."""
    import pyarrow.compute as pc

    table = read_manifest(storage)
    table = table.filter(pc.and_(pc.equal(table["status"], "ok"), pc.equal(table["needs_review"], True)))
    rows = []
    for row in table.to_pylist():
        for ts in ("started_at", "finished_at"):
            row[ts] = row[ts].timestamp()
        rows.append(ImageRecord(**row))
    return rows


def params_json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))
