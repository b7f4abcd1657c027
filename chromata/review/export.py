"""Curator decisions flowing back into the data: a decisions Parquet beside the manifest.

``export_decisions`` joins the append-only decision log to the manifest by image id and output hash and
writes it create-once as ``_chromata/decisions/decisions-<timestamp>.parquet`` in the destination;
``latest_decisions`` reads every export back (newest decision per image version wins), which is what
``chromata manifest show`` displays.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from chromata.manifest import read_manifest
from chromata.review.store import ReviewQueue
from chromata.storage import Storage

DECISIONS_PREFIX = "_chromata/decisions"
MANIFEST_COLUMNS = ("image_id", "output_sha256", "source_key", "source_sha256", "model_name", "model_sha256", "run_id")


def export_decisions(queue: ReviewQueue, storage: Storage) -> tuple[str, int]:
    """Write the decision log joined to the manifest; returns (key, rows)."""
    decisions = queue.decisions()
    try:
        manifest = read_manifest(storage, columns=list(MANIFEST_COLUMNS)).to_pylist()
    except Exception:  # a destination without a manifest still gets the decisions
        manifest = []
    by_version = {(r["image_id"], r["output_sha256"]): r for r in manifest}
    rows: list[dict[str, Any]] = []
    for d in decisions:
        m = by_version.get((d["image_id"], d["output_sha256"]), {})
        rows.append(
            {
                **d,
                "source_key": m.get("source_key"),
                "source_sha256": m.get("source_sha256"),
                "model_sha256": m.get("model_sha256"),
                "in_manifest": bool(m),
            }
        )
    schema = pa.schema(
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
        ]
    )
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf)
    key = f"{DECISIONS_PREFIX}/decisions-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{len(rows)}.parquet"
    storage.create_once(key, buf.getvalue(), content_type="application/vnd.apache.parquet")
    return key, len(rows)


def latest_decisions(storage: Storage) -> dict[tuple[str, str], dict[str, Any]]:
    """(image_id, output_sha256) -> the newest exported decision for that image version."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for info in storage.list(DECISIONS_PREFIX + "/"):
        if not info.key.endswith(".parquet"):
            continue
        for row in pq.read_table(io.BytesIO(storage.read(info.key))).to_pylist():
            k = (row["image_id"], row["output_sha256"])
            if k not in latest or row["decided_at"] >= latest[k]["decided_at"]:
                latest[k] = row
    return latest
