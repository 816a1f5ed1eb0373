"""Secrets in what Level 1 reads never reach Slack, the database or the logs."""

from __future__ import annotations

import json
import logging

import pytest
from sqlmodel import Session, select

from bot.core.models import ActionId
from bot.sandbox.world import COORDINATOR, PIPELINE_ALERT, SandboxWorld, alertmanager_payload
from bot.store.tables import Finding, RemediationAttempt
from tests.shown import step

SECRETS = ("S3cretPass", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "AKIAIOSFODNN7EXAMPLE")
LAST_LINE = (
    "ConnectionError: cannot write features to postgresql://etl:S3cretPass@db.internal:5432/features "
    "(token=ghp_abcdefghijklmnopqrstuvwxyz0123456789, key AKIAIOSFODNN7EXAMPLE)"
)


def everything_slack_holds(world: SandboxWorld) -> str:
    texts = []
    for channel in ("#ml-alerts", "#data-coordinator", "#tech-leads", "#ml-decisions"):
        for message in world.slack.messages(channel):
            texts.append(json.dumps(message))
            texts.extend(json.dumps(reply) for reply in world.slack.thread(channel, message["ts"]))
    texts.extend(json.dumps(call.args) for call in world.slack.calls)
    return "\n".join(texts)


def test_a_log_line_with_a_token_a_password_url_and_an_aws_key_is_posted_with_all_three_redacted(
    world: SandboxWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world.kube.load(
        {
            "kind": "PodLog",
            "namespace": "ml-pipelines",
            "pod": "feature-build-daily-q9w4z",
            "container": "step",
            "text": f"INFO starting\nTraceback (most recent call last):\n{LAST_LINE}\n",
        }
    )
    caplog.set_level(logging.DEBUG)
    world.post_alerts(alertmanager_payload([PIPELINE_ALERT]))
    world.settle()

    slack = everything_slack_holds(world)
    [l2] = world.slack.messages("#data-coordinator")
    # the message names the database without its user; Details shows the line as read, redacted
    logs = step(l2, "Pod logs")
    assert "ConnectionError: cannot write features to postgresql://db.internal:5432/features" in logs
    assert "token=[REDACTED]" in logs and "key [REDACTED]" in logs
    world.click(COORDINATOR, ActionId.DETAILS, "#data-coordinator", l2["ts"])
    world.settle()
    details = json.dumps(world.slack.views[-1]["blocks"])
    assert "postgresql://etl:[REDACTED]@db.internal" in details
    for secret in SECRETS:
        assert secret not in slack, f"{secret} reached Slack"
        assert secret not in caplog.text, f"{secret} reached the logs"

    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        stored = json.dumps([f.model_dump(mode="json") for f in s.exec(select(Finding))])
        stored += json.dumps([a.model_dump(mode="json") for a in s.exec(select(RemediationAttempt))])
    assert "pod_logs_tail" in stored
    for secret in SECRETS:
        assert secret not in stored, f"{secret} was stored"
