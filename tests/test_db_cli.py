"""`escalation-bot db upgrade|current` as an operator runs them, start-up with and without migrations, and
replicas that migrate a fresh PostgreSQL schema at the same moment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from bot.store.db import (
    MIGRATIONS,
    SchemaMismatch,
    current_revision,
    head_revision,
    make_engine,
    migrate,
    require_head,
    shipped_revisions,
)
from tests.test_cli import ROOT, cli

NONE = "(none: no migration has run)"


def db(*args: str, url: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return cli("db", *args, env={"DATABASE_URL": url} if url else None, cwd=cwd)


def migrate_to(url: str, revision: str) -> None:
    """Apply the migrations up to `revision` only: a database an older version of the bot left."""
    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def test_upgrade_brings_the_default_sqlite_database_to_head_and_says_from_what_to_what(
    tmp_path: Path,
) -> None:
    head = head_revision()
    first = db("upgrade", cwd=tmp_path)  # no DATABASE_URL: escalation-bot.db in the working directory
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"sqlite:///escalation-bot.db: upgraded from {NONE} to {head}\n"
    assert (tmp_path / "escalation-bot.db").exists()
    again = db("upgrade", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"sqlite:///escalation-bot.db: already at the newest revision, {head}\n"
    current = db("current", cwd=tmp_path)
    assert current.returncode == 0, current.stderr
    assert current.stdout == (
        f"database: sqlite:///escalation-bot.db\ncurrent:  {head}\nhead:     {head}\nup to date\n"
    )


def test_a_database_an_older_version_left_is_behind_until_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    head, previous = shipped_revisions()[:2]
    migrate_to(url, previous)
    behind = db("current", url=url)
    assert behind.returncode == 1, behind.stderr
    assert (
        f"current:  {previous}\nhead:     {head}\nbehind: run `escalation-bot db upgrade`\n" in behind.stdout
    )
    upgraded = db("upgrade", url=url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout == f"{url}: upgraded from {previous} to {head}\n"
    assert db("current", url=url).returncode == 0


def test_current_on_a_sqlite_file_that_does_not_exist_says_behind_and_creates_nothing(tmp_path: Path) -> None:
    result = db("current", url=f"sqlite:///{tmp_path / 'missing.db'}")
    assert result.returncode == 1
    assert f"current:  {NONE}" in result.stdout and "behind" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_database_exits_2_naming_the_redacted_url_and_the_cause() -> None:
    url = "postgresql://bob:hunter2pass@127.0.0.1:1/bot"  # port 1: nothing listens
    for action in ("upgrade", "current"):
        result = db(action, url=url)
        assert result.returncode == 2, (action, result.stdout, result.stderr)
        redacted = "postgresql://bob:[REDACTED]@127.0.0.1:1/bot"
        assert result.stderr.startswith(
            f"escalation-bot: cannot use the database at DATABASE_URL={redacted}: "
        )
        assert "port 1 failed" in result.stderr  # the driver's own words
        assert "hunter2pass" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    other = db("current", url="mysql://bob@127.0.0.1/bot")
    assert other.returncode == 2 and "DATABASE_URL: must start with 'sqlite' or 'postgresql'" in other.stderr


@pytest.mark.parametrize(
    "url", ["postgresql://bob:hunter2pass@db:notaport/bot", "postgresql://bob:hunter2pass@[::1/bot"]
)
def test_a_database_url_that_cannot_be_read_is_named_by_db_and_run_without_a_traceback(
    url: str, tmp_path: Path
) -> None:
    results = [db(action, url=url) for action in ("upgrade", "current")]
    results.append(run_with(tmp_path, url, migrate_on_start=True))
    for result in results:
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert "DATABASE_URL: cannot be read as a URL (the port must be a number" in result.stderr
        assert "Traceback" not in result.stderr and "hunter2pass" not in result.stdout + result.stderr


def run_with(tmp_path: Path, url: str, *, migrate_on_start: bool) -> subprocess.CompletedProcess[str]:
    """`escalation-bot run` on the repository's app.yaml with runtime.migrate_on_start set, until it stops."""
    config = yaml.safe_load((ROOT / "app.yaml").read_text(encoding="utf-8"))
    config["runtime"]["migrate_on_start"] = migrate_on_start
    (tmp_path / "app.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {"SLACK_BOT_TOKEN": "xoxb-1-refuse", "SLACK_SIGNING_SECRET": "s", "DATABASE_URL": url}
    return cli("run", "--config", str(tmp_path / "app.yaml"), env=env, cwd=tmp_path)


def test_a_database_a_newer_version_migrated_is_named_and_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    engine = make_engine(url)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    for action in ("current", "upgrade"):
        result = db(action, url=url)
        assert result.returncode == 1, result.stderr
        said = result.stdout + result.stderr
        assert "revision 9999, which this version of escalation-bot does not ship" in said
        assert "Traceback" not in said
    for migrate_on_start in (True, False):
        started = run_with(tmp_path, url, migrate_on_start=migrate_on_start)
        assert started.returncode == 2
        assert "revision 9999, which this version of escalation-bot does not ship" in started.stderr
        assert "db upgrade" not in started.stderr and "Traceback" not in started.stderr
    engine = make_engine(url)
    try:
        assert current_revision(engine) == "9999"
    finally:
        engine.dispose()


def test_db_without_an_action_prints_its_usage() -> None:
    result = db()
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("usage: escalation-bot db [-h] {upgrade,current}")
    assert "apply every migration not yet applied" in result.stderr


def test_run_refuses_a_schema_behind_when_start_up_is_told_not_to_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    migrate_to(url, shipped_revisions()[1])
    result = run_with(tmp_path, url, migrate_on_start=False)
    assert result.returncode == 2
    assert "runtime.migrate_on_start is false: run `escalation-bot db upgrade` first" in result.stderr
    assert "Traceback" not in result.stderr
    engine = make_engine(url)
    try:
        assert current_revision(engine) == shipped_revisions()[1]  # left as it was
        with pytest.raises(SchemaMismatch):
            require_head(engine)
        migrate(engine)
        require_head(engine)  # at head: start-up goes on without migrating
    finally:
        engine.dispose()


# One replica starting up: connected, it waits for the word, then migrates as Bot.__init__ does.
REPLICA = """
import sys
from bot.store.db import make_engine, migrate
engine = make_engine(sys.argv[1])
engine.connect().close()
print("ready", flush=True)
sys.stdin.readline()
migrate(engine)
print("at head", flush=True)
"""


@pytest.mark.postgres
def test_replicas_migrating_a_fresh_postgres_schema_at_once_all_succeed_and_leave_it_at_head(
    pg_url: str,
) -> None:
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, pg_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(4)
    ]
    try:
        for replica in replicas:  # every one has started and reached the database
            assert replica.stdout is not None and replica.stdout.readline() == "ready\n"
        for replica in replicas:  # then all are told to go in the same instant
            assert replica.stdin is not None
            replica.stdin.write("go\n")
            replica.stdin.flush()
        results = [replica.communicate(timeout=120) for replica in replicas]
    finally:
        for replica in replicas:
            replica.kill()
    assert [replica.returncode for replica in replicas] == [0] * 4, [err for _, err in results]
    assert [out for out, _ in results] == ["at head\n"] * 4
    engine = make_engine(pg_url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        assert set(SQLModel.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
