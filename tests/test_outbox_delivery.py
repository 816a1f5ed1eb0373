"""Slack delivery through the outbox: retried on 429 (honouring Retry-After) and on 5xx, never posted twice
after an ambiguous failure, in order per incident, and given up loudly when no retry can help."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from bot.core.clock import FakeClock
from bot.sandbox.world import (
    COORDINATOR,
    DEMO_CONFIG,
    OOM_ALERT,
    PIPELINE_ALERT,
    SandboxWorld,
    alertmanager_payload,
    http,
)
from bot.store.tables import Escalation, Incident, OutboxMessage

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


def escalation_row(world: SandboxWorld, level: str = "L2") -> OutboxMessage:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        [esc] = s.exec(select(Escalation).where(Escalation.level == level)).all()
    return row(world, esc.outbox_id)


def posts(world: SandboxWorld) -> list[Any]:
    return world.slack.calls_to("chat.postMessage")


def posted_to(world: SandboxWorld, channel: str, *, top_level: bool = False) -> list[Any]:
    """chat.postMessage calls addressed to `channel`, by name or by id."""
    try:
        names = {channel, world.slack.channel_id(channel)}
    except LookupError:  # the workspace has no such channel
        names = {channel}
    return [
        c
        for c in posts(world)
        if c.args.get("channel") in names and not (top_level and c.args.get("thread_ts"))
    ]


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
    # The root twice (500, then ok), then the Level 1 report once.
    assert [c.status for c in posts(world)] == [500, 200, 200]
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
    assert [m["ts"] for m in world.slack.messages(ALERTS)] == [stored["ts"]]  # exactly once
    assert len(posted_to(world, ALERTS, top_level=True)) == 1
    assert world.slack.calls_to("conversations.history")  # it looked before posting again
    assert row(world, root.id).status == "sent"
    assert row(world, root.id).result_ts == stored["ts"]


def test_after_a_lost_answer_the_reply_still_lands_in_the_thread_of_the_found_post(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    world.slack.drop_after_send("chat.postMessage")
    post_alert(world, OOM_ALERT)
    world.settle()
    clock.advance(60)
    world.settle()
    clock.advance(60)
    world.settle()

    [stored] = world.slack.messages(ALERTS)
    [report] = world.slack.thread(ALERTS, stored["ts"])
    assert "Level 1 report · INC-1" in report["text"]
    assert {r.status for r in outbox(world)} == {"sent"}
    assert world.slack.messages(ADMIN) == []


def test_a_later_message_of_an_incident_waits_for_an_earlier_one_that_is_rate_limited(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    assert world.bot is not None
    post_alert(world, PIPELINE_ALERT)
    assert world.bot.services.outbox.deliver_due() == 1  # the alert's root message goes out first
    [root] = world.slack.messages(ALERTS)

    world.slack.fail_next("chat.postMessage", 429, retry_after=2)
    world.settle()  # Level 1 fails: its report (refused with 429) and the L2 post are queued, in that order

    [report] = [r for r in outbox(world) if r.thread_of == incident(world).alert_outbox_id]
    l2 = escalation_row(world)
    assert report.id is not None and l2.id is not None and report.id < l2.id
    assert (report.status, report.attempts) == ("pending", 1)
    assert (l2.status, l2.attempts) == ("pending", 0)
    assert utc(l2.next_attempt_at) <= clock.now()  # due, yet held back behind the report
    assert world.slack.messages(COORDINATION) == []

    # Slack said to wait on #ml-alerts: another incident's post there waits too, until Retry-After.
    post_alert(world, OOM_ALERT)
    world.settle()
    assert [m["text"].split(" · ")[0] for m in world.slack.messages(ALERTS)] == [":red_circle: *INC-1*"]
    assert world.slack.messages(COORDINATION) == []
    assert world.slack.thread(ALERTS, root["ts"]) == []

    clock.advance(2.5)
    world.settle()
    assert [m["text"].split(" · ")[0] for m in world.slack.messages(ALERTS)] == [
        ":red_circle: *INC-1*",
        ":red_circle: *INC-2*",
    ]
    [l1_report] = world.slack.thread(ALERTS, root["ts"])
    [l2_post] = world.slack.messages(COORDINATION)
    assert "Level 1 report · INC-1" in l1_report["text"]
    assert "Level 2 · INC-1" in l2_post["text"]
    assert Decimal(l1_report["ts"]) < Decimal(l2_post["ts"])
    coordination = {COORDINATION, world.slack.channel_id(COORDINATION)}
    delivered = [
        "report" if c.args.get("thread_ts") == root["ts"] else "L2"
        for c in posts(world)
        if c.status == 200
        and (c.args.get("thread_ts") == root["ts"] or c.args.get("channel") in coordination)
    ]
    assert delivered == ["report", "L2"]


def test_a_message_for_a_missing_channel_is_given_up_and_reported_once_to_the_admin_channel(
    clock: FakeClock,
) -> None:
    missing = "#ml-coordination"  # app.yaml names a channel the workspace does not have
    config = {**DEMO_CONFIG, "slack": {"channels": {"admin": ADMIN, "coordinator": missing}}}
    with SandboxWorld(clock=clock, config=config) as world:
        post_alert(world, PIPELINE_ALERT)
        world.settle()
        clock.advance(60)
        world.settle()

        l2 = escalation_row(world)
        assert (l2.status, l2.error, l2.attempts) == ("dead", "channel_not_found", 1)
        tried = posted_to(world, missing)
        assert [(c.status, c.error) for c in tried] == [(200, "channel_not_found")]
        [report] = world.slack.messages(ADMIN)
        assert "INC-1" in report["text"]
        assert missing in report["text"]
        assert "channel_not_found" in report["text"]
        assert incident(world).level == "L2"  # the incident itself is kept where it is

        metrics = http("GET", world.url + "/metrics")
        assert metrics.status == 200
        assert 'escalation_slack_undeliverable_total{error="channel_not_found"} 1.0' in metrics.text

        clock.advance(60)
        world.settle()
        assert len(world.slack.messages(ADMIN)) == 1
        assert len(posted_to(world, missing)) == 1


def test_an_answer_to_a_person_goes_before_a_backlog_of_channel_posts(world: SandboxWorld) -> None:
    from bot.integrations.slack.outbox import enqueue
    from bot.store.db import session_scope

    assert world.bot is not None
    services = world.bot.services
    with session_scope(services.engine) as s:  # a backlog bigger than one claim reads
        for n in range(260):
            enqueue(s, services.clock.now(), "post", channel=ALERTS, text=f"backlog {n}")
    services.replies.reply(world.slack.channel_id(ALERTS), COORDINATOR, "You are not allowed to act on INC-4")

    assert services.outbox.deliver_due(limit=5) == 5
    calls = [(c.method, c.status) for c in world.slack.calls if c.method.startswith("chat.")]
    assert calls == [("chat.postEphemeral", 200)] + [("chat.postMessage", 200)] * 4
