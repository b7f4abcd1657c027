"""Alembic environment: always driven programmatically by chromata.review.store.migrate."""

from __future__ import annotations

from alembic import context

from chromata.review.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
