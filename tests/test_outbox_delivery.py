"""Slack delivery through the outbox: retried on 429 (honouring Retry-After) and on 5xx, never posted twice
after an ambiguous failure, in order per incident, and given up loudly when no retry can help."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from bot.core.clock import FakeClock
from bot.sandbox.world import OOM_ALERT, SandboxWorld, alertmanager_payload, http
from bot.store.tables import Incident, OutboxMessage

ALERTS = "#ml-alerts"
COORDINATION = "#data-coordinator"
ADMIN = "#escalation-admin"


def utc(at: datetime) -> datetime:
    """Every stored time is UTC, whether or not the driver hands the zone back."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def outbox(world: SandboxWorld) -> list[OutboxMessage]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))


def row(world: SandboxWorld, row_id: int | None) -> OutboxMessage:
    [found] = [r for r in outbox(world) if r.id == row_id]
    return found


def incident(world: SandboxWorld, incident_id: int = 1) -> Incident:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        return inc


def posts(world: SandboxWorld) -> list[Any]:
    return world.slack.calls_to("chat.postMessage")


def post_alert(world: SandboxWorld, alert: dict[str, Any]) -> None:
    assert world.post_alerts(alertmanager_payload([alert])).status == 202


def test_a_rate_limited_post_waits_for_retry_after_and_is_then_delivered_once(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    world.slack.fail_next("chat.postMessage", 429, retry_after=2)
    post_alert(world, OOM_ALERT)
    world.settle()

    # The alert's root message was refused with 429: kept, and rescheduled for Retry-After from now.
    root = row(world, incident(world).alert_outbox_id)
    assert root.status == "pending"
    assert root.attempts == 1
    assert "ratelimited" in (root.error or "")
    wait = (utc(root.next_attempt_at) - clock.now()).total_seconds()
    assert 1.9 <= wait <= 2.1
    assert [c.status for c in posts(world)] == [429]
    assert world.slack.messages(ALERTS) == []

    clock.advance(1.0)  # still inside Retry-After: nothing is sent
    world.settle()
    assert [c.status for c in posts(world)] == [429]

    clock.advance(1.5)
    world.settle()
    [message] = world.slack.messages(ALERTS)
    assert "INC-1" in message["text"]
    assert row(world, root.id).status == "sent"
    assert row(world, root.id).result_ts == message["ts"]
    # The Level 1 report waited behind the root and then went into its thread.
    [report] = world.slack.thread(ALERTS, message["ts"])
    assert "Level 1 report · INC-1" in report["text"]
    assert [c.status for c in posts(world)] == [429, 200, 200]


def test_a_server_error_is_retried_and_the_message_is_delivered_once(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    world.slack.fail_next("chat.postMessage", 500, retry_after=None)
    post_alert(world, OOM_ALERT)
    world.settle()

    root = row(world, incident(world).alert_outbox_id)
    assert (root.status, root.attempts, root.error) == ("pending", 1, "http 500")
    assert clock.now() < utc(root.next_attempt_at) <= clock.now() + timedelta(seconds=60)

    clock.advance(60)
    world.settle()
    [message] = world.slack.messages(ALERTS)
    assert "INC-1" in message["text"]
    assert row(world, root.id).status == "sent"
    assert [c.status for c in posts(world)] == [
        500,
        200,
        200,
    ]  # the root twice (500, then ok), the report once
    metrics = http("GET", world.url + "/metrics").text
    assert 'escalation_slack_retries_total{reason="5xx"} 1.0' in metrics


def test_a_post_whose_answer_was_lost_is_found_in_the_channel_and_not_posted_again(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    world.slack.drop_after_send("chat.postMessage")  # Slack stores the message, the connection drops
    post_alert(world, OOM_ALERT)
    world.settle()

    [stored] = world.slack.messages(ALERTS)
    root = row(world, incident(world).alert_outbox_id)
    assert root.status == "pending"  # the bot cannot know it landed

    clock.advance(60)
    world.settle()
    assert world.slack.messages(ALERTS) == [stored]  # exactly once
    assert (
        len([c for c in posts(world) if c.args.get("channel") == ALERTS and not c.args.get("thread_ts")]) == 1
    )
    assert world.slack.calls_to("conversations.history")  # it looked before posting again
    assert row(world, root.id).status == "sent"
    assert row(world, root.id).result_ts == stored["ts"]


def test_after_a_lost_answer_the_thread_reply_still_finds_its_parent(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    world.slack.drop_after_send("chat.postMessage")
    post_alert(world, OOM_ALERT)
    world.settle()
    clock.advance(60)
    world.settle()
    clock.advance(600)
    world.settle()

    [stored] = world.slack.messages(ALERTS)
    [report] = world.slack.thread(ALERTS, stored["ts"])
    assert "Level 1 report · INC-1" in report["text"]
    assert {r.status for r in outbox(world)} == {"sent"}
