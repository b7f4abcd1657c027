"""Review queue storage (SQLAlchemy 2.0): the same code on SQLite (default) and PostgreSQL.

No web framework imports here; the review app and the pipeline both use this module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Float,
    Index,
    String,
    Text,
    create_engine,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from chromata.errors import ConfigError
from chromata.manifest import ImageRecord


class Base(DeclarativeBase):
    pass


class ReviewItem(Base):
    """One image waiting for (or having had) a curator's decision. Unique per image version."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    item_key: Mapped[str] = mapped_column(String(64), unique=True)
    image_id: Mapped[str] = mapped_column(String(64), index=True)
    collection: Mapped[str] = mapped_column(String(255), default="")
    run_id: Mapped[str] = mapped_column(String(64))
    shard_id: Mapped[str] = mapped_column(String(64))
    source_uri: Mapped[str] = mapped_column(Text)
    output_uri: Mapped[str] = mapped_column(Text)
    output_sha256: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    reasons_json: Mapped[str] = mapped_column(Text, default="[]")
    model_name: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(32), default="pending")
    enqueued_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_review_status_confidence", "status", "confidence"),)

    @property
    def reasons(self) -> list[str]:
        return list(json.loads(self.reasons_json))


@dataclass(frozen=True)
class QueueEntry:
    id: int
    image_id: str
    collection: str
    run_id: str
    source_uri: str
    output_uri: str
    confidence: float
    reasons: tuple[str, ...]
    status: str
    enqueued_at: float


def item_key(rec: ImageRecord) -> str:
    """One queue entry per image *version*: the same output enqueued twice is one entry."""
    return f"{rec.image_id}:{(rec.output_sha256 or '')[:32]}"


class ReviewQueue:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine: Engine = create_engine(url, pool_pre_ping=True)
        except Exception as exc:  # bad URL or missing driver: one clear message
            raise ConfigError(f"cannot open review database {url!r}: {exc}") from exc
        Base.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def enqueue(self, records: Iterable[ImageRecord], collection: str = "") -> int:
        """Add records that need review; idempotent (re-runs add nothing twice). Returns rows added."""
        rows = [
            {
                "item_key": item_key(r),
                "image_id": r.image_id,
                "collection": collection,
                "run_id": r.run_id,
                "shard_id": r.shard_id,
                "source_uri": r.source_uri,
                "output_uri": r.output_uri or "",
                "output_sha256": r.output_sha256 or "",
                "confidence": float(r.confidence if r.confidence is not None else 0.0),
                "reasons_json": json.dumps(list(r.confidence_reasons)),
                "model_name": r.model_name,
                "status": "pending",
                "enqueued_at": time.time(),
            }
            for r in records
            if r.needs_review and r.status == "ok"
        ]
        if not rows:
            return 0
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = (
            insert(ReviewItem).values(rows).on_conflict_do_nothing(index_elements=["item_key"]).returning(ReviewItem.id)
        )
        with Session(self.engine) as s, s.begin():
            return len(s.execute(stmt).all())

    def list(
        self, status: str | None = "pending", collection: str | None = None, limit: int = 100
    ) -> Sequence[QueueEntry]:
        q = select(ReviewItem).order_by(ReviewItem.confidence.asc(), ReviewItem.id.asc()).limit(limit)
        if status:
            q = q.where(ReviewItem.status == status)
        if collection:
            q = q.where(ReviewItem.collection == collection)
        with Session(self.engine) as s:
            return [
                QueueEntry(
                    i.id,
                    i.image_id,
                    i.collection,
                    i.run_id,
                    i.source_uri,
                    i.output_uri,
                    i.confidence,
                    tuple(i.reasons),
                    i.status,
                    i.enqueued_at,
                )
                for i in s.scalars(q)
            ]

    def count(self, status: str | None = "pending") -> int:
        q = select(func.count()).select_from(ReviewItem)
        if status:
            q = q.where(ReviewItem.status == status)
        with Session(self.engine) as s:
            return int(s.scalar(q) or 0)
