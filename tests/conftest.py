"""Shared fixtures: a sandbox world on SQLite (and on PostgreSQL when TEST_DATABASE_URL is set)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bot.core.clock import FakeClock
from bot.sandbox.world import SandboxWorld
from tests.mlflow_server import mlflow_server  # noqa: F401  (a session fixture for every test module)


@pytest.fixture(autouse=True)
def _no_outside_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Nothing from the developer's environment leaks into a test."""
    for key in list(os.environ):
        if key.startswith(
            (
                "SLACK_",
                "ANTHROPIC_",
                "MLFLOW_",
                "KUBECONFIG",
                "KUBERNETES_SERVICE",
                "ALERT_WEBHOOK",
                "DATABASE_URL",
            )
        ):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    # MLflow's telemetry thread reads and writes its own variables while tests change the environment
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


def postgres_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL") or None


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema on the PostgreSQL server named by TEST_DATABASE_URL, dropped afterwards."""
    base = postgres_url()
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests run in CI (.ci/run sets it)")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def world() -> Iterator[SandboxWorld]:
    with SandboxWorld() as w:
        yield w


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def timed_world(clock: FakeClock) -> Iterator[SandboxWorld]:
    """A world whose bot runs on a fake clock, so deadlines can be crossed at once."""
    with SandboxWorld(clock=clock) as w:
        yield w
