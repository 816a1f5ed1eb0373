"""The outside world of one fault run, and the bot as a real `escalation-bot run` process inside it.

`World` holds the Slack emulator, the Kubernetes sandbox (and optionally a sandbox MLflow), each on its
own loopback port; `BotProcess` starts `python -m bot.cli run` against them with an app.yaml written for
the run (short durations) and a kubeconfig whose server is the sandbox; `kill()` is SIGKILL.
"""

from __future__ import annotations

import contextlib
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
# severity critical, so "time matters" halves the L2/L3/L4 timers: reminders after 1 s, deadlines after 10 s.
OVERRIDES: dict[str, Any] = {
    "slack": {"channels": {"admin": "#escalation-admin"}},
    "levels": {
        "l1": {"max_attempts": 2, "budget": "10s", "check_timeout": "5s", "verify_poll_interval": "1s"},
        "l2": {"ack_deadline": "20s", "reminder_after": "2s"},
        "l3": {"ack_deadline": "20s", "reminder_after": "2s"},
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
        # what a killed process held (a timer, an outbox row, a stored click) is taken up 3 s later
        "claim_lease": "3s",
        "timer_interval": "1s",
        "outbox_interval": "1s",
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
    return (
        url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url
    )


def reader(url: str) -> Engine:
    """An engine for reading the bot's database from outside: one connection, kept for the run."""
    if url.startswith("sqlite"):
        return create_engine(sqlalchemy_url(url), poolclass=NullPool)
    return create_engine(sqlalchemy_url(url), pool_size=1, max_overflow=0)


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
                    "contexts": [
                        {"name": "sandbox", "context": {"cluster": "sandbox", "user": "escalation-bot"}}
                    ],
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


class Child:
    """A started process: its pid, whether it ended, and its exit code."""

    def __init__(self, pid: int, poll: Callable[[], int | None], wait: Callable[[float], int]) -> None:
        self.pid, self.poll, self.wait = pid, poll, wait


class ExecLauncher:
    """Every start is `python -m bot.cli run …` (FAULT_LAUNCH=exec)."""

    def spawn(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> Child:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", *argv],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return Child(proc.pid, proc.poll, lambda timeout: proc.wait(timeout=timeout))

    def close(self) -> None:
        pass


class ForkLauncher:
    """Starts go through tests/fault/forkserver.py, which forks a pre-imported interpreter per start."""

    def __init__(self) -> None:
        env = clean_env()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fault.forkserver"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._pids: list[int] = []
        self._exits: dict[int, int] = {}
        self._ready = False
        threading.Thread(target=self._read, name="forkserver-reader", daemon=True).start()
        with self._cond:
            if not self._cond.wait_for(lambda: self._ready or self._proc.poll() is not None, 60):
                raise RuntimeError("the fork server did not start")
        if not self._ready:
            raise RuntimeError("the fork server exited")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            message = json.loads(line)
            with self._cond:
                if "ready" in message:
                    self._ready = True
                elif "pid" in message:
                    self._pids.append(int(message["pid"]))
                elif "exit" in message:
                    self._exits[int(message["exit"])] = int(message["code"])
                self._cond.notify_all()
        with self._cond:
            self._ready = False
            self._cond.notify_all()

    def spawn(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> Child:
        request = json.dumps({"argv": argv, "env": env, "cwd": str(cwd), "log": str(log)}) + "\n"
        with self._lock:  # one request at a time, so the next pid that comes back is this one's
            assert self._proc.stdin is not None
            with self._cond:
                seen = len(self._pids)
            self._proc.stdin.write(request.encode())
            self._proc.stdin.flush()
            with self._cond:
                if not self._cond.wait_for(lambda: len(self._pids) > seen, 30):
                    raise RuntimeError("the fork server did not answer")
                pid = self._pids[seen]

        def poll() -> int | None:
            with self._cond:
                return self._exits.get(pid)

        def wait(timeout: float) -> int:
            with self._cond:
                if not self._cond.wait_for(lambda: pid in self._exits, timeout):
                    raise subprocess.TimeoutExpired(f"pid {pid}", timeout)
                return self._exits[pid]

        return Child(pid, poll, wait)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=30)


_SECRET_PREFIXES = (
    "SLACK_",
    "DATABASE_URL",
    "KUBECONFIG",
    "MLFLOW_",
    "ANTHROPIC_",
    "ALERT_WEBHOOK",
    "KUBERNETES_",
)
_BASE_ENV: dict[str, str] = {}


def freeze_env() -> None:
    """Copy the environment once, before the runs' threads start: tests elsewhere in the session patch
    os.environ (tests/conftest.py), and reading it while another thread changes it is not safe."""
    _BASE_ENV.clear()
    _BASE_ENV.update(os.environ)


def clean_env() -> dict[str, str]:
    """The frozen environment without anything secret or endpoint-like from the developer's shell."""
    return {k: v for k, v in (_BASE_ENV or dict(os.environ)).items() if not k.startswith(_SECRET_PREFIXES)}


_launcher: ExecLauncher | ForkLauncher | None = None
_launcher_lock = threading.Lock()


def launcher() -> ExecLauncher | ForkLauncher:
    """The session's launcher: a fork server unless FAULT_LAUNCH=exec."""
    global _launcher
    with _launcher_lock:
        if _launcher is None:
            exec_mode = _BASE_ENV.get("FAULT_LAUNCH", os.environ.get("FAULT_LAUNCH")) == "exec"
            _launcher = ExecLauncher() if exec_mode else ForkLauncher()
        return _launcher


def close_launcher() -> None:
    global _launcher
    with _launcher_lock:
        if _launcher is not None:
            _launcher.close()
            _launcher = None


class BotProcess:
    """One `escalation-bot run` process; a restart is a new BotProcess on the same database."""

    def __init__(self, env: dict[str, str], config: Path, cwd: Path, port: int, log: Path) -> None:
        self.env, self.config, self.cwd, self.port, self.log_path = env, config, cwd, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.child: Child | None = None
        self.started_s = 0.0

    def start(self, timeout: float = 90.0) -> None:
        """Start the process and return once /healthz answers; RuntimeError (with its log) if it does not."""
        began = time.monotonic()
        argv = ["run", "--config", str(self.config), "--host", "127.0.0.1", "--port", str(self.port)]
        self.child = launcher().spawn(argv, self.env, self.cwd, self.log_path)
        deadline = began + timeout
        while True:  # a process starting to listen sends no event: poll its health endpoint
            try:
                # another process that took the port meanwhile answers /healthz too: the port must be ours
                if http("GET", self.url + "/healthz").status == 200 and listens_on(self.child.pid, self.port):
                    break
            except (OSError, urllib.error.URLError):
                pass
            if self.child.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"escalation-bot run did not come up:\n{self.log_tail()}")
            time.sleep(0.05)
        self.started_s = time.monotonic() - began

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.pid

    def alive(self) -> bool:
        return self.child is not None and self.child.poll() is None

    def kill(self) -> None:
        """SIGKILL, and wait until the process is gone."""
        if self.child is None:
            return
        if self.child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child.pid, signal.SIGKILL)
        self.child.wait(30)

    def stop(self) -> int | None:
        """SIGTERM (a graceful stop); the exit code."""
        if self.child is None:
            return None
        if self.child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child.pid, signal.SIGTERM)
        try:
            return self.child.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def cpu_seconds(self) -> float | None:
        """User + system CPU the process has used so far (Linux /proc), None once it is gone."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` holds the socket listening on `port` (Linux /proc; elsewhere assumed so)."""
    try:
        tables = Path("/proc/net/tcp").read_text().splitlines()[1:]
        tables += Path("/proc/net/tcp6").read_text().splitlines()[1:]
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return True
    inodes = set()
    for line in tables:
        cols = line.split()
        if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
            inodes.add(cols[9])
    held = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            held.add(os.readlink(fd))
    return any(f"socket:[{inode}]" in held for inode in inodes)


def bot_env(world: World, database_url: str, home: Path, mlflow_uri: str | None) -> dict[str, str]:
    """The environment `run` gets: secrets and endpoints only, nothing from the developer's shell."""
    env = clean_env()
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
    """Poll `predicate` until it holds or `timeout` passes (for state that sends no event, e.g. a file)."""
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
