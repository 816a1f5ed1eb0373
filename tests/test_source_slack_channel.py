"""Alerts other bots post into the subscribed Slack alert channels: Alertmanager's slack_configs posts,
incoming-webhook posts, modern bot-token posts and their edits become incidents answered in the alert's
own thread; people's chat, the bot's own messages and other channels are left alone."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.core.models import IncidentStatus
from bot.integrations.alerts.slack_messages import parse_slack_alert
from bot.sandbox.slack_emulator import BOT_ID, BOT_USER_ID
from bot.sandbox.world import DEMO_CONFIG, OOM_ALERT, SandboxWorld, alertmanager_payload
from bot.store.tables import Alert, Incident, TimelineEvent
from tests.shown import shown

FIXTURES = Path(__file__).parent / "fixtures" / "slack"
ALERTS = "#ml-alerts"
L1_FIELDS = ("Error:", "Attempted:", "Action:", "Result:")
# What Slack adds around a stored message when it delivers it as an event.
_ENVELOPE_KEYS = {"type", "ts", "channel", "event_ts", "channel_type", "text"}


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def post(world: SandboxWorld, message: dict[str, Any], channel: str = ALERTS) -> dict[str, Any]:
    """Another bot (or a person) posts `message` in `channel`; returns the event Slack delivers for it."""
    fields = {k: v for k, v in message.items() if k not in _ENVELOPE_KEYS}
    stored = world.slack.add_message(channel, message.get("text", ""), **fields)
    return world.slack.message_event(channel, stored["ts"])


def deliver(world: SandboxWorld, event: dict[str, Any], **kwargs: Any) -> None:
    """Send the event as Slack does and wait until the bot's listeners have finished with it."""
    assert world.driver is not None and world.bot is not None
    response = world.driver.event(event, **kwargs)
    assert response.status == 200, response.text
    assert world.bot.listeners.wait_idle(30)


def edit(world: SandboxWorld, event: dict[str, Any], new_message: dict[str, Any]) -> dict[str, Any]:
    """The message_changed event Slack sends when the poster edits the message behind `event`."""
    changed = copy.deepcopy(fixture("message_changed"))
    previous = {k: v for k, v in event.items() if k not in ("channel", "event_ts", "channel_type")}
    changed["previous_message"] = previous
    changed["message"] = {**previous, **new_message, "ts": event["ts"]}
    edited_at = f"{time.time():.6f}"
    changed["message"]["edited"] = {"user": event.get("user", event.get("bot_id")), "ts": edited_at}
    changed["channel"] = event["channel"]
    changed["ts"] = changed["event_ts"] = edited_at
    return changed


def incidents(world: SandboxWorld) -> list[Incident]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Incident).order_by(Incident.id)))  # type: ignore[arg-type]


def alert_rows(world: SandboxWorld) -> list[Alert]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Alert).order_by(Alert.id)))  # type: ignore[arg-type]


def timeline_kinds(world: SandboxWorld, incident_id: int) -> list[str]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        rows = s.exec(select(TimelineEvent).where(TimelineEvent.incident_id == incident_id))
        return [row.kind for row in rows]


def bot_posts(world: SandboxWorld, channel: str) -> list[dict[str, Any]]:
    return [m for m in world.slack.messages(channel) if m.get("bot_id") == BOT_ID]


def l1_report(world: SandboxWorld, channel: str, ts: str) -> str:
    [report] = [m for m in world.slack.thread(channel, ts) if m.get("bot_id") == BOT_ID]
    text = shown(report)
    assert all(label in text for label in L1_FIELDS), text
    return text


# -- the shapes other bots post ---------------------------------------------------------------------


def test_an_alertmanager_slack_post_opens_an_incident_and_level_1_answers_in_its_thread(
    world: SandboxWorld,
) -> None:
    event = post(world, fixture("alertmanager_firing"))
    deliver(world, event)
    world.settle()

    [inc] = incidents(world)
    assert inc.source == "slack" and inc.category == "pipeline_step_failed"
    assert inc.title == "[FIRING:2] KubeJobFailed ml-pipelines (feature-build-daily critical)"
    assert inc.labels["alertname"] == "KubeJobFailed"
    assert inc.labels["namespace"] == "ml-pipelines" and inc.labels["job_name"] == "feature-build-daily"
    assert inc.severity == "critical" and inc.labels["reason"] == "BackoffLimitExceeded"
    assert inc.target == {"namespace": "ml-pipelines", "job": "feature-build-daily"}
    assert (inc.alert_channel, inc.alert_ts) == (world.slack.channel_id(ALERTS), event["ts"])

    assert bot_posts(world, ALERTS) == []  # no root post: the alert message is the root
    report = l1_report(world, ALERTS, event["ts"])
    assert "BackoffLimitExceeded" in report or "feature-build-daily" in report


