"""The review queue table (as created by chromata before migrations existed).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("review_items"):
        return  # a queue created by an earlier chromata: adopt it as is
    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_key", sa.String(64), nullable=False, unique=True),
        sa.Column("image_id", sa.String(64), nullable=False, index=True),
        sa.Column("collection", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("shard_id", sa.String(64), nullable=False),
        sa.Column("source_uri", sa.Text, nullable=False),
        sa.Column("output_uri", sa.Text, nullable=False),
        sa.Column("output_sha256", sa.String(64), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("reasons_json", sa.Text, nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("enqueued_at", sa.Float, nullable=False),
    )
    op.create_index("ix_review_status_confidence", "review_items", ["status", "confidence"])


def downgrade() -> None:
    op.drop_table("review_items")
