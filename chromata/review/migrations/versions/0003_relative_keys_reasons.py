"""Outputs that can move, and indexed statistics.

Items get ``output_key``, ``heatmap_uri`` and ``heatmap_key`` (the keys relative to the destination;
null on items queued before, which the app resolves through the manifest). Confidence reasons get a table
of their own (filled from each item's ``reasons_json``), so that reason filters and facets are indexed
lookups; indexes for the statistics (oldest pending, decisions per curator per day) and the lookups by
collection, run and source.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.add_column(sa.Column("output_key", sa.Text, nullable=True))
        batch.add_column(sa.Column("heatmap_uri", sa.Text, nullable=True))
        batch.add_column(sa.Column("heatmap_key", sa.Text, nullable=True))
    op.create_index("ix_review_status_enqueued", "review_items", ["status", "enqueued_at"])
    op.create_index("ix_review_items_collection", "review_items", ["collection"])
    op.create_index("ix_review_items_run_id", "review_items", ["run_id"])
    op.create_index("ix_review_items_source_uri", "review_items", ["source_uri"])
    op.create_index("ix_review_decisions_user_time", "review_decisions", ["username", "decided_at"])
    reasons = op.create_table(
        "review_item_reasons",
        sa.Column("item_id", sa.Integer, sa.ForeignKey("review_items.id"), primary_key=True),
        sa.Column("reason", sa.String(255), primary_key=True),
    )
    op.create_index("ix_review_item_reasons_reason", "review_item_reasons", ["reason"])
    items = sa.table("review_items", sa.column("id", sa.Integer), sa.column("reasons_json", sa.Text))
    rows = [
        {"item_id": item_id, "reason": reason}
        for item_id, js in op.get_bind().execute(sa.select(items.c.id, items.c.reasons_json))
        for reason in dict.fromkeys(json.loads(js or "[]"))
    ]
    if rows:
        op.bulk_insert(reasons, rows)


def downgrade() -> None:
    op.drop_table("review_item_reasons")
    op.drop_index("ix_review_decisions_user_time", "review_decisions")
    for name in ("source_uri", "run_id", "collection"):
        op.drop_index(f"ix_review_items_{name}", "review_items")
    op.drop_index("ix_review_status_enqueued", "review_items")
    with op.batch_alter_table("review_items") as batch:
        batch.drop_column("heatmap_key")
        batch.drop_column("heatmap_uri")
        batch.drop_column("output_key")
