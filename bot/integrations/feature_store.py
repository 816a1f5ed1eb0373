"""The feature store adapter: freshness and column types of the configured SQL tables, through SQLAlchemy.

Freshness follows dbt's source-freshness model: `select max(<timestamp>), count(*) from <table>
[where <filter>]`. Every failure becomes IntegrationError("feature store", …) with the URL redacted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Engine, create_engine, inspect, text, types
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchTableError, SQLAlchemyError

from bot.config import FreshnessTable
from bot.core.errors import IntegrationError
from bot.core.redact import redact

SYSTEM = "feature store"
CONNECT_TIMEOUT_S = 5
_T = TypeVar("_T")

# Checked in order: Boolean before Integer (some dialects derive one from the other).
_FAMILIES: tuple[tuple[type[types.TypeEngine[Any]], str], ...] = (
    (types.Boolean, "boolean"),
    (types.Integer, "integer"),
    (types.Float, "float"),
    (types.Numeric, "float"),
    (types.DateTime, "timestamp"),
    (types.Date, "timestamp"),
    (types.String, "string"),
    (types.Enum, "string"),
    (types.Uuid, "string"),
)


class Freshness(NamedTuple):
    """What the freshness query returned: the newest timestamp (aware UTC), the row count, the SQL."""

    max_loaded_at: datetime | None
    row_count: int
    query: str


def freshness_query(table: FreshnessTable) -> str:
    """The exact SQL the freshness check runs for `table`."""
    sql = f"select max({table.timestamp_column}), count(*) from {table.table}"
    return f"{sql} where {table.filter}" if table.filter else sql


def columns_call(table: FreshnessTable) -> str:
    """How the column listing is read, as reported in evidence."""
    schema, _, name = table.table.rpartition(".")
    return f"inspect(engine).get_columns({name!r}, schema={schema or None!r})"


def to_utc(value: Any) -> datetime | None:
    """A driver's timestamp as an aware UTC datetime; naive values are UTC, SQLite's strings are parsed."""
    if value is None:
        return None
    if isinstance(value, str):
        value = _parse_text(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        value = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    if not isinstance(value, datetime):
        raise ValueError(f"not a timestamp: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse_text(raw: str) -> datetime:
    stamp = raw.strip().replace("Z", "+00:00")
    head, dot, rest = stamp.partition(".")
    if dot:
        # fromisoformat takes at most 6 fraction digits; some writers store 9.
        digits = len(rest) - len(rest.lstrip("0123456789"))
        stamp = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    return datetime.fromisoformat(stamp)


def type_family(sql_type: Any) -> str:
    """integer / float / string / timestamp / boolean for a reflected column type, else its SQL name."""
    for base, family in _FAMILIES:
        if isinstance(sql_type, base):
            return family
    return str(sql_type).lower()


def _engine_url(url: str) -> str:
    # psycopg (3) is the PostgreSQL driver the bot ships with; SQLAlchemy's bare default is psycopg2.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _connect_args(url: str) -> dict[str, Any]:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return {"timeout": CONNECT_TIMEOUT_S, "check_same_thread": False}
    if backend in ("postgresql", "mysql", "mariadb"):
        return {"connect_timeout": CONNECT_TIMEOUT_S}
    return {}


class FeatureStoreGateway:
    """Runs freshness and column queries; one lazily created engine per distinct database URL."""

    def __init__(self, tables: list[FreshnessTable], resolve_url: Callable[[str], str] | None = None) -> None:
        self.tables = list(tables)
        self._resolve = resolve_url or (lambda url: url)
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        """Which tables on which databases, with credentials redacted."""
        if not self.tables:
            return "feature store: no tables configured"
        where = ", ".join(f"{t.name} ({t.table} on {self.safe_url(t)})" for t in self.tables)
        return f"feature store tables {where}"

    def safe_url(self, table: FreshnessTable) -> str:
        """The table's database URL with any credentials redacted."""
        return redact(self._resolve(table.url))

    def freshness(self, table: FreshnessTable) -> Freshness:
        """Run the freshness query: the newest `timestamp_column` value and the row count."""
        query = freshness_query(table)

        def run() -> Freshness:
            with self._engine(table).connect() as conn:
                row = conn.execute(text(query)).one()
            try:
                loaded = to_utc(row[0])
            except ValueError as exc:
                raise IntegrationError(
                    SYSTEM, f"max({table.timestamp_column}) of {table.table} is not a timestamp: {exc}"
                ) from exc
            return Freshness(loaded, int(row[1] or 0), query)

        return self._run(table, f"freshness query on {table.table}", run)

    def columns(self, table: FreshnessTable) -> dict[str, str]:
        """The table's columns and their type family (integer, float, string, timestamp, boolean)."""
        schema, _, name = table.table.rpartition(".")

        def run() -> dict[str, str]:
            try:
                reflected = inspect(self._engine(table)).get_columns(name, schema=schema or None)
            except NoSuchTableError:
                reflected = []
            if not reflected:
                raise IntegrationError(SYSTEM, f"table {table.table} does not exist")
            return {str(c["name"]): type_family(c["type"]) for c in reflected}

        return self._run(table, f"reading the columns of {table.table}", run)

    def close(self) -> None:
        """Dispose of every engine's connection pool."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.dispose()

    def _engine(self, table: FreshnessTable) -> Engine:
        url = _engine_url(self._resolve(table.url))
        with self._lock:
            engine = self._engines.get(url)
            if engine is None:
                try:
                    engine = create_engine(url, pool_pre_ping=True, connect_args=_connect_args(url))
                except (ArgumentError, ImportError, ValueError) as exc:
                    problem = f"cannot use database URL {url}: {type(exc).__name__}: {exc}"
                    raise IntegrationError(SYSTEM, redact(problem)) from exc
                self._engines[url] = engine
            return engine

    def _run(self, table: FreshnessTable, what: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            lines = str(cause).strip().splitlines()
            detail = lines[0] if lines else type(cause).__name__
            where = f"{what} ({self.safe_url(table)})"
            raise IntegrationError(SYSTEM, redact(f"{where}: {type(cause).__name__}: {detail}")) from exc
