"""Curators' decisions beside the manifest: ``_chromata/decisions/decisions-<timestamp>-<rows>-<digest>.parquet``.

The review queue exports its append-only decision log here (the CLI's ``review export``); everything else
that shows decisions — ``chromata manifest show``, ``chromata provenance``, the manifest index — reads them
back from these files, so nothing outside the review app needs the review database.

    key = write_decisions(storage, rows)      # create-once; rows are dicts with DECISIONS_SCHEMA's fields
    latest = latest_decisions(storage)        # (image_id, output_sha256) -> newest decision for that output

``decision`` is the curator's verb as the review log records it (``approve``, ``reject``, ``recolour``); ``mode``
says whether the item was reviewed on its own (``item``) or decided with others from the grid (``bulk``).

Plain core code: no review-app or database imports.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from chromata.archive.storage import Storage

DECISIONS_PREFIX = "_chromata/decisions"
DECISIONS_SCHEMA = pa.schema(
    [
        ("decision_id", pa.int64()),
        ("item_id", pa.int64()),
        ("image_id", pa.string()),
        ("collection", pa.string()),
        ("run_id", pa.string()),
        ("source_uri", pa.string()),
        ("output_uri", pa.string()),
        ("output_sha256", pa.string()),
        ("model_name", pa.string()),
        ("confidence", pa.float64()),
        ("curator", pa.string()),
        ("decision", pa.string()),
        ("note", pa.string()),
        ("decided_at", pa.float64()),
        ("source_key", pa.string()),
        ("source_sha256", pa.string()),
        ("model_sha256", pa.string()),
        ("in_manifest", pa.bool_()),
        # how the curator decided: "item" (the item reviewed on its own page, or alone through the API) or
        # "bulk" (one of many cards decided at once from the queue grid); null in exports from before it was
        # recorded, and in decisions logged before migration 0004
        ("mode", pa.string()),
    ]
)
VersionKey = tuple[str, str]  # (image_id, output_sha256): one colorized version of one image


def write_decisions(storage: Storage, rows: Sequence[Mapping[str, Any]]) -> str:
    """Write ``rows`` (fields of ``DECISIONS_SCHEMA``; others are ignored) create-once; returns the key."""
    table = pa.Table.from_pylist([{n: r.get(n) for n in DECISIONS_SCHEMA.names} for r in rows], schema=DECISIONS_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    data = buf.getvalue()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    # the content's digest in the name: two exports in one second are two files unless they are the same
    key = f"{DECISIONS_PREFIX}/decisions-{stamp}-{len(rows)}-{hashlib.sha256(data).hexdigest()[:12]}.parquet"
    storage.create_once(key, data, content_type="application/vnd.apache.parquet")
    return key


def decision_keys(storage: Storage) -> list[str]:
    return [o.key for o in storage.list(DECISIONS_PREFIX + "/") if o.key.endswith(".parquet")]


def latest_decisions(storage: Storage) -> dict[VersionKey, dict[str, Any]]:
    """(image_id, output_sha256) -> the newest exported decision for that image version ({} when none
    was exported). A later export of the same decision (exports repeat the whole log) changes nothing. Rows
    from exports that predate a field (``mode``) have it as None."""
    latest: dict[VersionKey, dict[str, Any]] = {}
    for key in decision_keys(storage):
        for row in pq.read_table(io.BytesIO(storage.read(key))).to_pylist():
            row = {n: row.get(n) for n in DECISIONS_SCHEMA.names} | row
            k = (row["image_id"], row["output_sha256"])
            if k not in latest or row["decided_at"] >= latest[k]["decided_at"]:
                latest[k] = row
    return latest
