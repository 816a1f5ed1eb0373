"""The engine, sessions and schema migrations (Alembic, run at start-up)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import InterfaceError, InternalError, OperationalError
from sqlmodel import Session

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, **kw: Any) -> Engine:
    """An engine tuned for the bot: SQLite in WAL mode with immediate write transactions, or PostgreSQL."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        writer = _writer_lock_factory()
        connect_args = {"check_same_thread": False, "timeout": 30, "factory": writer}
        engine = create_engine(url, connect_args=connect_args, **kw)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Take the write lock up front: a read that later upgrades to a write can fail without waiting.
            # This process's threads queue on a lock first, woken the moment it is free, instead of on
            # SQLite's busy handler, which sleeps up to 100 ms between tries.
            conn.connection.dbapi_connection.hold()
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # at most 10 connections a replica: a few replicas stay well inside PostgreSQL's default of 100
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, pool_timeout=10, **kw)


WRITER_WAIT_S = 30.0  # then SQLite's own busy handler takes over (and times out with "database is locked")


def _writer_lock_factory() -> type[sqlite3.Connection]:
    """A sqlite3 connection class whose transactions take turns on one lock per engine: held from BEGIN
    until COMMIT or ROLLBACK has finished. Other processes on the same file still meet SQLite's own lock."""
    lock = threading.Lock()

    class TurnTaking(sqlite3.Connection):
        _holding = False

        def hold(self) -> None:
            if not self._holding:
                self._holding = lock.acquire(timeout=WRITER_WAIT_S)

        def _then_let_go(self, end: Callable[[], None]) -> None:
            try:
                end()
            finally:
                if self._holding:
                    self._holding = False
                    lock.release()

        def commit(self) -> None:
            self._then_let_go(super().commit)

        def rollback(self) -> None:
            self._then_let_go(super().rollback)

        def close(self) -> None:
            self._then_let_go(super().close)

    return TurnTaking


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent; safe on every start)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed on success, rolled back on any exception."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def unavailable(exc: BaseException) -> bool:
    """The database cannot take the request now (down, unreachable, read-only): try again later.

    Not for errors in the data itself (a constraint or a value the database refuses)."""
    return isinstance(exc, OperationalError | InterfaceError | InternalError)
