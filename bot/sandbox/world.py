"""A whole sandbox on loopback: the Slack emulator, the Kubernetes sandbox, and the bot between them,
reached over HTTP exactly as in production. Used by `escalation-bot demo` and by the tests."""

from __future__ import annotations

import json
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bot.app import Bot
from bot.config import AppConfig, Env, parse_config
from bot.core.clock import Clock
from bot.integrations.kubernetes import KubeGateway
from bot.sandbox.alerts import OOM_ALERT, PIPELINE_ALERT, alertmanager_payload
from bot.sandbox.kube_api import (
    JobRule,
    Outcome,
    OutcomeKind,
    SandboxKubeAPI,
    always,
    succeed_if_memory_at_least,
)
from bot.sandbox.slack_driver import Response, SlackDriver
from bot.sandbox.slack_emulator import SlackEmulator
from bot.web import WebServer

__all__ = [
    "BOT_TOKEN",
    "COORDINATOR",
    "DECIDER",
    "DEMO_CONFIG",
    "MLFLOW_WEBHOOK_SECRET",
    "OOM_ALERT",
    "OUTSIDER",
    "PIPELINE_ALERT",
    "SIGNING_SECRET",
    "TECH_LEAD",
    "WEBHOOK_TOKEN",
    "SandboxWorld",
    "alertmanager_payload",
    "http",
    "sandbox_job_rule",
]

SIGNING_SECRET = "sandbox-signing-secret"
BOT_TOKEN = "xoxb-sandbox"
WEBHOOK_TOKEN = "sandbox-webhook-token"
MLFLOW_WEBHOOK_SECRET = "sandbox-mlflow-webhook-secret"
COORDINATOR, TECH_LEAD, DECIDER, OUTSIDER = "U0COORD", "U0LEAD", "U0DECIDE", "U0OUTSIDE"

DEMO_CONFIG: dict[str, Any] = {
    "slack": {"channels": {"admin": "#escalation-admin"}},
    "levels": {"l1": {"verify_poll_interval": "1s"}},
    "remediation": {
        "dry_run": False,
        "allowlist": {
            "rerun_job_with_more_memory": {"memory_step_factor": 2.0, "max_memory": "16Gi"},
            "retry_job_with_debug": {"max_retries": 1},
        },
    },
}


def sandbox_job_rule() -> JobRule:
    """Training jobs need 4Gi; the feature pipeline step fails again on retry (its input is missing)."""
    memory = succeed_if_memory_at_least("4Gi")
    fail = always("failed", "FileNotFoundError: s3://ml-data/features/2026-11-26/part-0.parquet\n")

    def rule(job: dict[str, Any]) -> Outcome | OutcomeKind:
        name = job.get("metadata", {}).get("generateName") or job.get("metadata", {}).get("name", "")
        return memory(job) if name.startswith("train-") else fail(job)

    return rule