def test_an_incoming_webhook_post_with_fields_is_fixed_at_level_1_in_its_thread(world: SandboxWorld) -> None:
    event = post(world, fixture("incoming_webhook_bot_message"))
    assert event["subtype"] == "bot_message" and "user" not in event
    deliver(world, event)
    world.settle()

    [inc] = incidents(world)
    assert inc.title == "Training job train-churn-model failed: OOMKilled (exit code 137)"
    assert inc.category == "training_crash" and inc.severity == "warning"
    assert inc.labels["job_name"] == "train-churn-model" and inc.labels["pod"] == "train-churn-model-x7k2p"
    assert inc.status == IncidentStatus.RESOLVED and inc.level == "L1"
    assert bot_posts(world, ALERTS) == []
    assert "✅ fixed at Level 1" in l1_report(world, ALERTS, event["ts"])


def test_a_modern_bot_post_with_blocks_opens_an_incident_from_its_block_fields(world: SandboxWorld) -> None:
    event = post(world, fixture("modern_bot_post"))
    assert "subtype" not in event and event["bot_id"] and event["user"]
    deliver(world, event)
    world.settle()

    [inc] = incidents(world)
    assert inc.title == "Feature build failed: feature-build-daily in ml-pipelines"
    assert inc.labels["job_name"] == "feature-build-daily" and inc.severity == "critical"
    assert inc.category == "pipeline_step_failed"
    assert bot_posts(world, ALERTS) == []
    l1_report(world, ALERTS, event["ts"])


# -- edits and resolved posts -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["edited to [RESOLVED]", "a new [RESOLVED] post"])
def test_a_resolved_alert_closes_the_incident_still_at_level_1(world: SandboxWorld, how: str) -> None:
    firing = fixture("message_changed")["previous_message"]
    event = post(world, firing)
    deliver(world, event)  # no settle: Level 1 has not run yet
    [inc] = incidents(world)
    assert inc.status == IncidentStatus.L1_RUNNING

    resolved = fixture("message_changed")["message"]
    if how == "a new [RESOLVED] post":
        deliver(world, post(world, fixture("alertmanager_resolved")))
    else:
        deliver(world, edit(world, event, {"attachments": resolved["attachments"]}))
    world.settle()

    [inc] = incidents(world)
    assert inc.status == IncidentStatus.RESOLVED and inc.level == "L1"
    assert "alert_resolved_received" in timeline_kinds(world, inc.id or 0)
    assert [a.status for a in alert_rows(world)] == ["firing", "resolved"]
    assert world.slack.messages("#data-coordinator") == []


def test_an_edit_of_a_firing_alert_counts_as_a_repeat_and_an_unchanged_edit_as_nothing(
    world: SandboxWorld,
) -> None:
    firing = fixture("message_changed")["previous_message"]
    event = post(world, firing)
    deliver(world, event)

    more = copy.deepcopy(firing["attachments"])
    more[0]["title"] = "[FIRING:3] KubeJobFailed ml-pipelines (critical)"
    deliver(world, edit(world, event, {"attachments": more}))
    [inc] = incidents(world)
    assert inc.alert_count == 2 and inc.status == IncidentStatus.L1_RUNNING

    # Slack also sends message_changed when only metadata moves (an unfurl, a reply count)
    deliver(world, edit(world, event, {"reply_count": 1, "latest_reply": event["ts"]}))
    [inc] = incidents(world)
    assert inc.alert_count == 2 and len(alert_rows(world)) == 2


# -- what is left alone -----------------------------------------------------------------------------


def test_a_person_chatting_in_the_alert_channel_is_ignored(world: SandboxWorld) -> None:
    deliver(world, post(world, fixture("human_message")))
    world.settle()
    assert incidents(world) == [] and alert_rows(world) == []
    assert bot_posts(world, ALERTS) == []


