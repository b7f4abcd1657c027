"""Alembic migrations of the review database (run automatically when a ReviewQueue opens it)."""
