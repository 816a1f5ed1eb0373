"""The outside world of one fault run, and the bot as a real `escalation-bot run` process inside it.

`World` holds the Slack emulator, the Kubernetes sandbox (and optionally a sandbox MLflow), each on its
own loopback port; `BotProcess` starts `python -m bot.cli run` against them with an app.yaml written for
the run (short durations) and a kubeconfig whose server is the sandbox; `kill()` is SIGKILL.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from bot.sandbox.kube_api import SandboxKubeAPI
from bot.sandbox.mlflow_api import SandboxMlflowAPI
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.world import (
    COORDINATOR,
    DECIDER,
    DEMO_CONFIG,
    OUTSIDER,
    TECH_LEAD,
    http,
    sandbox_job_rule,
)

ROOT = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "fault-signing-secret"
BOT_TOKEN = "xoxb-fault"
WEBHOOK_TOKEN = "fault-webhook-token"
CHANNELS = ("#ml-alerts", "#data-coordinator", "#tech-leads", "#ml-decisions", "#escalation-admin")

# Durations short enough that the three scenarios finish in about half a minute. The pipeline alerts are
# severity critical, so "time matters" halves the L2/L3/L4 timers: reminders after 1 s, deadlines after 8 s.
OVERRIDES: dict[str, Any] = {
    "slack": {"channels": {"admin": "#escalation-admin"}},
    "levels": {
        "l1": {"max_attempts": 2, "budget": "10s", "check_timeout": "5s", "verify_poll_interval": "1s"},
        "l2": {"ack_deadline": "16s", "reminder_after": "2s"},
        "l3": {"ack_deadline": "16s", "reminder_after": "2s"},
        "l4": {"decision_expiry": "2m", "reminder_after": "2s"},
    },
    "remediation": copy.deepcopy(DEMO_CONFIG["remediation"]),
    "feature_store": {"tables": []},
    "intake": {
        "pollers": {
            "mlflow_failed_runs": {"enabled": False},
            "kubernetes_failed_jobs": {"enabled": False},
        }
    },
    "runtime": {
        "timer_interval": "300ms",
        "outbox_interval": "300ms",
        "slack_rate_per_channel": 20.0,
        "slack_burst": 10,
    },
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and value:
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def app_config() -> dict[str, Any]:
    """The repository's app.yaml with the fault suite's short durations."""
    return _merge(yaml.safe_load((ROOT / "app.yaml").read_text()), OVERRIDES)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


def reader(url: str) -> Engine:
    """An engine for reading the bot's database from outside (no pool: runs must not hoard connections)."""
    return create_engine(sqlalchemy_url(url), poolclass=NullPool)


@contextmanager
def fresh_schema(base: str) -> Iterator[str]:
    """A fresh schema on TEST_DATABASE_URL's server, as tests/conftest.py's `pg_url` makes, dropped after."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = reader(base)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


class World:
    """Slack, the cluster and (optionally) MLflow, as the bot reaches them over loopback HTTP."""

    def __init__(self, tmp: Path, *, mlflow: bool = False) -> None:
        self.tmp = tmp
        self.slack = SlackEmulator(bot_token=BOT_TOKEN)
        self.kube = SandboxKubeAPI(on_job_created=sandbox_job_rule(), seed=7)
        self.mlflow = SandboxMlflowAPI() if mlflow else None

    def start(self) -> World:
        self.slack.start()
        s = self.slack
        s.add_user(COORDINATOR, "alice", "Alice (data coordinator)")
        s.add_user(TECH_LEAD, "bob", "Bob (tech lead)")
        s.add_user(DECIDER, "carol", "Carol (ML platform owner)")
        s.add_user(OUTSIDER, "dave", "Dave")
        s.add_usergroup("S0COORD", "data-coordinator", [COORDINATOR])
        s.add_usergroup("S0LEAD", "tech-lead-orchestrator", [TECH_LEAD])
        s.add_usergroup("S0DECIDE", "ml-deciders", [DECIDER])
        self.kube.start()
        for fixture in ("training_oom", "pipeline_failed"):
            self.kube.load_fixture(fixture)
        if self.mlflow is not None:
            self.mlflow.start()
        return self

    def stop(self) -> None:
        self.slack.stop()
        self.kube.stop()
        if self.mlflow is not None:
            self.mlflow.stop()

    def kubeconfig(self) -> Path:
        """A kubeconfig file whose cluster server is the sandbox (JSON is YAML)."""
        path = self.tmp / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "sandbox", "cluster": {"server": self.kube.url}}],
                    "users": [{"name": "escalation-bot", "user": {"token": "sandbox-token"}}],
                    "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "escalation-bot"}}],
                    "current-context": "sandbox",
                }
            )
        )
        return path

    def jobs(self, namespace: str = "ml-pipelines") -> list[dict[str, Any]]:
        """Every Job the cluster holds, read over the API like any client would."""
        resp = http("GET", f"{self.kube.url}/apis/batch/v1/namespaces/{namespace}/jobs")
        assert resp.status == 200, resp.text
        return list(resp.json()["items"])


class BotProcess:
    """One `escalation-bot run` process; a restart is a new BotProcess on the same database."""

    def __init__(self, env: dict[str, str], config: Path, cwd: Path, port: int, log: Path) -> None:
        self.env, self.config, self.cwd, self.port, self.log_path = env, config, cwd, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_s = 0.0

    def start(self, timeout: float = 90.0) -> None:
        """Start the process and return once /healthz answers; RuntimeError (with its log) if it does not."""
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bot.cli",
                    "run",
                    "--config",
                    str(self.config),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = began + timeout
        while True:  # a process starting to listen sends no event: poll its health endpoint
            try:
                if http("GET", self.url + "/healthz").status == 200:
                    break
            except (OSError, urllib.error.URLError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"escalation-bot run did not come up:\n{self.log_tail()}")
            time.sleep(0.05)
        self.started_s = time.monotonic() - began

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, and wait until the process is gone."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM (a graceful stop); the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def bot_env(world: World, database_url: str, home: Path, mlflow_uri: str | None) -> dict[str, str]:
    """The environment `run` gets: secrets and endpoints only, nothing from the developer's shell."""
    prefixes = ("SLACK_", "DATABASE_URL", "KUBECONFIG", "MLFLOW_", "ANTHROPIC_", "ALERT_WEBHOOK", "KUBERNETES_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        {
            "HOME": str(home),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": world.slack.api_url,
            "DATABASE_URL": database_url,
            "KUBECONFIG": str(world.kubeconfig()),
            "ALERT_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        }
    )
    if mlflow_uri:
        env["MLFLOW_TRACKING_URI"] = mlflow_uri
    return env


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll `predicate` until it holds or `timeout` passes (for state that sends no event, e.g. a database)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


class Latency:
    """A request hook that delays every request by `seconds` (a slow API server), until `clear()`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._cleared = threading.Event()

    def __call__(self, _request: object) -> None:
        self._cleared.wait(self.seconds)

    def clear(self) -> None:
        self._cleared.set()
