"""Alert text is untrusted: whatever mention syntax, control characters or code fences an alert carries
reach Slack neutralised. No posted message, block or command answer built from it pings a person, a
user group, the channel or everyone here; none carries a control character or a bidi override; and no
text has an unbalanced ``` that would swallow the bot's own formatting."""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest

from bot.sandbox.slack_driver import Response
from bot.sandbox.world import COORDINATOR, PIPELINE_ALERT, SandboxWorld, alertmanager_payload
from tests.security.helpers import ALERT_CHANNEL, COORD_CHANNEL, ack_text, settle_until

# What an alert tries to smuggle in: mentions of a person, the channel, everyone here, a user group,
# a NUL byte, a right-to-left override and an unbalanced code fence.
HOSTILE = "deploy <@U123ABC> <!channel> <!here> <!subteam^S123> @here \x00 \u202eevil ```rm -rf /"
LIVE_MENTIONS = {
    "<@U123ABC>": re.compile(r"<@U123ABC(?:\|[^>]*)?>"),
    "<!channel>": re.compile(r"<!channel(?:\|[^>]*)?>"),
    "<!here>": re.compile(r"<!here(?:\|[^>]*)?>"),
    "<!subteam^S123>": re.compile(r"<!subteam\^S123(?:\|[^>]*)?>"),
    "@here": re.compile(r"(?<![\w\u200b\u2060])@here\b"),
}
BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


def alertmanager(world: SandboxWorld) -> Response:
    alert = copy.deepcopy(PIPELINE_ALERT)
    alert["labels"]["team"] = HOSTILE
    alert["annotations"] = {
        "summary": f"Job ml-pipelines/feature-build-daily failed: {HOSTILE}",
        "description": HOSTILE,
        "impact": HOSTILE,
        "request": HOSTILE,
    }
    return world.post_alerts(alertmanager_payload([alert]))


def generic(world: SandboxWorld) -> Response:
    body = {
        "title": f"KubeJobFailed: feature-build-daily {HOSTILE}",
        "text": HOSTILE,
        "labels": {**PIPELINE_ALERT["labels"], "team": HOSTILE},
        "annotations": {"impact": HOSTILE, "request": HOSTILE},
    }
    return world.post_alerts(json.dumps(body).encode(), path="/alerts/generic")


def slack_channel(world: SandboxWorld) -> Response:
    """Another bot's post in the alert channel: Slack stores its text escaped, as any post's."""
    escaped = HOSTILE.replace("&", "&amp;")  # mentions stay live in the poster's own message
    assert world.driver is not None
    message = world.slack.add_message(
        ALERT_CHANNEL,
        "",
        bot_id="B0ALERTMANAGER",
        attachments=[
            {
                "title": f"[FIRING:1] KubeJobFailed ({escaped})",
                "text": "\n".join(
                    [
                        *(f"*{k}:* {v}" for k, v in PIPELINE_ALERT["labels"].items()),
                        f"*description:* {escaped}",
                        f"*impact:* {escaped}",
                    ]
                ),
                "color": "danger",
            }
        ],
    )
    return world.driver.event(world.slack.message_event(ALERT_CHANNEL, message["ts"]))


SOURCES = {"alertmanager": alertmanager, "generic": generic, "slack_channel": slack_channel}


def texts_sent(world: SandboxWorld) -> Iterator[tuple[str, str]]:
    """(where, text) for the text and every block text of every message the bot posted, updated or
    showed ephemerally, and every modal it opened."""
    for call in world.slack.calls:
        if call.method not in ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.open"):
            continue
        args = call.args
        if isinstance(args.get("text"), str):
            yield f"{call.method} text", args["text"]
        blocks = args.get("blocks") or (args.get("view") or {}).get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        yield from _block_texts(blocks, f"{call.method} blocks")


def _block_texts(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            yield where, value["text"]
        for key, inner in value.items():
            yield from _block_texts(inner, f"{where}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _block_texts(inner, f"{where}[{i}]")


def problems(where: str, text: str) -> list[str]:
    found = [
        f"{where}: live {name} in {text!r:.300}" for name, live in LIVE_MENTIONS.items() if live.search(text)
    ]
    controls = sorted({c for c in text if (unicodedata.category(c) == "Cc" and c not in "\n\t") or c in BIDI})
    if controls:
        found.append(f"{where}: control characters {controls!r} in {text!r:.300}")
    if text.count("```") % 2:
        found.append(f"{where}: an unbalanced ``` in {text!r:.300}")
    return found


@pytest.mark.parametrize("source", list(SOURCES))
def test_hostile_alert_text_reaches_slack_neutralised(world: SandboxWorld, source: str) -> None:
    assert world.driver is not None
    intake = SOURCES[source](world)
    assert intake.status in (200, 202), intake.text
    settle_until(
        world, lambda: len(world.slack.messages(COORD_CHANNEL)) == 1, "the alert did not reach Level 2"
    )
    show = world.driver.slash_command("/escalation", "show 1", COORDINATOR, COORD_CHANNEL)
    listing = world.driver.slash_command("/escalation", "list", COORDINATOR, COORD_CHANNEL)
    world.settle()

    sent = [*texts_sent(world), ("/escalation show", ack_text(show)), ("/escalation list", ack_text(listing))]
    assert any("evil" in text for _, text in sent), "the alert's text never reached Slack: nothing to check"
    found = [p for where, text in sent for p in problems(where, text)]
    assert not found, f"{len(found)} problems:\n" + "\n".join(found[:40])


FAKE_FIELDS = "x\nResult: :white_check_mark: fixed at Level 1\r\nAction: rolled back prod\u2028Request: none"


def test_line_breaks_in_alert_text_cannot_fake_a_field_of_the_report_or_the_escalation(
    world: SandboxWorld,
) -> None:
    alert = copy.deepcopy(PIPELINE_ALERT)
    alert["annotations"] = {"summary": FAKE_FIELDS, "description": FAKE_FIELDS, "impact": FAKE_FIELDS}
    assert world.post_alerts(alertmanager_payload([alert])).status in (200, 202)
    settle_until(world, lambda: bool(world.slack.messages(COORD_CHANNEL)), "the L2 escalation")

    texts = [m.get("text", "") for ch in (ALERT_CHANNEL, COORD_CHANNEL) for m in world.slack.messages(ch)]
    texts += [
        r.get("text", "")
        for m in world.slack.messages(ALERT_CHANNEL)
        for r in world.slack.thread(ALERT_CHANNEL, m["ts"])
    ]
    lines = [line for text in texts for line in re.split(r"[\r\n\u2028\u2029]", text)]
    assert any("↵ Result: :white_check_mark: fixed at Level 1" in line for line in lines)  # shown, inline
    for forged in ("Result: :white_check_mark: fixed", "Action: rolled back prod", "Request: none"):
        assert not [line for line in lines if line.lstrip("> *_").startswith(forged)], forged
