"""How each decision was made: ``review_decisions.mode``.

``item``: the curator decided the item on its own (its page, or alone through the API); ``bulk``: one of many
cards approved or rejected at once from the queue grid. Decisions logged before this revision keep a null
mode (not recorded), which the export carries as it is.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_decisions") as batch:
        batch.add_column(sa.Column("mode", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_decisions") as batch:
        batch.drop_column("mode")
