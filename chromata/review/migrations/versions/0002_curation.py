"""Curation: user accounts, claims with leases, and the append-only decision log.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("claim_expires_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("decided_at", sa.Float, nullable=True))
    op.create_table(
        "review_users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("review_items.id"), nullable=False, index=True),
        sa.Column("image_id", sa.String(64), nullable=False, index=True),
        sa.Column("username", sa.String(64), sa.ForeignKey("review_users.username"), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("decided_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("review_decisions")
    op.drop_table("review_users")
    with op.batch_alter_table("review_items") as batch:
        batch.drop_column("decided_at")
        batch.drop_column("claim_expires_at")
        batch.drop_column("claimed_by")
