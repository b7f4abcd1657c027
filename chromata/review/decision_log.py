"""Curators' decisions: each one appended to the log (never updated or deleted) and the item's status set,
in one transaction, only while the curator holds the item's claim."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from chromata.review.schema import DECISIONS, MODES, ClaimError, ReviewDecision, ReviewItem

NOTE_MAX = 4000


class DecisionLog:
    engine: Engine

    def decide(
        self, item_id: int, username: str, decision: str, note: str = "", admin: bool = False, mode: str = "item"
    ) -> None:
        """Record a decision (append-only) and set the item's status; the curator must hold the claim
        (an admin may decide any pending item). Raises :class:`ClaimError` otherwise. ``mode`` says how it
        was made: ``item`` (reviewed on its own) or ``bulk`` (with other cards from the grid)."""
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}: use {', '.join(DECISIONS)}")
        if mode not in MODES:
            raise ValueError(f"unknown decision mode {mode!r}: use {', '.join(MODES)}")
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
                    note=note.strip()[:NOTE_MAX],
                    decided_at=now,
                    mode=mode,
                )
            )

    def decisions(self) -> list[dict[str, Any]]:
        """The whole audit log, oldest first, with the item's identifiers (``mode`` None: logged before it
        was recorded)."""
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
                    "mode": d.mode,
                }
                for d, i in s.execute(q)
            ]
