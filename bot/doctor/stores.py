"""`doctor`'s checks of where data lives: the bot's own database (reachable, schema at the newest
migration) and the feature store tables Level 1 reads (their `${VAR}`s set, each database reachable)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bot.config import AppConfig, Env, expand_env
from bot.core.errors import IntegrationError
from bot.core.redact import redact
from bot.doctor.report import Report, cause
from bot.integrations.feature_store import FeatureStoreGateway
from bot.store.db import DEFAULT_DATABASE_URL, current_revision, head_revision, make_engine, shipped_revisions

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
CONNECT_TIMEOUT_S = 5
_UPGRADE = "run `escalation-bot db upgrade` (runtime.migrate_on_start is false)"


def database_check(config: AppConfig, env: Env, report: Report) -> None:
    """DATABASE_URL (or the default SQLite file): can the bot connect, and is its schema at head?"""
    url = env.database_url_or_default(DEFAULT_DATABASE_URL)
    name = f"database {redact(url)}"
    on_start = config.runtime.migrate_on_start
    if _sqlite_file_missing(url):
        detail = "no database file yet"
        if on_start:
            report.add(name, True, f"{detail}: `run` creates it and applies the migrations")
        else:
            report.add(name, False, detail, _UPGRADE)
        return
    options: dict[str, Any] = {}
    if not url.startswith("sqlite"):
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    engine = make_engine(url, **options)
    try:
        current = current_revision(engine)
    except Exception as exc:  # any driver, any failure: say it in one line
        fix = "check DATABASE_URL (host, port, database, user, password) and that the server lets the bot in"
        report.add(name, False, f"cannot connect ({cause(exc)})", fix)
        return
    finally:
        engine.dispose()
    head = head_revision()
    if current == head:
        report.add(name, True, f"reachable, schema at {head} (the newest)")
    elif current is not None and current not in shipped_revisions():
        detail = f"schema at revision {current}, which this version of the bot does not know"
        report.add(name, False, detail, "run the bot version that wrote it (a newer one?)")
    elif on_start:
        report.add(name, True, f"reachable, schema at {current or '(none)'}: `run` upgrades it to {head}")
    else:
        report.add(name, False, f"schema at {current or '(none)'}, this version needs {head}", _UPGRADE)


def _sqlite_file_missing(url: str) -> bool:
    if not url.startswith("sqlite"):
        return False
    parsed = make_url(url)
    path = parsed.database or ""
    uri = parsed.query.get("uri") == "true" or path.startswith("file:")
    return bool(path) and path != ":memory:" and not uri and not Path(path).exists()


def feature_store_checks(config: AppConfig, report: Report) -> None:
    """Each table: every `${VAR}` in its URL set, then its columns read (the database answers)."""
    tables = config.feature_store.tables
    if not tables:
        return
    gateway = FeatureStoreGateway(tables, expand_env)
    try:
        for table in tables:
            name = f"feature store table {table.name}"
            unset = [var for var in _VARIABLE.findall(table.url) if not expand_env(f"${{{var}}}")]
            if unset:
                listed = ", ".join(f"${{{var}}}" for var in unset)
                fix = f"set {', '.join(unset)} in the bot's environment (a Secret in Kubernetes)"
                report.add(name, False, f"its url uses {listed}, which is not set", fix)
                continue
            try:
                columns = gateway.columns(table)
            except IntegrationError as exc:
                fix = "check feature_store.tables[].url and that the database lets the bot in"
                report.add(name, False, str(exc), fix)
                continue
            report.add(name, True, f"{table.table} on {gateway.safe_url(table)}: {len(columns)} columns")
    finally:
        gateway.close()
