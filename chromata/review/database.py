"""Opening the review database: the engine (SQLite by default, PostgreSQL in production) and its schema,
brought to the newest Alembic revision when a queue is opened."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from chromata.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")


def open_engine(url: str) -> Engine:
    """An engine on ``url`` with the schema migrated; a bad URL or missing driver is a ConfigError."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except Exception as exc:  # bad URL or missing driver: one clear message
        raise ConfigError(f"cannot open review database {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        _serialise_sqlite_writers(engine)
    migrate(engine)
    return engine


def _alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@functools.cache
def _head() -> str | None:
    """The newest revision, read from the migration scripts once per process (every shard commit opens
    the queue; the scripts do not change while it runs)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (a no-op when it is current)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    cfg = _alembic_config()
    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == _head():
            return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # one migrator at a time across processes
            conn.execute(text("SELECT pg_advisory_xact_lock(72657669657701)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def upsert_for(engine: Engine) -> Any:
    """The dialect's ``insert`` (with ``on_conflict_do_nothing``)."""
    return pg_insert if engine.dialect.name == "postgresql" else sqlite_insert


def _serialise_sqlite_writers(engine: Engine) -> None:
    """SQLite: every transaction starts with BEGIN IMMEDIATE, taking the write lock up front, so a
    claim's read-then-update cannot interleave with another's (SQLite's equivalent of SKIP LOCKED)."""

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA busy_timeout = 30000")
        dbapi_conn.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
