"""What an operator meets when the database or Slack is not there: a read-only database gets 503s with
Retry-After, not-ready and "try again" for the people clicking; `run` and `doctor` say in one line what
failed and how to fix it, and exit non-zero, never with a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.models import ActionId
from bot.sandbox.world import COORDINATOR, PIPELINE_ALERT, SandboxWorld, alertmanager_payload, http
from bot.store.db import make_engine, migrate
from tests.test_bad_input import open_l2

ROOT = Path(__file__).resolve().parent.parent
COORD = "#data-coordinator"


@pytest.fixture(params=["sqlite", "postgresql"])
def read_only_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SandboxWorld]:
    """A bot whose database went read-only after INC-1 reached Level 2."""
    if request.param == "sqlite":
        path = tmp_path / "bot.db"
        writable, read_only = f"sqlite:///{path}", f"sqlite:///file:{path}?mode=ro&uri=true"
    else:
        writable = request.getfixturevalue("pg_url")
        read_only = writable + "%20-cdefault_transaction_read_only%3Don"
    with SandboxWorld(database_url=writable) as before:
        open_l2(before)
    with SandboxWorld(database_url=read_only) as world:
        yield world


def test_with_a_read_only_database_webhooks_get_503_readyz_is_not_ready_and_people_are_told_to_retry(
    read_only_world: SandboxWorld,
) -> None:
    world = read_only_world
    assert world.driver is not None

    webhook = world.post_alerts(alertmanager_payload([{**PIPELINE_ALERT, "fingerprint": "0000000000000b01"}]))
    generic = world.post_alerts({"title": "nightly export failed"}, path="/alerts/generic")
    ready = http("GET", world.url + "/readyz")
    command = world.driver.slash_command("/escalate", "the feature store is down", COORDINATOR, COORD)
    click = world.driver.block_action(COORDINATOR, ActionId.ACK, "1:L2", COORD, "1700000000.000100")
    event = world.driver.event(
        {"type": "app_mention", "channel": "C1", "user": COORDINATOR, "text": "hi", "ts": "1.2"}
    )

    for answer in (webhook, generic):
        assert answer.status == 503, answer.text
        assert {k.lower(): v for k, v in answer.headers.items()}["retry-after"] == "30"
        assert "database is unavailable" in answer.json()["error"]
    assert ready.status == 503 and "does not take writes" in ready.text
    assert command.status == 200 and "cannot reach its database" in command.json()["text"]
    assert click.status == 200
    [told] = world.slack.responses
    assert "cannot reach its database" in told["text"]
    assert event.status == 503  # Slack delivers the event again later
    assert http("GET", world.url + "/healthz").status == 200
    assert http("GET", world.url + "/metrics").status == 200


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "KUBECONFIG"))}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args, "--config", str(ROOT / "app.yaml")],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


SLACK_DOWN = {
    "SLACK_BOT_TOKEN": "xoxb-operator",
    "SLACK_SIGNING_SECRET": "secret",
    "SLACK_API_URL": "http://127.0.0.1:9/api/",  # nothing listens there
}


def test_run_with_slack_unreachable_says_what_failed_and_exits_non_zero(tmp_path: Path) -> None:
    result = run_cli(
        "run",
        "--port",
        "0",
        env={**SLACK_DOWN, "DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}"},
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "cannot reach Slack at http://127.0.0.1:9/api/" in result.stderr
    assert "check SLACK_API_URL" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_doctor_with_slack_unreachable_says_what_failed_and_exits_non_zero(tmp_path: Path) -> None:
    result = run_cli("doctor", env=SLACK_DOWN, cwd=tmp_path)
    assert result.returncode == 1
    assert "✗ Slack: cannot reach Slack at http://127.0.0.1:9/api/" in result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_run_with_an_unreachable_database_names_database_url_and_the_cause_in_one_line(
    tmp_path: Path,
) -> None:
    url = "postgresql://bot:s3cretpw@127.0.0.1:9/escalations"
    result = run_cli("run", env={**SLACK_DOWN, "DATABASE_URL": url}, cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        "escalation-bot: cannot use the database at DATABASE_URL=postgresql://bot:[REDACTED]@"
    )
    assert "refused" in line.lower()
    assert "s3cretpw" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_readyz_says_ready_when_the_database_takes_writes(world: SandboxWorld) -> None:
    answer = http("GET", world.url + "/readyz")
    assert (answer.status, answer.text) == (200, "ok")


def test_the_write_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(engine)
    with engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
    with SandboxWorld(database_url=f"sqlite:///{tmp_path / 'p.db'}") as world:
        for _ in range(3):
            assert http("GET", world.url + "/readyz").status == 200
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one() == before
