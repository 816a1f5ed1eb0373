"""Real `escalation-bot run` processes for the shutdown and replica tests: each started as an operator
starts it (`python -m bot.cli run`), configured by an app.yaml written for the test and the environment,
on a database the test makes (a fresh PostgreSQL schema, `pg_url`, or a SQLite file)."""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, create_engine

from bot.sandbox.world import http

ROOT = Path(__file__).resolve().parent.parent
BOT_TOKEN = "xoxb-processes"
SIGNING_SECRET = "processes-signing-secret"
WEBHOOK_TOKEN = "processes-webhook-token"
OUTSIDE = ("SLACK_", "DATABASE_URL", "KUBECONFIG", "ANTHROPIC_", "MLFLOW_", "ALERT_WEBHOOK", "KUBERNETES_")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_serving(proc: subprocess.Popen[Any], url: str, output: Any, timeout: float = 60.0) -> None:
    """Wait until the process at `url` serves /healthz; kill it and fail with `output()` (what it printed)
    when it ends or the deadline passes first."""
    deadline = time.monotonic() + timeout
    while True:  # a process starting to listen sends no event: poll its health endpoint
        try:
            if http("GET", url + "/healthz").status == 200:
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            pytest.fail(f"escalation-bot run did not come up:\n{output()}")
        time.sleep(0.05)


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` laid over it, key by key (a mapping in both is merged, anything else replaced)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if both else copy.deepcopy(value)
    return out


def write_config(folder: Path, overrides: dict[str, Any]) -> Path:
    """The repository's app.yaml with `overrides`, written to `folder`."""
    path = folder / "app.yaml"
    path.write_text(yaml.safe_dump(merged(yaml.safe_load((ROOT / "app.yaml").read_text()), overrides)))
    return path


def engine_for(url: str) -> Engine:
    """An engine for reading the bot's database from the test."""
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=2)


class BotRun:
    """One `escalation-bot run` process, its output in a file."""

    def __init__(self, folder: Path, config: Path, env: dict[str, str], name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"{name}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(OUTSIDE)} | env
        self.config, self.folder = config, folder
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> BotRun:
        """Start the process without waiting for it to serve."""
        argv = ["run", "--config", str(self.config), "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", *argv],
                env=self.env,
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def start(self, timeout: float = 60.0) -> BotRun:
        """Start the process and wait until it serves /healthz."""
        self.launch()
        assert self.proc is not None
        wait_serving(self.proc, self.url, self.output, timeout)
        return self

    def terminate(self) -> float:
        """SIGTERM; when it was sent (time.monotonic)."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        return began

    def exited(self, since: float, timeout: float = 30.0) -> tuple[int, float]:
        """Wait for the process to end: its exit code, and the seconds from `since` to its end."""
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - since

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Relay:
    """A loopback TCP relay to `host:port` (a database, say); `cut()` drops its connections and refuses new
    ones, as a server that went away does."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="relay", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self._listener.accept()
            except OSError:  # cut
                return
            far = socket.create_connection(self._target)
            with self._lock:
                self._open += [near, far]
            for source, sink in ((near, far), (far, near)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accept() in progress: closing alone would not
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()


def bot_env(slack_api_url: str, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a bot process: the emulator's Web API, the database, the webhook token."""
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_api_url,
        "DATABASE_URL": database_url,
        "ALERT_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        **extra,
    }