def test_the_bots_own_posts_and_edits_in_the_alert_channel_are_not_alerts(world: SandboxWorld) -> None:
    assert world.post_alerts(alertmanager_payload([OOM_ALERT])).status == 202
    world.settle()
    [root] = bot_posts(world, ALERTS)
    assert "INC-1" in root["text"]

    own = world.slack.message_event(ALERTS, root["ts"])
    assert own["user"] == BOT_USER_ID
    deliver(world, own)  # the echo of our own post
    deliver(world, edit(world, own, {"text": root["text"] + " (updated)"}))
    world.settle()

    [inc] = incidents(world)
    assert inc.source == "alertmanager" and inc.alert_count == 1
    assert len(alert_rows(world)) == 1


def test_a_reply_in_an_alert_thread_is_not_a_new_alert(world: SandboxWorld) -> None:
    event = post(world, fixture("alertmanager_firing"))
    deliver(world, event)
    reply = {**fixture("alertmanager_firing"), "thread_ts": event["ts"]}
    fields = {k: v for k, v in reply.items() if k not in _ENVELOPE_KEYS}
    stored = world.slack.add_message(ALERTS, "", **fields)
    deliver(world, world.slack.message_event(ALERTS, stored["ts"]))

    [inc] = incidents(world)
    assert inc.alert_count == 1 and len(alert_rows(world)) == 1


def test_an_alert_in_a_channel_that_is_not_subscribed_is_ignored(world: SandboxWorld) -> None:
    deliver(world, post(world, fixture("alertmanager_firing"), channel="#data-coordinator"))
    world.settle()
    assert incidents(world) == []
    assert world.slack.messages("#data-coordinator")[0]["bot_id"] != BOT_ID


def test_the_configured_alert_channels_replace_the_default_one() -> None:
    config = {**DEMO_CONFIG, "slack": {**DEMO_CONFIG["slack"], "alert_channels": ["#training-alerts"]}}
    with SandboxWorld(config=config) as world:
        world.slack.add_channel("training-alerts")
        deliver(world, post(world, fixture("alertmanager_firing")))  # #ml-alerts is no longer subscribed
        assert incidents(world) == []

        event = post(world, fixture("incoming_webhook_bot_message"), channel="#training-alerts")
        deliver(world, event)
        world.settle()
        [inc] = incidents(world)
        assert inc.alert_channel == world.slack.channel_id("#training-alerts")
        l1_report(world, "#training-alerts", event["ts"])


def test_a_retried_event_is_processed_once(world: SandboxWorld) -> None:
    event = post(world, fixture("alertmanager_firing"))
    deliver(world, event, event_id="Ev0SLACKALERT1")
    deliver(world, event, event_id="Ev0SLACKALERT1", retry_num=1, retry_reason="http_timeout")
    world.settle()

    [inc] = incidents(world)
    assert inc.alert_count == 1 and len(alert_rows(world)) == 1
    assert len([m for m in world.slack.thread(ALERTS, event["ts"]) if m.get("bot_id") == BOT_ID]) == 1


# -- the parser on its own --------------------------------------------------------------------------

SUBSCRIBED = {"C0ALERTS"}


def parse(event: dict[str, Any]) -> Any:
    return parse_slack_alert(event, SUBSCRIBED, BOT_USER_ID, BOT_ID)


def test_the_fingerprint_survives_a_changing_count_and_common_labels_and_a_resolved_post() -> None:
    first = fixture("alertmanager_firing")
    later = copy.deepcopy(first)
    later["attachments"][0]["title"] = "[FIRING:5] KubeJobFailed ml-pipelines (critical)"
    resolved = fixture("alertmanager_resolved")
    prints = {parse(e).fingerprint for e in (first, later, resolved)}
    assert prints == {"slack:C0ALERTS:KubeJobFailed ml-pipelines"}
    assert [parse(e).status for e in (first, later, resolved)] == ["firing", "firing", "resolved"]


