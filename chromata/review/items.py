"""The queue's items: enqueueing a shard's records (idempotently), listing and navigating them, and the
statuses that send an image back to be colorized again."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from chromata.record.manifest import ImageRecord
from chromata.review.database import upsert_for
from chromata.review.schema import RERUN_STATUSES, Filters, QueueEntry, ReviewItem, ReviewItemReason, entry, where


def item_key(rec: ImageRecord) -> str:
    """One queue entry per image *version*: the same source bytes through the same weights and parameters.

    Not the output hash: outputs embed their run id, so a shard redone by a later run (after a crash)
    writes the same pixels with different bytes — that must not put the image before curators twice."""
    version = hashlib.sha256(f"{rec.source_sha256}|{rec.model_sha256}|{rec.params_json}".encode()).hexdigest()
    return f"{rec.image_id}:{version[:32]}"


def _row(r: ImageRecord, collection: str, now: float) -> dict[str, Any]:
    return {
        "item_key": item_key(r),
        "image_id": r.image_id,
        "collection": collection,
        "run_id": r.run_id,
        "shard_id": r.shard_id,
        "source_uri": r.source_uri,
        "output_uri": r.output_uri or "",
        "output_sha256": r.output_sha256 or "",
        "output_key": r.output_key,
        "heatmap_uri": r.heatmap_uri,
        "heatmap_key": r.heatmap_key,
        "confidence": float(r.confidence if r.confidence is not None else 0.0),
        "reasons_json": json.dumps(list(r.confidence_reasons)),
        "model_name": r.model_name,
        "status": "pending",
        "enqueued_at": now,
    }


# What a redone version of a pending item changes: it points at the bytes now on disk.
_REDONE = (
    "output_uri", "output_sha256", "output_key", "heatmap_uri", "heatmap_key", "run_id", "shard_id", "confidence"
)  # fmt: skip


class QueueItems:
    engine: Engine

    def enqueue(self, records: Iterable[ImageRecord], collection: str = "") -> int:
        """Add records that need review; idempotent (re-runs add nothing twice). Returns rows added."""
        now = time.time()
        rows = [_row(r, collection, now) for r in records if r.needs_review and r.status == "ok"]
        if not rows:
            return 0
        stmt = (
            upsert_for(self.engine)(ReviewItem)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["item_key"])
            .returning(ReviewItem.id, ReviewItem.item_key)
        )
        with Session(self.engine) as s, s.begin():
            added = {key: item_id for item_id, key in s.execute(stmt)}
            reasons = [
                {"item_id": added[row["item_key"]], "reason": reason}
                for row in rows
                if row["item_key"] in added
                for reason in dict.fromkeys(json.loads(row["reasons_json"]))
            ]
            if reasons:
                s.execute(upsert_for(self.engine)(ReviewItemReason).values(reasons).on_conflict_do_nothing())
            for row in rows:  # already queued and still pending: point it at the bytes now on disk
                if row["item_key"] not in added:
                    s.execute(
                        update(ReviewItem)
                        .where(
                            ReviewItem.item_key == row["item_key"],
                            ReviewItem.status == "pending",
                            ReviewItem.output_sha256 != row["output_sha256"],
                        )
                        .values({k: row[k] for k in _REDONE})
                    )
            return len(added)

    def list(
        self,
        status: str | None = "pending",
        collection: str | None = None,
        limit: int = 100,
        *,
        filters: Filters | None = None,
        offset: int = 0,
        descending: bool = False,
    ) -> Sequence[QueueEntry]:
        """Items by confidence (least confident first, or most with ``descending``), filtered."""
        f = filters or Filters(status=status, collection=collection)
        order = ReviewItem.confidence.desc() if descending else ReviewItem.confidence.asc()
        q = where(select(ReviewItem), f).order_by(order, ReviewItem.id.asc()).limit(limit).offset(offset)
        with Session(self.engine) as s:
            return [entry(i) for i in s.scalars(q)]

    def get(self, item_id: int) -> QueueEntry | None:
        with Session(self.engine) as s:
            item = s.get(ReviewItem, item_id)
            return entry(item) if item else None

    def neighbours(self, item_id: int, filters: Filters) -> tuple[int | None, int | None]:
        """The items before and after ``item_id`` in the queue's order (for j/k navigation)."""
        item = self.get(item_id)
        if item is None:
            return None, None
        conf, ident = item.confidence, item.id
        earlier = or_(ReviewItem.confidence < conf, (ReviewItem.confidence == conf) & (ReviewItem.id < ident))
        later = or_(ReviewItem.confidence > conf, (ReviewItem.confidence == conf) & (ReviewItem.id > ident))
        ids = where(select(ReviewItem.id), filters)
        with Session(self.engine) as s:
            before = s.scalar(ids.where(earlier).order_by(ReviewItem.confidence.desc(), ReviewItem.id.desc()).limit(1))
            after = s.scalar(ids.where(later).order_by(ReviewItem.confidence.asc(), ReviewItem.id.asc()).limit(1))
        return before, after

    def rerun_source_uris(self) -> set[str]:
        """Sources whose latest reviewed version was rejected or sent back for re-colouring."""
        q = select(ReviewItem.source_uri).where(ReviewItem.status.in_(RERUN_STATUSES))
        with Session(self.engine) as s:
            return set(s.scalars(q))

    def mark_rerun(self, source_uris: Iterable[str]) -> int:
        """Rejected items whose image was colorized again: status ``rerun`` (the decision log keeps why)."""
        uris = [*source_uris]
        if not uris:
            return 0
        stmt = (
            update(ReviewItem)
            .where(ReviewItem.source_uri.in_(uris), ReviewItem.status.in_(RERUN_STATUSES))
            .values(status="rerun")
        )
        with Session(self.engine) as s, s.begin():
            return int(s.execute(stmt).rowcount)  # type: ignore[attr-defined]
