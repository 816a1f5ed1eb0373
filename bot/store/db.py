"""The engine, sessions and schema migrations (Alembic: run at start-up or by `escalation-bot db upgrade`)."""

from __future__ import annotations

import contextvars
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import InterfaceError, InternalError, OperationalError
from sqlmodel import Session

MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_DATABASE_URL = (
    "sqlite:///escalation-bot.db"  # when DATABASE_URL is unset: a file in the working directory
)


CONNECT_TIMEOUT_S = 5


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
    # a server that stops answering (a failover, a dropped route) fails a connection after 5 s, not after
    # the operating system's TCP timeout, so requests get their 503 and a stopping replica still exits
    # within its grace; a connect_timeout in DATABASE_URL wins
    if "connect_timeout=" not in url:
        kw.setdefault("connect_args", {"connect_timeout": CONNECT_TIMEOUT_S})
    # at most 10 connections a replica: a few replicas stay well inside PostgreSQL's default of 100
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, pool_timeout=10, **kw)


WRITER_WAIT_S = 30.0  # then SQLite's own busy handler takes over (and times out with "database is locked")
AGING_S = 0.5  # a writer that waited this long goes ahead of those the sender is waiting for
_FIRST_IN_LINE: contextvars.ContextVar[bool] = contextvars.ContextVar("first_in_line", default=False)


@contextmanager
def first_in_line() -> Iterator[None]:
    """Transactions begun inside take the SQLite write lock before background ones that are waiting too.

    For the writes someone waits on (storing a webhook delivery or a Slack request before it is answered):
    each is one short INSERT, while the background applies deliveries and Level 1 results in longer
    transactions that can wait a few milliseconds more. A background writer that waited AGING_S goes
    first after all, so a stream of urgent writes cannot hold it back for ever. No effect on PostgreSQL."""
    token = _FIRST_IN_LINE.set(True)
    try:
        yield
    finally:
        _FIRST_IN_LINE.reset(token)


@contextmanager
def one_write(engine: Engine) -> Iterator[Connection]:
    """A connection for one statement that a sender waits on, committed when the block ends, first in line
    for SQLite's write lock. On PostgreSQL the statement runs in autocommit: one round trip instead of
    three (BEGIN, the statement, COMMIT), as atomic as one statement always is. One statement only."""
    with first_in_line():
        if is_postgres(engine):
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                yield conn
        else:
            with engine.begin() as conn:
                yield conn


class _Turns:
    """One writer at a time. Among waiters, the urgent (`first_in_line`) go first, except that a writer
    which has waited AGING_S goes before them all."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = False
        self._urgent = 0  # urgent writers waiting
        self._aged = 0  # background writers waiting for AGING_S or longer
        self.waiting = 0  # writers waiting, of any kind

    def acquire(self, urgent: bool, timeout: float) -> bool:
        began = time.monotonic()
        aged = False
        with self._cond:
            self._urgent += urgent
            self.waiting += 1
            try:
                while True:
                    waited = time.monotonic() - began
                    if not urgent and not aged and waited >= AGING_S:
                        aged = True
                        self._aged += 1
                    ahead = 0 if aged else self._aged if urgent else self._urgent + self._aged
                    if not self._held and not ahead:
                        self._held = True
                        return True
                    if waited >= timeout:
                        return False
                    wake = timeout if urgent or aged else min(timeout, AGING_S)
                    self._cond.wait(wake - waited)  # woken by a release, or when it is old enough
            finally:
                self.waiting -= 1
                self._urgent -= urgent
                self._aged -= aged
                self._cond.notify_all()  # who may go has changed

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()


def _writer_lock_factory() -> type[sqlite3.Connection]:
    """A sqlite3 connection class whose transactions take turns on one lock per engine: held from BEGIN
    until COMMIT or ROLLBACK has finished. Other processes on the same file still meet SQLite's own lock."""
    lock = _Turns()

    class TurnTaking(sqlite3.Connection):
        turns = lock
        _holding = False

        def hold(self) -> None:
            if not self._holding:
                self._holding = lock.acquire(_FIRST_IN_LINE.get(), WRITER_WAIT_S)

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


# pg_advisory_xact_lock's key for schema migrations: replicas starting together upgrade one at a time
MIGRATION_LOCK = 0x6573_6362_6F74_0001


def unknown_revision(current: str) -> str:
    """What to say of a database at a revision this version does not ship."""
    return (
        f"the database schema is at revision {current}, which this version of escalation-bot does not ship "
        "(was it migrated by a newer version?)"
    )


class SchemaMismatch(Exception):
    """The schema is not at this version's newest revision, and start-up may not or cannot bring it there:
    behind with runtime.migrate_on_start false, or at a revision this version does not know."""

    def __init__(self, current: str | None, head: str) -> None:
        if current is not None and current not in shipped_revisions():
            message = unknown_revision(current)
        else:
            message = (
                f"the database schema is at revision {current or '(none)'}, this version needs {head}, and "
                "runtime.migrate_on_start is false: run `escalation-bot db upgrade` first"
            )
        super().__init__(message)
        self.current, self.head = current, head


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def shipped_revisions() -> list[str]:
    """Every migration this version of the bot ships, newest first."""
    return [script.revision for script in ScriptDirectory.from_config(_alembic_config()).walk_revisions()]


def head_revision() -> str:
    """The newest migration this version of the bot ships."""
    return shipped_revisions()[0]


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None when no migration has run on it."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent; safe on every start); SchemaMismatch when it is
    at a revision this version does not ship.

    On PostgreSQL a transaction-scoped advisory lock serialises replicas that start at once: the second
    waits for the first to commit, then finds the schema at head and does nothing."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        if is_postgres(engine):
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and current not in shipped_revisions():
            raise SchemaMismatch(current, head_revision())
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def require_head(engine: Engine) -> None:
    """Raise SchemaMismatch unless the schema is at the newest revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaMismatch(current, head)


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
