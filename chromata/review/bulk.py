"""Bulk decisions: many items approved or rejected at once, each still claimed and decided one by one through
the queue's own API, so that every decision is its own row in the append-only log with the curator's name,
logged with mode ``bulk`` (the card decided from the grid, not reviewed on its own page).

An item someone else holds (an unexpired claim) is skipped, never taken over; so is one that is no longer
pending (decided meanwhile, or gone). No web framework imports here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from chromata.review.schema import ClaimError, QueueEntry

BULK_DECISIONS = ("approve", "reject")  # a re-colour needs a note per item: one at a time
BULK_MAX = 500


class _Queue(Protocol):
    def get(self, item_id: int) -> QueueEntry | None: ...
    def claim(self, item_id: int, username: str, lease_seconds: float = 900.0) -> bool: ...
    def decide(
        self, item_id: int, username: str, decision: str, note: str = "", admin: bool = False, mode: str = "item"
    ) -> None: ...


@dataclass
class BulkOutcome:
    decision: str
    decided: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)  # claimed by another curator
    gone: list[int] = field(default_factory=list)  # no longer pending, or no such item

    def summary(self) -> str:
        return summary(self.decision, len(self.decided), len(self.held), len(self.gone))


def summary(decision: str, decided: int, held: int, gone: int) -> str:
    """'3 approved, 1 skipped: held by another curator' (what the page and the API say)."""
    past = {"approve": "approved", "reject": "rejected"}.get(decision, "decided")
    parts = [f"{decided} {past}"]
    if held:
        parts.append(f"{held} skipped: held by another curator")
    if gone:
        parts.append(f"{gone} skipped: already decided")
    return ", ".join(parts)


def decide_each(
    queue: _Queue, item_ids: Iterable[int], username: str, decision: str, lease_seconds: float, note: str = ""
) -> BulkOutcome:
    """Claim and decide each item in turn (in the order given, each id once); ValueError for a decision that
    cannot be made in bulk or too many items."""
    if decision not in BULK_DECISIONS:
        raise ValueError(f"bulk decisions are {' or '.join(BULK_DECISIONS)}, not {decision!r}")
    ids = list(dict.fromkeys(item_ids))
    if len(ids) > BULK_MAX:
        raise ValueError(f"at most {BULK_MAX} items at once")
    out = BulkOutcome(decision)
    for item_id in ids:
        if not queue.claim(item_id, username, lease_seconds):
            current = queue.get(item_id)
            (out.held if current is not None and current.status == "pending" else out.gone).append(item_id)
            continue
        try:
            queue.decide(item_id, username, decision, note, mode="bulk")
        except ClaimError:  # the lease ran out between the claim and the decision and someone took it
            out.held.append(item_id)
            continue
        out.decided.append(item_id)
    return out
