"""Secrets planted in an alert (a Slack token, a password in a connection URL, an AWS key id and a
`password=` pair) in every field a sender controls never reach Slack, any table of the database, the
logs (at DEBUG, tracebacks included) or a slash command's answer, from intake through Level 2, Level 3
and `/escalation show`."""

from __future__ import annotations

import copy
import json
import logging

import pytest

from bot.sandbox.slack_driver import Response
from bot.sandbox.world import (
    COORDINATOR,
    PIPELINE_ALERT,
    SIGNING_SECRET,
    WEBHOOK_TOKEN,
    SandboxWorld,
    alertmanager_payload,
)
from tests.security.helpers import (
    ALERT_CHANNEL,
    COORD_CHANNEL,
    LEAD_CHANNEL,
    ack_text,
    dump_database,
    escalate_to_l3,
    everything_slack_got,
    settle_until,
)

SLACK_TOKEN = "xoxb-2750416392-7382910462-Zq8RtY3uVw1XkL5mNb0PcDs9"
DB_PASSWORD = "hunter2"
PASSWORD_URL = f"postgres://u:{DB_PASSWORD}@db/x"
AWS_KEY_ID = "AKIA" + "Q7W3E5R7T9Y1U3I5"
PASSWORD = "Sw0rdf1shX9"
PASSWORD_PAIR = f"password={PASSWORD}"
# Shapes without a `key=value` to give them away, and the bot's own secrets (which have no shape at all).
BARE_TOKEN = "tok-ann-value-88"
JSON_PASSWORD = "Jp4ssw0rd-in-json"
PEM_BODY = "MIIEowIBAAKCAQEA3kF9Zb7Q2pLmN8xVtY6rUw"
WEBHOOK_PATH = "T0PLANTED/B0PLANTED/Xk9Lm2Np4Qr6St8Uv0Wx2Yz4"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzPLANTED12"
ENCODED_PASSWORD = "Pct3ncodedPw77"
KEY_ID = "4f1c2e9a7b3d5f6a8c0e2b4d"
FULLWIDTH_PASSWORD = "FwPassw0rd9911"
HIDDEN_KEY = "Z9X8C7V6B5N4M3L2"
SHAPES = (
    f'{{"password": "{JSON_PASSWORD}", "private_key_id": "{KEY_ID}"}} '
    f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY----- "
    f"https://hooks.slack.com/services/{WEBHOOK_PATH} {AWS_SECRET} password%3D{ENCODED_PASSWORD} "
    f"token{SLACK_TOKEN} ｐａｓｓｗｏｒｄ={FULLWIDTH_PASSWORD} AKIA\u200b{HIDDEN_KEY} "
    f"signed with {SIGNING_SECRET}, sent with {WEBHOOK_TOKEN}"
)
# What must not appear anywhere: the token, the password in the URL, the key id, the password, the shapes.
SECRETS = {
    "a value under a secret's name": BARE_TOKEN,
    "slack token": SLACK_TOKEN,
    "url password": DB_PASSWORD,
    "aws key id": AWS_KEY_ID,
    "password": PASSWORD,
    "password in JSON": JSON_PASSWORD,
    "private key": PEM_BODY,
    "Slack webhook": WEBHOOK_PATH.split("/")[-1],
    "aws secret key": AWS_SECRET,
    "url-encoded password": ENCODED_PASSWORD,
    "private_key_id": KEY_ID,
    "full-width password": FULLWIDTH_PASSWORD,
    "key id with a zero-width space": HIDDEN_KEY,
    "the bot's signing secret": SIGNING_SECRET,
    "the bot's webhook token": WEBHOOK_TOKEN,
}
SHORT_CARRIER = f"write to {PASSWORD_URL} failed (token {SLACK_TOKEN}, key {AWS_KEY_ID}, {PASSWORD_PAIR})"
CARRIER = f"{SHORT_CARRIER} {SHAPES}"
PLANTED_LABELS = {
    "connection": PASSWORD_URL,
    "slack_token": SLACK_TOKEN,
    "aws_access_key_id": AWS_KEY_ID,
    "db_password": PASSWORD_PAIR,
    "api_token": BARE_TOKEN,  # no shape at all: only its label's name says it is a secret
    "note": CARRIER,
}
PLANTED_ANNOTATIONS = {
    "summary": f"Job ml-pipelines/feature-build-daily failed: {CARRIER}",
    "description": f"Traceback (most recent call last):\n  ...\nConnectionError: {CARRIER}",
    "impact": f"Daily features are stale; {CARRIER}",
    "request": f"Please rotate {CARRIER}",
    "runbook_url": f"https://u:{DB_PASSWORD}@wiki.internal/runbooks/features",
    "operator_notes": CARRIER,
}


