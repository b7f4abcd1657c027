"""Review queue storage (SQLAlchemy 2.0): the same code on SQLite (default) and PostgreSQL.

Items (one per image version), curator accounts (argon2 password hashes), claims with expiring
leases, and an append-only decision log. The schema is managed by Alembic migrations
(``chromata/review/migrations``), applied when a queue is opened. Every query is built with SQLAlchemy
expressions — no SQL is assembled from strings. No web framework imports here; the review app, the CLI
and the pipeline all use this module.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
    update,
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
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claim_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    decided_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_review_status_confidence", "status", "confidence"),)

    @property
    def reasons(self) -> list[str]:
        return list(json.loads(self.reasons_json))


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


ROLES = ("curator", "admin")
DECISIONS = {"approve": "approved", "reject": "rejected", "recolour": "needs_recolour"}
RERUN_STATUSES = ("rejected", "needs_recolour")
USERNAME_MAX = 64


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


@dataclass(frozen=True)
class Filters:
    """Queue page filters; every field optional."""

    status: str | None = "pending"
    collection: str | None = None
    run_id: str | None = None
    reason: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None


def _entry(i: ReviewItem) -> QueueEntry:
    return QueueEntry(
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
        i.claimed_by,
        i.claim_expires_at,
        i.model_name,
        i.output_sha256,
    )


def _where(q: Any, f: Filters) -> Any:
    if f.status:
        q = q.where(ReviewItem.status == f.status)
    if f.collection:
        q = q.where(ReviewItem.collection == f.collection)
    if f.run_id:
        q = q.where(ReviewItem.run_id == f.run_id)
    if f.reason:  # reasons are a JSON list of identifiers; match the quoted identifier
        q = q.where(ReviewItem.reasons_json.contains(json.dumps(f.reason)))
    if f.min_confidence is not None:
        q = q.where(ReviewItem.confidence >= f.min_confidence)
    if f.max_confidence is not None:
        q = q.where(ReviewItem.confidence <= f.max_confidence)
    return q


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (a no-op when it is current)."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # one migrator at a time across processes
            conn.execute(text("SELECT pg_advisory_xact_lock(72657669657701)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def item_key(rec: ImageRecord) -> str:
    """One queue entry per image *version*: the same source bytes through the same weights and parameters.

    Not the output hash: outputs embed their run id, so a shard redone by a later run (after a crash)
    writes the same pixels with different bytes — that must not put the image before curators twice."""
    version = hashlib.sha256(f"{rec.source_sha256}|{rec.model_sha256}|{rec.params_json}".encode()).hexdigest()
    return f"{rec.image_id}:{version[:32]}"


def _serialise_sqlite_writers(engine: Engine) -> None:
    """SQLite: every transaction starts with BEGIN IMMEDIATE, taking the write lock up front, so a
    claim's read-then-update cannot interleave with another's (SQLite's equivalent of SKIP LOCKED)."""

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA busy_timeout = 30000")
        dbapi_conn.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class ReviewQueue:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine: Engine = create_engine(url, pool_pre_ping=True)
        except Exception as exc:  # bad URL or missing driver: one clear message
            raise ConfigError(f"cannot open review database {url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            _serialise_sqlite_writers(self.engine)
        migrate(self.engine)

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
            insert(ReviewItem)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["item_key"])
            .returning(ReviewItem.item_key)
        )
        with Session(self.engine) as s, s.begin():
            added = set(s.scalars(stmt))
            for row in rows:  # already queued and still pending: point it at the bytes now on disk
                if row["item_key"] not in added:
                    s.execute(
                        update(ReviewItem)
                        .where(
                            ReviewItem.item_key == row["item_key"],
                            ReviewItem.status == "pending",
                            ReviewItem.output_sha256 != row["output_sha256"],
                        )
                        .values(
                            output_uri=row["output_uri"],
                            output_sha256=row["output_sha256"],
                            run_id=row["run_id"],
                            shard_id=row["shard_id"],
                            confidence=row["confidence"],
                        )
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
        q = _where(select(ReviewItem), f).order_by(order, ReviewItem.id.asc()).limit(limit).offset(offset)
        with Session(self.engine) as s:
            return [_entry(i) for i in s.scalars(q)]

    def get(self, item_id: int) -> QueueEntry | None:
        with Session(self.engine) as s:
            item = s.get(ReviewItem, item_id)
            return _entry(item) if item else None

    def neighbours(self, item_id: int, filters: Filters) -> tuple[int | None, int | None]:
        """The items before and after ``item_id`` in the queue's order (for j/k navigation)."""
        item = self.get(item_id)
        if item is None:
            return None, None
        key = (item.confidence, item.id)
        with Session(self.engine) as s:
            before = s.scalar(
                _where(select(ReviewItem.id), filters)
                .where(
                    or_(
                        ReviewItem.confidence < key[0],
                        (ReviewItem.confidence == key[0]) & (ReviewItem.id < key[1]),
                    )
                )
                .order_by(ReviewItem.confidence.desc(), ReviewItem.id.desc())
                .limit(1)
            )
            after = s.scalar(
                _where(select(ReviewItem.id), filters)
                .where(
                    or_(
                        ReviewItem.confidence > key[0],
                        (ReviewItem.confidence == key[0]) & (ReviewItem.id > key[1]),
                    )
                )
                .order_by(ReviewItem.confidence.asc(), ReviewItem.id.asc())
                .limit(1)
            )
        return before, after

    def facets(self) -> dict[str, builtins.list[str]]:
        """Values the queue page offers as filters."""
        with Session(self.engine) as s:
            collections = sorted(c for c in s.scalars(select(ReviewItem.collection).distinct()) if c)
            runs = sorted(r for r in s.scalars(select(ReviewItem.run_id).distinct()) if r)
            reasons = sorted(
                {r for js in s.scalars(select(ReviewItem.reasons_json).distinct()) for r in json.loads(js)}
            )
            statuses = sorted(s.scalars(select(ReviewItem.status).distinct()))
        return {"collections": collections, "runs": runs, "reasons": reasons, "statuses": statuses}

    def counts(self, filters: Filters) -> dict[str, int]:
        """Items per status under the other filters."""
        base = Filters(**{**filters.__dict__, "status": None})
        q = _where(select(ReviewItem.status, func.count()), base).group_by(ReviewItem.status)
        with Session(self.engine) as s:
            return {status: int(n) for status, n in s.execute(q)}

    # -- claims ----------------------------------------------------------------------------------------
    def claim_next(
        self, username: str, lease_seconds: float = 900.0, filters: Filters | None = None
    ) -> QueueEntry | None:
        """Atomically claim the least confident pending item that nobody holds (or whose lease expired).

        PostgreSQL: ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED LIMIT 1)``, so concurrent
        claimers skip each other's rows instead of waiting or colliding. SQLite: the same statement in a
        ``BEGIN IMMEDIATE`` transaction, which serialises writers."""
        f = filters or Filters()
        f = Filters(**{**f.__dict__, "status": "pending"})
        now = time.time()
        free = or_(
            ReviewItem.claimed_by.is_(None), ReviewItem.claim_expires_at < now, ReviewItem.claimed_by == username
        )
        pick = (
            _where(select(ReviewItem.id), f)
            .where(free)
            .order_by(ReviewItem.confidence.asc(), ReviewItem.id.asc())
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        stmt = (
            update(ReviewItem)
            .where(ReviewItem.id == pick)
            .values(claimed_by=username, claim_expires_at=now + lease_seconds)
            .returning(ReviewItem.id)
        )
        with Session(self.engine) as s, s.begin():
            got = s.execute(stmt).scalar()
        return self.get(int(got)) if got is not None else None

    def claim(self, item_id: int, username: str, lease_seconds: float = 900.0) -> bool:
        """Claim (or renew) one item if it is pending and free, expired or already this curator's."""
        now = time.time()
        stmt = (
            update(ReviewItem)
            .where(ReviewItem.id == item_id, ReviewItem.status == "pending")
            .where(
                or_(
                    ReviewItem.claimed_by.is_(None),
                    ReviewItem.claim_expires_at < now,
                    ReviewItem.claimed_by == username,
                )
            )
            .values(claimed_by=username, claim_expires_at=now + lease_seconds)
        )
        with Session(self.engine) as s, s.begin():
            return bool(s.execute(stmt).rowcount)  # type: ignore[attr-defined]

    def release(self, item_id: int, username: str) -> None:
        stmt = (
            update(ReviewItem)
            .where(ReviewItem.id == item_id, ReviewItem.claimed_by == username)
            .values(claimed_by=None, claim_expires_at=None)
        )
        with Session(self.engine) as s, s.begin():
            s.execute(stmt)

    # -- decisions -------------------------------------------------------------------------------------
    def decide(self, item_id: int, username: str, decision: str, note: str = "", admin: bool = False) -> None:
        """Record a decision (append-only) and set the item's status; the curator must hold the claim
        (an admin may decide any pending item). Raises :class:`ClaimError` otherwise."""
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}: use {', '.join(DECISIONS)}")
        if decision == "recolour" and not note.strip():
            raise ValueError("a 'needs re-colour' decision needs a note saying what is wrong")
        now = time.time()
        stmt = update(ReviewItem).where(ReviewItem.id == item_id, ReviewItem.status == "pending")
        if not admin:
            stmt = stmt.where(ReviewItem.claimed_by == username, ReviewItem.claim_expires_at >= now)
        stmt = stmt.values(
            status=DECISIONS[decision], decided_at=now, claimed_by=None, claim_expires_at=None
        ).returning(ReviewItem.image_id)
        with Session(self.engine) as s, s.begin():
            image_id = s.execute(stmt).scalar()
            if image_id is None:
                raise ClaimError(f"item {item_id} is not pending under your claim (claim it again)")
            s.add(
                ReviewDecision(
                    item_id=item_id,
                    image_id=image_id,
                    username=username,
                    decision=decision,
                    note=note.strip()[:4000],
                    decided_at=now,
                )
            )

    def decisions(self) -> builtins.list[dict[str, Any]]:
        """The whole audit log, oldest first, with the item's identifiers."""
        q = (
            select(ReviewDecision, ReviewItem)
            .join(ReviewItem, ReviewItem.id == ReviewDecision.item_id)
            .order_by(ReviewDecision.id.asc())
        )
        with Session(self.engine) as s:
            return [
                {
                    "decision_id": d.id,
                    "item_id": d.item_id,
                    "image_id": d.image_id,
                    "collection": i.collection,
                    "run_id": i.run_id,
                    "source_uri": i.source_uri,
                    "output_uri": i.output_uri,
                    "output_sha256": i.output_sha256,
                    "model_name": i.model_name,
                    "confidence": i.confidence,
                    "curator": d.username,
                    "decision": d.decision,
                    "note": d.note,
                    "decided_at": d.decided_at,
                }
                for d, i in s.execute(q)
            ]

    def rerun_source_uris(self) -> set[str]:
        """Sources whose latest reviewed version was rejected or sent back for re-colouring."""
        q = select(ReviewItem.source_uri).where(ReviewItem.status.in_(RERUN_STATUSES))
        with Session(self.engine) as s:
            return set(s.scalars(q))

    def mark_rerun(self, source_uris: Iterable[str]) -> int:
        """Rejected items whose image was colorized again: status ``rerun`` (the decision log keeps why)."""
        uris = list(source_uris)
        if not uris:
            return 0
        stmt = (
            update(ReviewItem)
            .where(ReviewItem.source_uri.in_(uris), ReviewItem.status.in_(RERUN_STATUSES))
            .values(status="rerun")
        )
        with Session(self.engine) as s, s.begin():
            return int(s.execute(stmt).rowcount)  # type: ignore[attr-defined]

    # -- users -----------------------------------------------------------------------------------------
    def add_user(self, username: str, password: str, role: str = "curator") -> None:
        from argon2 import PasswordHasher

        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if (
            not (1 <= len(username) <= USERNAME_MAX)
            or not username.replace("-", "").replace(".", "").replace("_", "").isalnum()
        ):
            raise ValueError("username: 1-64 letters, digits, '.', '-' or '_'")
        if len(password) < 12:
            raise ValueError("password: at least 12 characters")
        user = ReviewUser(
            username=username,
            password_hash=PasswordHasher().hash(password),
            role=role,
            active=True,
            created_at=time.time(),
        )
        with Session(self.engine) as s, s.begin():
            if s.get(ReviewUser, username) is not None:
                raise ValueError(f"user {username!r} exists")
            s.add(user)

    def authenticate(self, username: str, password: str) -> tuple[str, str] | None:
        """(username, role) when the password matches an active account, else None."""
        from argon2 import PasswordHasher
        from argon2.exceptions import InvalidHashError, VerificationError

        hasher = PasswordHasher()
        with Session(self.engine) as s:
            user = s.get(ReviewUser, username)
            if user is None or not user.active:
                hasher.hash(password)  # same work either way: no user enumeration by timing
                return None
            try:
                hasher.verify(user.password_hash, password)
            except (VerificationError, InvalidHashError):
                return None
            return user.username, user.role

    def user_role(self, username: str) -> str | None:
        with Session(self.engine) as s:
            user = s.get(ReviewUser, username)
            return user.role if user and user.active else None

    def users(self) -> builtins.list[dict[str, Any]]:
        with Session(self.engine) as s:
            return [
                {"username": u.username, "role": u.role, "active": u.active, "created_at": u.created_at}
                for u in s.scalars(select(ReviewUser).order_by(ReviewUser.username))
            ]

    def health(self, now: float | None = None) -> dict[str, Any]:
        """Age of the oldest pending item and decisions per curator per day (the admin page)."""
        now = now or time.time()
        with Session(self.engine) as s:
            oldest = s.scalar(select(func.min(ReviewItem.enqueued_at)).where(ReviewItem.status == "pending"))
            rows = s.execute(select(ReviewDecision.username, ReviewDecision.decided_at)).all()
        per_day: dict[tuple[str, str], int] = {}
        for user, ts in rows:
            day = time.strftime("%Y-%m-%d", time.gmtime(ts))
            per_day[(user, day)] = per_day.get((user, day), 0) + 1
        return {
            "pending": self.count("pending"),
            "oldest_pending_age_seconds": (now - oldest) if oldest else 0.0,
            "decisions_per_curator_per_day": [
                {"curator": u, "day": d, "decisions": n} for (u, d), n in sorted(per_day.items(), reverse=True)
            ],
        }

    def pending_summary(self) -> Sequence[tuple[str, str, float]]:
        """(collection, reasons joined by ',', enqueued_at) for every pending item — for the metrics."""
        q = select(ReviewItem.collection, ReviewItem.reasons_json, ReviewItem.enqueued_at).where(
            ReviewItem.status == "pending"
        )
        with Session(self.engine) as s:
            return [(c, ",".join(json.loads(r or "[]")), float(t)) for c, r, t in s.execute(q)]

    def count(self, status: str | None = "pending") -> int:
        q = select(func.count()).select_from(ReviewItem)
        if status:
            q = q.where(ReviewItem.status == status)
        with Session(self.engine) as s:
            return int(s.scalar(q) or 0)