def test_label_lines_in_every_common_style_become_labels() -> None:
    event = fixture("modern_bot_post")
    event.pop("blocks")
    event["text"] = (
        ":rotating_light: *[FIRING:1] TrainingJobOOMKilled ml-pipelines*\n"
        "*Namespace:* ml-pipelines\n"
        "job_name: train-churn-model\n"
        "• *severity*: warning\n"
        "Labels: team=ml-platform cluster=prod-eu\n"
        "Runbook: <https://runbooks.internal/oom|runbook>\n"
        "summary: train-churn-model was OOMKilled (exit 137)"
    )
    alert = parse(event)
    assert alert.title == "[FIRING:1] TrainingJobOOMKilled ml-pipelines"
    assert alert.labels == {
        "alertname": "TrainingJobOOMKilled",
        "namespace": "ml-pipelines",
        "job_name": "train-churn-model",
        "severity": "warning",
        "team": "ml-platform",
        "cluster": "prod-eu",
    }
    assert alert.annotations == {
        "runbook": "runbook",
        "summary": "train-churn-model was OOMKilled (exit 137)",
    }
    assert alert.slack_ts == event["ts"] and alert.slack_channel == "C0ALERTS"


def test_secrets_in_a_posted_alert_are_redacted() -> None:
    event = fixture("alertmanager_firing")
    event["attachments"][0]["title"] = "[FIRING:1] MlflowDown (password=hunter2hunter2)"
    event["attachments"][0]["text"] = "*dsn:* postgres://mlflow:s3cretpass@db:5432/mlflow"
    alert = parse(event)
    assert "hunter2" not in alert.title and "s3cretpass" not in alert.text
    assert "s3cretpass" not in alert.labels["dsn"] and "s3cretpass" not in json.dumps(alert.raw)


def test_a_very_long_title_still_gives_a_bounded_stable_fingerprint() -> None:
    event = fixture("alertmanager_firing")
    event["attachments"][0]["title"] = "[FIRING:1] " + "x" * 1000
    one, two = parse(event), parse(copy.deepcopy(event))
    assert len(one.fingerprint) <= 255 and one.fingerprint == two.fingerprint


@pytest.mark.parametrize(
    "change",
    [
        {"channel": "C0ELSEWHERE"},
        {"thread_ts": "1795683500.000001"},
        {"subtype": "channel_join"},
        {"subtype": "thread_broadcast"},
        {"bot_id": BOT_ID},
        {"attachments": "not a list", "text": ""},
        {"attachments": [], "text": ""},
        {"ts": None},
        {"type": "app_mention"},
    ],
    ids=lambda c: ",".join(c),
)
def test_anything_that_is_not_a_subscribed_alert_gives_none_without_raising(change: dict[str, Any]) -> None:
    assert parse({**fixture("alertmanager_firing"), **change}) is None


def test_an_edit_of_the_bots_own_message_is_not_an_alert_even_when_it_reaches_the_parser() -> None:
    own = {**fixture("modern_bot_post"), "user": BOT_USER_ID, "bot_id": BOT_ID, "bot_profile": {"id": BOT_ID}}
    changed = edit_event(own, {"text": "INC-7 · pipeline step failed (updated)"})
    assert parse(changed) is None
    other = edit_event(fixture("modern_bot_post"), {"text": "Feature build failed again"})
    assert parse(other) is not None and parse(other).title == "Feature build failed again"


def edit_event(message: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    inner = {k: v for k, v in message.items() if k not in ("channel", "event_ts", "channel_type", "blocks")}
    return {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": "C0ALERTS",
        "message": {**inner, **new},
        "previous_message": inner,
        "ts": "1795690000.000100",
    }


@pytest.mark.parametrize(
    "event",
    [
        {"type": "message", "subtype": "message_changed", "channel": "C0ALERTS", "hidden": True},
        {"type": "message", "subtype": "message_changed", "channel": "C0ALERTS", "message": "gone"},
        {"type": "message", "subtype": "message_deleted", "channel": "C0ALERTS", "deleted_ts": "1.2"},
        {"type": "message", "channel": "C0ALERTS", "bot_id": "B1", "ts": "1.2", "blocks": [{"type": 3}]},
        {"type": "message", "channel": "C0ALERTS", "bot_id": "B1", "ts": "1.2", "attachments": [None, 7]},
    ],
)
def test_odd_shapes_give_none(event: dict[str, Any]) -> None:
    assert parse(event) is None
