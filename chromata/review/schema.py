"""The review database's tables (SQLAlchemy 2.0 declarative models) and the plain values read from them.

Items (one per image version), their confidence reasons (one row per reason, so that filters and
facets are indexed lookups instead of parsing every stored list), curator accounts, and the append-only
decision log. The schema itself is created and changed by the Alembic migrations in ``migrations/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, String, Text, exists, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("curator", "admin")
DECISIONS = {"approve": "approved", "reject": "rejected", "recolour": "needs_recolour"}
# How a decision was made (``ReviewDecision.mode``): the item reviewed on its own (its page, or alone through
# the API), or one of many cards decided at once from the queue grid. Bulk approvals weigh less when the
# decisions refit the routing (chromata.judgement.routing_fit).
MODES = ("item", "bulk")
RERUN_STATUSES = ("rejected", "needs_recolour")


class Base(DeclarativeBase):
    pass


class ReviewItem(Base):
    """One image waiting for (or having had) a curator's decision. Unique per image version.

    ``output_key`` and ``heatmap_key`` address the files relative to the run's destination, so that a
    destination copied, synced or mounted elsewhere still serves them; the URIs are kept as recorded."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    item_key: Mapped[str] = mapped_column(String(64), unique=True)
    image_id: Mapped[str] = mapped_column(String(64), index=True)
    collection: Mapped[str] = mapped_column(String(255), default="", index=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    shard_id: Mapped[str] = mapped_column(String(64))
    source_uri: Mapped[str] = mapped_column(Text, index=True)
    output_uri: Mapped[str] = mapped_column(Text)
    output_sha256: Mapped[str] = mapped_column(String(64))
    output_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    heatmap_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    heatmap_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    confidence: Mapped[float] = mapped_column(Float)
    reasons_json: Mapped[str] = mapped_column(Text, default="[]")
    model_name: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(32), default="pending")
    enqueued_at: Mapped[float] = mapped_column(Float)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claim_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    decided_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        Index("ix_review_status_confidence", "status", "confidence"),
        Index("ix_review_status_enqueued", "status", "enqueued_at"),
    )

    @property
    def reasons(self) -> list[str]:
        return list(json.loads(self.reasons_json))


class ReviewItemReason(Base):
    """One confidence reason of one item (the item's ``reasons_json`` keeps the list in its order)."""

    __tablename__ = "review_item_reasons"

    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class ReviewUser(Base):
    __tablename__ = "review_users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)


class ReviewDecision(Base):
    """Append-only: rows are inserted, never updated or deleted."""

    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"), index=True)
    image_id: Mapped[str] = mapped_column(String(64), index=True)
    username: Mapped[str] = mapped_column(ForeignKey("review_users.username"))
    decision: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[float] = mapped_column(Float)
    mode: Mapped[str | None] = mapped_column(String(16), nullable=True)  # MODES; null: before migration 0004

    __table_args__ = (Index("ix_review_decisions_user_time", "username", "decided_at"),)


class ClaimError(Exception):
    """The item is not claimed by this curator (never claimed, claimed by another, or the lease expired)."""


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
    claimed_by: str | None = None
    claim_expires_at: float | None = None
    model_name: str = ""
    output_sha256: str = ""
    shard_id: str = ""
    output_key: str | None = None  # relative to the destination; None on items queued before 0003
    heatmap_key: str | None = None
    heatmap_uri: str | None = None


@dataclass(frozen=True)
class Filters:
    """Queue page filters; every field optional."""

    status: str | None = "pending"
    collection: str | None = None
    run_id: str | None = None
    reason: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None


def entry(i: ReviewItem) -> QueueEntry:
    """The item's values (every field of QueueEntry is a column or property of ReviewItem)."""
    return QueueEntry(**{f.name: getattr(i, f.name) for f in fields(QueueEntry)} | {"reasons": tuple(i.reasons)})


def where(q: Any, f: Filters) -> Any:
    """``q`` narrowed by the filters (a reason is an indexed lookup in ``review_item_reasons``)."""
    if f.status:
        q = q.where(ReviewItem.status == f.status)
    if f.collection:
        q = q.where(ReviewItem.collection == f.collection)
    if f.run_id:
        q = q.where(ReviewItem.run_id == f.run_id)
    if f.reason:
        q = q.where(
            exists(
                select(ReviewItemReason.item_id).where(
                    ReviewItemReason.item_id == ReviewItem.id, ReviewItemReason.reason == f.reason
                )
            )
        )
    if f.min_confidence is not None:
        q = q.where(ReviewItem.confidence >= f.min_confidence)
    if f.max_confidence is not None:
        q = q.where(ReviewItem.confidence <= f.max_confidence)
    return q