def alertmanager_body() -> bytes:
    alert = copy.deepcopy(PIPELINE_ALERT)
    alert["labels"] = {**alert["labels"], **PLANTED_LABELS}
    alert["annotations"] = PLANTED_ANNOTATIONS
    payload = alertmanager_payload(
        [alert], group_key=f'{{}}:{{alertname="KubeJobFailed", token="{SLACK_TOKEN}"}}'
    )
    payload["alerts"][0]["generatorURL"] = f"http://admin:{DB_PASSWORD}@prometheus.local/graph?k={AWS_KEY_ID}"
    payload["alerts"][0]["debug"] = CARRIER  # a field Alertmanager does not send: kept in the raw alert
    payload["commonAnnotations"] = {"operator_notes": CARRIER}
    payload["externalURL"] = f"http://admin:{DB_PASSWORD}@alertmanager.local/?{PASSWORD_PAIR}"
    payload["extra"] = CARRIER
    return json.dumps(payload).encode()


def generic_body() -> bytes:
    return json.dumps(
        {
            "title": f"KubeJobFailed: feature-build-daily: {SHORT_CARRIER}",  # a title has 500 characters
            "text": f"ConnectionError: {CARRIER}",
            "severity": "critical",
            "labels": {**PIPELINE_ALERT["labels"], **PLANTED_LABELS},
            "annotations": {k: v for k, v in PLANTED_ANNOTATIONS.items() if k != "summary"},
        }
    ).encode()


def post_from_slack_channel(world: SandboxWorld) -> Response:
    """Another bot posts the alert into the subscribed alert channel (an Alertmanager slack_configs post)."""
    assert world.driver is not None
    lines = "\n".join(f"*{k}:* {v}" for k, v in {**PIPELINE_ALERT["labels"], **PLANTED_LABELS}.items())
    notes = "\n".join(f"*{k}:* {v}" for k, v in PLANTED_ANNOTATIONS.items())
    message = world.slack.add_message(
        ALERT_CHANNEL,
        "",
        bot_id="B0ALERTMANAGER",
        username="Alertmanager",
        attachments=[
            {
                "title": f"[FIRING:1] KubeJobFailed ({CARRIER})",
                "text": f"{lines}\n{notes}",
                "fallback": CARRIER,
                "color": "danger",
            }
        ],
    )
    return world.driver.event(world.slack.message_event(ALERT_CHANNEL, message["ts"]))


def deliver(world: SandboxWorld, source: str) -> Response:
    if source == "alertmanager":
        return world.post_alerts(alertmanager_body())
    if source == "generic":
        return world.post_alerts(generic_body(), path="/alerts/generic")
    return post_from_slack_channel(world)


def logs_by_logger(caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    """The captured log lines (message and traceback) by logger name."""
    formatter = logging.Formatter("%(levelname)s %(message)s")
    out: dict[str, list[str]] = {}
    for record in caplog.records:
        out.setdefault(f"log {record.name}", []).append(formatter.format(record))
    return {name: "\n".join(lines) for name, lines in out.items()}


def where_secrets_are(places: dict[str, str]) -> list[str]:
    """`secret name in place: …context…` for every secret found in any place."""
    found = []
    for place, content in places.items():
        for name, secret in SECRETS.items():
            at = content.find(secret)
            if at >= 0:
                found.append(f"{name} in {place}: …{content[max(0, at - 80) : at + len(secret) + 40]!r}…")
    return found


@pytest.mark.parametrize("source", ["alertmanager", "generic", "slack_channel"])
def test_planted_secrets_reach_no_message_table_log_or_answer(
    db_world: SandboxWorld, caplog: pytest.LogCaptureFixture, source: str
) -> None:
    world = db_world
    assert world.driver is not None
    caplog.set_level(logging.DEBUG)

    intake = deliver(world, source)
    assert intake.status in (200, 202), intake.text
    settle_until(
        world, lambda: len(world.slack.messages(COORD_CHANNEL)) == 1, "the alert did not reach Level 2"
    )
    show = world.driver.slash_command("/escalation", "show 1", COORDINATOR, COORD_CHANNEL)
    listing = world.driver.slash_command("/escalation", "list", COORDINATOR, COORD_CHANNEL)
    l3 = escalate_to_l3(world, world.slack.messages(COORD_CHANNEL)[-1])
    world.settle()

    assert "Level 3" in l3["text"]
    assert show.status == 200 and "INC-1" in ack_text(show), show.text
    places = {
        "the intake answer": intake.text,
        "the /escalation show answer": show.text,
        "the /escalation list answer": listing.text,
        "Slack (messages, ephemerals, views, API call arguments)": everything_slack_got(world),
        **{f"column {column}": values for column, values in dump_database(world).items()},
        **logs_by_logger(caplog),
    }
    found = where_secrets_are(places)
    assert not found, "secrets leaked:\n" + "\n".join(found)
    assert "[REDACTED]" in everything_slack_got(world), "the secrets were not masked where the text is shown"
    assert world.slack.messages(LEAD_CHANNEL) == [l3]
