"""`escalation-bot db upgrade|current`: bring the database schema to this version's newest migration by
hand (when `runtime.migrate_on_start` is false, or from a deploy job), or say where it stands.

Exit status: 0 done or up to date, 1 behind (or at a revision this version does not know), 2 the database
cannot be reached."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from bot.config.env import database_url_problem
from bot.core.redact import redact
from bot.store.db import (
    SchemaMismatch,
    current_revision,
    make_engine,
    migrate,
    shipped_revisions,
    unknown_revision,
)

UNREACHABLE = 2
NONE = "(none: no migration has run)"
# a driver that is not installed (ImportError) leaves the database as unreachable as a refused connection
_CANNOT_CONNECT = (DBAPIError, ArgumentError, OSError, ImportError)


def _missing_sqlite_file(url: str) -> bool:
    """A SQLite URL whose file does not exist yet: looking at it would create it."""
    parsed = make_url(url)
    name = parsed.database or ""
    return parsed.get_backend_name() == "sqlite" and name not in ("", ":memory:") and not Path(name).exists()


def _unreachable(url: str, exc: BaseException, err: TextIO) -> int:
    from bot.doctor import cause

    err.write(f"escalation-bot: cannot use the database at DATABASE_URL={redact(url)}: {cause(exc)}\n")
    return UNREACHABLE


def _unsupported(url: str, err: TextIO) -> bool:
    problem = database_url_problem(url)
    if problem is None:
        return False
    err.write(f"escalation-bot: {problem}\n")
    return True


def db_upgrade(url: str, out: TextIO, err: TextIO) -> int:
    """Migrate to the newest revision; print the revision before and after."""
    if _unsupported(url, err):
        return UNREACHABLE
    engine: Engine | None = None
    try:
        engine = make_engine(url)
        before = current_revision(engine)
        migrate(engine)
        after = current_revision(engine)
    except SchemaMismatch as exc:
        err.write(f"escalation-bot: {exc}\n")
        return 1
    except _CANNOT_CONNECT as exc:
        return _unreachable(url, exc, err)
    finally:
        if engine is not None:
            engine.dispose()
    if before == after:
        out.write(f"{redact(url)}: already at the newest revision, {after}\n")
    else:
        out.write(f"{redact(url)}: upgraded from {before or NONE} to {after}\n")
    return 0


def db_current(url: str, out: TextIO, err: TextIO) -> int:
    """Print the database's revision, the newest one shipped, and whether the schema is up to date."""
    if _unsupported(url, err):
        return UNREACHABLE
    shipped = shipped_revisions()
    current: str | None = None
    if not _missing_sqlite_file(url):
        engine: Engine | None = None
        try:
            engine = make_engine(url)
            current = current_revision(engine)
        except _CANNOT_CONNECT as exc:
            return _unreachable(url, exc, err)
        finally:
            if engine is not None:
                engine.dispose()
    out.write(f"database: {redact(url)}\ncurrent:  {current or NONE}\nhead:     {shipped[0]}\n")
    if current == shipped[0]:
        out.write("up to date\n")
        return 0
    if current is None or current in shipped:
        out.write("behind: run `escalation-bot db upgrade`\n")
    else:
        out.write(f"{unknown_revision(current)}\n")
    return 1
