"""The review queue (SQLAlchemy 2.0): the same code on SQLite (default) and PostgreSQL.

``ReviewQueue`` is the one object the pipeline, the CLI and the web app open; its parts live in their
own modules: the tables (``schema``), the engine and migrations (``database``), items (``items``), claims
with expiring leases (``claims``), the append-only decision log (``decision_log``), accounts and the
password policy (``accounts``) and the statistics, all SQL aggregates (``statistics``). Every query is
built with SQLAlchemy expressions — no SQL is assembled from strings — and nothing here imports a web
framework.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from chromata.review.accounts import USERNAME_MAX, Accounts
from chromata.review.claims import Claims
from chromata.review.database import migrate, open_engine
from chromata.review.decision_log import DecisionLog
from chromata.review.items import QueueItems, item_key
from chromata.review.schema import (
    DECISIONS,
    RERUN_STATUSES,
    ROLES,
    Base,
    ClaimError,
    Filters,
    QueueEntry,
    ReviewDecision,
    ReviewItem,
    ReviewItemReason,
    ReviewUser,
)
from chromata.review.statistics import PendingStats, Statistics

__all__ = [
    "DECISIONS",
    "RERUN_STATUSES",
    "ROLES",
    "USERNAME_MAX",
    "Base",
    "ClaimError",
    "Filters",
    "PendingStats",
    "QueueEntry",
    "ReviewDecision",
    "ReviewItem",
    "ReviewItemReason",
    "ReviewQueue",
    "ReviewUser",
    "item_key",
    "migrate",
]


class ReviewQueue(QueueItems, Claims, DecisionLog, Accounts, Statistics):
    """The review database at ``url``, its schema migrated on opening."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = open_engine(url)

    def close(self) -> None:
        self.engine.dispose()
