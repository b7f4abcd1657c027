"""Curator decisions flowing back into the data: a decisions Parquet beside the manifest.

``export_decisions`` joins the append-only decision log to the manifest by image id and output hash and
writes it create-once through :mod:`chromata.record.decisions` (``_chromata/decisions/decisions-<timestamp>.parquet``
in the destination), which is also where ``latest_decisions`` reads every export back from.
"""

from __future__ import annotations

from typing import Any

from chromata.archive.storage import Storage
from chromata.record.decisions import DECISIONS_PREFIX, latest_decisions, write_decisions
from chromata.record.manifest_index import ManifestIndex
from chromata.review.store import ReviewQueue

__all__ = ["DECISIONS_PREFIX", "MANIFEST_COLUMNS", "export_decisions", "latest_decisions"]
MANIFEST_COLUMNS = ("image_id", "output_sha256", "source_key", "source_sha256", "model_name", "model_sha256", "run_id")


def export_decisions(queue: ReviewQueue, storage: Storage) -> tuple[str, int]:
    """Write the decision log joined to the manifest; returns (key, rows). A destination without a
    manifest still gets the decisions (``in_manifest`` false); one whose manifest cannot be read is a
    :class:`~chromata.errors.StorageError`, not an export that silently lost the join."""
    index = ManifestIndex.load(storage, columns=MANIFEST_COLUMNS, with_decisions=False)
    by_version = {(r["image_id"], r["output_sha256"]): r for r in index.rows()}
    rows: list[dict[str, Any]] = []
    for d in queue.decisions():
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
    return write_decisions(storage, rows), len(rows)