class SandboxWorld:
    """Start with `with SandboxWorld() as w:`; `w.settle()` waits until the bot has nothing left to do."""

    def __init__(
        self,
        *,
        database_url: str | None = None,
        config: AppConfig | dict[str, Any] | None = None,
        clock: Clock | None = None,
        job_rule: JobRule | None = None,
        pace: bool = False,
        webhook_token: str | None = WEBHOOK_TOKEN,
        mlflow_url: str | None = None,
        anthropic_url: str | None = None,
        anthropic_key: str = "sk-ant-sandbox-key",
    ) -> None:
        self.mlflow_url = mlflow_url
        self.anthropic_url = anthropic_url  # a Messages API stand-in: Claude investigates and drafts
        self.anthropic_key = anthropic_key
        self._tmp = tempfile.TemporaryDirectory(prefix="escalation-bot-")
        self.database_url = database_url or f"sqlite:///{Path(self._tmp.name) / 'bot.db'}"
        if config is None or isinstance(config, dict):
            self.config = parse_config(config if config is not None else DEMO_CONFIG)
        else:
            self.config = config
        self.clock = clock
        self.pace = pace
        self.webhook_token = webhook_token
        self.slack = SlackEmulator(bot_token=BOT_TOKEN)
        self.kube = SandboxKubeAPI(on_job_created=job_rule or sandbox_job_rule(), seed=7)
        self.bot: Bot | None = None
        self.server: WebServer | None = None
        self.url = ""
        self.driver: SlackDriver | None = None

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> SandboxWorld:
        self.slack.start()
        self._people()
        self.kube.start()
        for fixture in ("training_oom", "pipeline_failed"):
            self.kube.load_fixture(fixture)
        self.start_bot()
        return self

    def env(self) -> Env:
        # the environment the bot is given is this one only, whatever the shell around it has set
        return Env.from_environ(
            {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": self.slack.api_url,
                "DATABASE_URL": self.database_url,
                "ALERT_WEBHOOK_TOKEN": self.webhook_token,
                "MLFLOW_TRACKING_URI": self.mlflow_url,
                "MLFLOW_WEBHOOK_SECRET": MLFLOW_WEBHOOK_SECRET,
                "ANTHROPIC_API_KEY": self.anthropic_key if self.anthropic_url else None,
                "ANTHROPIC_BASE_URL": self.anthropic_url,
            }
        )

    def start_bot(self) -> Bot:
        """Start (or restart, on the same database) the bot and its web server."""
        self.bot = Bot(
            self.config, self.env(), clock=self.clock, kube=KubeGateway.for_url(self.kube.url), pace=self.pace
        )
        self.bot.auth()
        self.server = WebServer(self.bot.web)
        self.url = self.server.start()
        self.driver = SlackDriver(self.url, SIGNING_SECRET, self.slack)
        return self.bot

    def stop_bot(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.bot is not None:
            self.bot.stop()
            self.bot = None

    def stop(self) -> None:
        self.stop_bot()
        self.kube.stop()
        self.slack.stop()
        self._tmp.cleanup()

    def __enter__(self) -> SandboxWorld:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _people(self) -> None:
        s = self.slack
        s.add_user(COORDINATOR, "alice", "Alice (data coordinator)")
        s.add_user(TECH_LEAD, "bob", "Bob (tech lead)")
        s.add_user(DECIDER, "carol", "Carol (ML platform owner)")
        s.add_user(OUTSIDER, "dave", "Dave")
        s.add_usergroup("S0COORD", "data-coordinator", [COORDINATOR])
        s.add_usergroup("S0LEAD", "tech-lead-orchestrator", [TECH_LEAD])
        s.add_usergroup("S0DECIDE", "ml-deciders", [DECIDER])

    # -- acting like the outside world ------------------------------------------------------------------
    def post_alerts(
        self,
        payload: dict[str, Any] | bytes,
        path: str = "/alerts/alertmanager",
        token: str | None = "default",
    ) -> Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        token = self.webhook_token if token == "default" else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return http("POST", self.url + path, body, headers)

    def settle(self, timeout: float = 30.0) -> None:
        assert self.bot is not None
        self.bot.settle(timeout)

    def click(self, user: str, action_id: str, channel: str, ts: str) -> Response:
        """Click the button `action_id` on the message at (channel, ts), as `user`."""
        assert self.driver is not None
        message = self.slack.message(channel, ts)
        for block in message.get("blocks", []):
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("action_id") == action_id:
                    return self.driver.block_action(
                        user,
                        action_id,
                        element["value"],
                        channel,
                        ts,
                        block_id=block.get("block_id", "b"),
                        message=message,
                    )
        raise LookupError(f"no button {action_id} on message {ts} in {channel}")

    def submit_latest_view(self, user: str, values: dict[str, dict[str, Any]]) -> Response:
        """Submit the last modal the bot opened, with `values` {block_id: {action_id: value}}."""
        assert self.driver is not None
        view = self.slack.views[-1]
        return self.driver.view_submission(
            user,
            view["callback_id"],
            values,
            private_metadata=view.get("private_metadata", ""),
            view_id=view["id"],
        )


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Response:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return Response(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, dict(exc.headers), exc.read())
