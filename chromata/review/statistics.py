"""What the queue page, the admin page and the metrics show about the queue, each one SQL aggregate
(GROUP BY / COUNT / MIN in the database): none of them reads every item or every decision."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from chromata.review.schema import Filters, ReviewDecision, ReviewItem, ReviewItemReason, where

DAY = 86400
HEALTH_DAYS = 90  # the admin page's decisions-per-curator-per-day table covers this many days


def _distinct(column: Any) -> Any:
    """The distinct values of an indexed column, ascending, as a loose index scan (a recursive CTE that
    seeks the next larger value): one index lookup per distinct value instead of reading every row."""
    values = select(func.min(column).label("v")).cte(f"distinct_{column.name}", recursive=True)
    following = select(select(func.min(column)).where(column > values.c.v).scalar_subquery())
    values = values.union_all(following.where(values.c.v.is_not(None)))
    return select(values.c.v).where(values.c.v.is_not(None)).order_by(values.c.v)


class PendingStats(NamedTuple):
    """Pending items per (collection, reason) — an item with no reason counts under "none" — and the
    enqueue time of the oldest pending item per collection (``METRICS.observe_review_counts(*stats, names)``)."""

    counts: dict[tuple[str, str], int]
    oldest: dict[str, float]


class Statistics:
    engine: Engine

    def _day(self, column: Any) -> Any:
        """Whole UTC days since the epoch, in SQL (SQLite's CAST truncates, which is floor for these)."""
        if self.engine.dialect.name == "postgresql":
            return cast(func.floor(column / DAY), Integer)
        return cast(column / DAY, Integer)

    def count(self, status: str | None = "pending") -> int:
        q = select(func.count()).select_from(ReviewItem)
        if status:
            q = q.where(ReviewItem.status == status)
        with Session(self.engine) as s:
            return int(s.scalar(q) or 0)

    def counts(self, filters: Filters) -> dict[str, int]:
        """Items per status under the other filters."""
        base = Filters(**{**filters.__dict__, "status": None})
        q = where(select(ReviewItem.status, func.count()), base).group_by(ReviewItem.status)
        with Session(self.engine) as s:
            return {status: int(n) for status, n in s.execute(q)}

    def facets(self) -> dict[str, list[str]]:
        """Values the queue page offers as filters (loose index scans of indexed columns)."""
        with Session(self.engine) as s:
            collections = [c for c in s.scalars(_distinct(ReviewItem.collection)) if c]
            runs = [r for r in s.scalars(_distinct(ReviewItem.run_id)) if r]
            reasons = list(s.scalars(_distinct(ReviewItemReason.reason)))
            statuses = list(s.scalars(_distinct(ReviewItem.status)))
        return {"collections": collections, "runs": runs, "reasons": reasons, "statuses": statuses}

    def health(self, now: float | None = None) -> dict[str, Any]:
        """The admin page (and ``/api/health``): pending items, the age of the oldest, and decisions per curator
        per UTC day over the last ``HEALTH_DAYS`` days (newest day first; ``days`` says how many). Older
        decisions stay in the log and its export; only this table leaves them out."""
        now = now or time.time()
        day = self._day(ReviewDecision.decided_at)
        per_day = (
            select(ReviewDecision.username, day, func.count())
            .where(ReviewDecision.decided_at >= now - HEALTH_DAYS * DAY)
            .group_by(ReviewDecision.username, day)
            .order_by(day.desc(), ReviewDecision.username)
        )
        pending = select(func.count(), func.min(ReviewItem.enqueued_at)).where(ReviewItem.status == "pending")
        with Session(self.engine) as s:
            n, oldest = s.execute(pending).one()
            rows = s.execute(per_day).all()
        return {
            "pending": int(n),
            "oldest_pending_age_seconds": (now - oldest) if oldest else 0.0,
            "days": HEALTH_DAYS,
            "decisions_per_curator_per_day": [
                {"curator": u, "day": time.strftime("%Y-%m-%d", time.gmtime(int(d) * DAY)), "decisions": int(k)}
                for u, d, k in rows
            ],
        }

    def pending_stats(self) -> PendingStats:
        """Pending items per (collection, reason) and the oldest per collection: two GROUP BYs."""
        reason = func.coalesce(ReviewItemReason.reason, "none")
        by_reason = (
            select(ReviewItem.collection, reason, func.count())
            .outerjoin(ReviewItemReason, ReviewItemReason.item_id == ReviewItem.id)
            .where(ReviewItem.status == "pending")
            .group_by(ReviewItem.collection, reason)
        )
        oldest = (
            select(ReviewItem.collection, func.min(ReviewItem.enqueued_at))
            .where(ReviewItem.status == "pending")
            .group_by(ReviewItem.collection)
        )
        with Session(self.engine) as s:
            counts = {(c, r): int(n) for c, r, n in s.execute(by_reason)}
            first = {c: float(t) for c, t in s.execute(oldest)}
        return PendingStats(counts, first)

    def pending_summary(self) -> Sequence[tuple[str, str, float]]:
        """(collection, reasons joined by ',', enqueued_at) per pending item. Reads every pending item:
        kept for callers of the per-item form; the metrics use :meth:`pending_stats`."""
        q = select(ReviewItem.collection, ReviewItem.reasons_json, ReviewItem.enqueued_at).where(
            ReviewItem.status == "pending"
        )
        with Session(self.engine) as s:
            return [(c, ",".join(json.loads(r or "[]")), float(t)) for c, r, t in s.execute(q)]
