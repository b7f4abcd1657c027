"""One index over a destination's manifest: every row, the latest row per source image, and the curators'
exported decisions joined. The review app, ``chromata provenance``, the decision export, the CLI's manifest
views and the IIIF manifest all read the manifest through it, so "which row is current" is decided here.

    index = ManifestIndex.load(storage)                      # every fragment, decisions joined
    index = ManifestIndex.load(storage, shard_ids=["ab12"])  # one shard's fragment (what a review item needs)
    index.rows()                    # every row (oldest fragment first), with review_decision / review_curator
    index.latest()                  # the newest row of each image (by finished_at), ordered by source_key
    index.latest(status="ok")       # the newest *ok* row of each image (a later failure hides nothing)
    index.versions(image_id)        # every row of one image, oldest first
    index.version(image_id, sha)    # the row of one exact output, or None
    index.decision(image_id, sha)   # the newest exported decision on that output, or None

Rows are plain dicts (``pyarrow.Table.to_pylist``; timestamps are ``datetime``). A destination with no
manifest yet is an empty index; a manifest that exists but cannot be read (access denied, a corrupt
fragment) raises :class:`StorageError` — it is never mistaken for "no manifest". Plain core code: it
does not import the review app.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from chromata.archive.storage import ObjectInfo, Storage
from chromata.errors import StorageError
from chromata.record.decisions import VersionKey, latest_decisions
from chromata.record.manifest import fragment_key, read_manifest


class _Fragments:
    """A read-only view of ``inner`` that lists only the given manifest fragments (so that reading one
    shard's rows goes through ``read_manifest``'s schema handling without listing every fragment; a
    fragment is never deleted by compaction, so it is always there to read)."""

    def __init__(self, inner: Storage, keys: Iterable[str]) -> None:
        self.inner = inner
        self.keys = sorted(k for k in set(keys) if inner.exists(k))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key in self.keys:
            if key.startswith(prefix.strip("/")):
                yield ObjectInfo(key, 0, "", 0.0)

    def read(self, key: str) -> bytes:
        return self.inner.read(key)

    def uri(self, key: str) -> str:
        return self.inner.uri(key)

    def exists(self, key: str) -> bool:
        return key in self.keys

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(key)

    def download(self, key: str, path: Path) -> None:
        self.inner.download(key, path)


def read_table(
    storage: Storage, shard_ids: Iterable[str] | None = None, columns: Iterable[str] | None = None
) -> pa.Table:
    """The manifest (or only the fragments of ``shard_ids``) as one table; an unreadable one is a
    :class:`StorageError` that says so."""
    source: Any = storage if shard_ids is None else _Fragments(storage, (fragment_key(s) for s in shard_ids))
    try:
        return read_manifest(source, columns=columns)
    except StorageError:
        raise
    except Exception as exc:  # AccessDenied, a truncated fragment, ...: an error, not "no manifest"
        raise StorageError(f"cannot read the manifest under {storage.uri('_chromata/manifest')}: {exc}") from exc


def _latest_positions(table: pa.Table) -> list[int]:
    """Positions of the newest row of each image_id (ties: the later fragment), ordered by source_key."""
    if len(table) == 0:
        return []
    t = pa.table(
        {
            "image_id": table["image_id"],
            "finished_at": table["finished_at"],
            "source_key": table["source_key"],
            "pos": pa.array(range(len(table)), pa.int64()),
        }
    )
    order = pc.sort_indices(t, [("image_id", "ascending"), ("finished_at", "ascending"), ("pos", "ascending")])
    t = t.take(order)
    ids = t["image_id"].combine_chunks()
    last = [*pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1)).to_pylist(), True]
    latest = t.filter(pa.array(last))
    latest = latest.take(pc.sort_indices(latest, [("source_key", "ascending"), ("pos", "ascending")]))
    return [int(p) for p in latest["pos"].to_pylist()]


KEY_COLUMNS = ("image_id", "output_sha256", "source_key", "finished_at", "status")


@dataclass
class ManifestIndex:
    table: pa.Table
    decisions: dict[VersionKey, dict[str, Any]] = field(default_factory=dict)
    _rows: list[dict[str, Any]] | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls,
        storage: Storage,
        *,
        shard_ids: Iterable[str] | None = None,
        columns: Iterable[str] | None = None,
        with_decisions: bool = True,
    ) -> ManifestIndex:
        """Read the manifest (every fragment, or those of ``shard_ids``) and, with ``with_decisions``, the
        exported curator decisions. ``columns``: read only these (``image_id``, ``output_sha256``,
        ``source_key`` and ``finished_at`` are always read)."""
        cols = None if columns is None else list(dict.fromkeys([*KEY_COLUMNS, *columns]))
        table = read_table(storage, shard_ids, cols)
        return cls(table, latest_decisions(storage) if with_decisions else {})

    def __len__(self) -> int:
        return len(self.table)

    def rows(self) -> list[dict[str, Any]]:
        """Every row, fragment order, each with ``review_decision`` and ``review_curator`` (None when no
        decision on that exact output was exported)."""
        if self._rows is None:
            self._rows = self.table.to_pylist()
            for r in self._rows:
                d = self.decisions.get((r["image_id"], r["output_sha256"]))
                r["review_decision"] = d["decision"] if d else None
                r["review_curator"] = d["curator"] if d else None
        return self._rows

    def latest(self, status: str | None = None) -> list[dict[str, Any]]:
        """The newest row of each image (among rows with ``status``, when given), by source key."""
        rows, table = self.rows(), self.table
        if status is not None:
            keep = [i for i, r in enumerate(rows) if r["status"] == status]
            return [rows[keep[p]] for p in _latest_positions(table.take(pa.array(keep, pa.int64())))]
        return [rows[p] for p in _latest_positions(table)]

    def versions(self, image_id: str) -> list[dict[str, Any]]:
        """Every row of ``image_id``, oldest first."""
        return sorted((r for r in self.rows() if r["image_id"] == image_id), key=lambda r: r["finished_at"])

    def version(self, image_id: str, output_sha256: str | None) -> dict[str, Any] | None:
        """The row that produced exactly this output, or None."""
        return next((r for r in self.rows() if r["image_id"] == image_id and r["output_sha256"] == output_sha256), None)

    def decision(self, image_id: str, output_sha256: str | None) -> dict[str, Any] | None:
        return self.decisions.get((image_id, output_sha256 or ""))
