"""`escalation-bot run` as an operator starts it: a real process, configured only by app.yaml and the
environment, talking to the Slack emulator and answering Slack-signed requests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sandbox.slack_driver import SlackDriver
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.world import COORDINATOR, PIPELINE_ALERT, alertmanager_payload, http
from tests.processes import free_port, wait_serving
from tests.shown import shown

ROOT = Path(__file__).resolve().parent.parent
SECRET = "process-signing-secret"
TOKEN = "process-webhook-token"


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[str, SlackEmulator, subprocess.Popen[str]]]:
    with SlackEmulator(bot_token="xoxb-process") as slack:
        slack.add_user(COORDINATOR, "alice")
        slack.add_usergroup("S0COORD", "data-coordinator", [COORDINATOR])
        port = free_port()
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "KUBECONFIG"))
        }
        env.update(
            {
                "SLACK_BOT_TOKEN": "xoxb-process",
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": slack.api_url,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
                "ALERT_WEBHOOK_TOKEN": TOKEN,
            }
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot.cli",
                "run",
                "--config",
                str(ROOT / "app.yaml"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        wait_serving(proc, url, lambda: proc.stdout.read() if proc.stdout else "")
        try:
            yield url, slack, proc
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def test_the_running_bot_takes_an_alert_escalates_it_and_answers_a_signed_click(
    running: tuple[str, SlackEmulator, subprocess.Popen[str]],
) -> None:
    url, slack, proc = running
    assert http("GET", url + "/readyz").status == 200
    body = json.dumps(alertmanager_payload([PIPELINE_ALERT])).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    assert http("POST", url + "/alerts/alertmanager", body, headers).status == 202

    # no cluster is configured, so Level 1 says so and the coordinator hears about it
    assert slack.wait_for(lambda: len(slack.messages("#data-coordinator")) == 1, timeout=30)
    [l2] = slack.messages("#data-coordinator")
    assert "Problem:" in shown(
        l2
    ) and "Kubernetes (set KUBECONFIG or run in-cluster) is not configured" in shown(l2)

    driver = SlackDriver(url, SECRET, slack)
    value = next(e["value"] for b in l2["blocks"] if b["type"] == "actions" for e in b["elements"])
    assert (
        driver.block_action(COORDINATOR, "incident_ack", value, "#data-coordinator", l2["ts"]).status == 200
    )
    assert slack.wait_for(
        lambda: (
            "Acknowledged by <@U0COORD>" in json.dumps(slack.message("#data-coordinator", l2["ts"])["blocks"])
        ),
        timeout=30,
    )

    assert (
        driver.block_action(
            COORDINATOR, "incident_ack", value, "#data-coordinator", l2["ts"], sign=False
        ).status
        == 401
    )
    metrics = http("GET", url + "/metrics").text
    assert 'escalation_alerts_received_total{source="alertmanager"} 1.0' in metrics
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
