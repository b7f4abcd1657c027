"""Claims: a curator holds an item under a lease that expires, so that two curators never review the
same image and an abandoned claim frees itself."""

from __future__ import annotations

import time

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from chromata.review.schema import Filters, QueueEntry, ReviewItem, entry, where


def _free_for(username: str, now: float) -> ColumnElement[bool]:
    return or_(ReviewItem.claimed_by.is_(None), ReviewItem.claim_expires_at < now, ReviewItem.claimed_by == username)


class Claims:
    engine: Engine

    def claim_next(
        self, username: str, lease_seconds: float = 900.0, filters: Filters | None = None
    ) -> QueueEntry | None:
        """Atomically claim the least confident pending item that nobody holds (or whose lease expired).

        PostgreSQL: ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED LIMIT 1)``, so concurrent
        claimers skip each other's rows instead of waiting or colliding. SQLite: the same statement in a
        ``BEGIN IMMEDIATE`` transaction, which serialises writers."""
        f = Filters(**{**(filters or Filters()).__dict__, "status": "pending"})
        now = time.time()
        pick = (
            where(select(ReviewItem.id), f)
            .where(_free_for(username, now))
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
            item = s.get(ReviewItem, got) if got is not None else None
            return entry(item) if item is not None else None

    def claim(self, item_id: int, username: str, lease_seconds: float = 900.0) -> bool:
        """Claim (or renew) one item if it is pending and free, expired or already this curator's."""
        now = time.time()
        stmt = (
            update(ReviewItem)
            .where(ReviewItem.id == item_id, ReviewItem.status == "pending", _free_for(username, now))
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
