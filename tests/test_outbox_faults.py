"""Slack delivery under faults: a burst of 429s and then half a minute of 5xx leaves every message of
every incident delivered afterwards, in order per incident and never twice; and the outbox keeps to
Slack's per-channel and per-method budgets without one busy channel holding up the others."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.core.clock import FakeClock
from bot.integrations.slack.client import make_client
from bot.integrations.slack.outbox import METADATA_EVENT, OutboxDelivery, enqueue
from bot.metrics import Metrics
from bot.sandbox.slack_emulator import DEFAULT_CHANNELS, SlackEmulator
from bot.sandbox.world import (
    BOT_TOKEN,
    OOM_ALERT,
    PIPELINE_ALERT,
    SandboxWorld,
    alertmanager_payload,
    http,
)
from bot.store.db import make_engine, migrate, session_scope
from bot.store.tables import OutboxMessage

WRITES = ("chat.postMessage", "chat.update")
LOOKUPS = ("conversations.history", "conversations.replies")
DRIFT_ALERT = {
    "labels": {
        "alertname": "KubeJobFailed",
        "namespace": "ml-pipelines",
        "job_name": "score-batch-hourly",
        "severity": "critical",
        "reason": "BackoffLimitExceeded",
    },
    "annotations": {"summary": "Job ml-pipelines/score-batch-hourly failed: BackoffLimitExceeded"},
    "fingerprint": "a1b2c3d4e5f60003",
}


@pytest.fixture
def faulty_world(clock: FakeClock) -> Iterator[SandboxWorld]:
    """A sandbox whose Slack emulator keeps time on the bot's fake clock, so fault windows can be crossed."""
    world = SandboxWorld(clock=clock)
    world.slack = SlackEmulator(bot_token=BOT_TOKEN, clock=lambda: clock.now().timestamp())
    with world:
        yield world


def outbox_rows(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))


def stored_by_outbox_id(slack: SlackEmulator) -> Counter[int]:
    """How many messages in the workspace (top level and in threads) carry each outbox id."""
    seen: Counter[int] = Counter()
    for name in DEFAULT_CHANNELS:
        for message in slack.messages(name):
            for msg in [message, *slack.thread(name, message["ts"])]:
                meta = msg.get("metadata") or {}
                if meta.get("event_type") == METADATA_EVENT:
                    seen[int(meta["event_payload"]["outbox_id"])] += 1
    return seen


def fail_for(slack: SlackEmulator, methods: tuple[str, ...], seconds: float, status: int) -> None:
    for method in methods:
        slack.fail_for(method, seconds, status, retry_after=2 if status == 429 else None)


def test_after_429s_and_thirty_seconds_of_5xx_every_message_is_delivered_once_in_order(
    faulty_world: SandboxWorld, clock: FakeClock
) -> None:
    world, slack = faulty_world, faulty_world.slack
    assert world.bot is not None
    engine = world.bot.services.engine

    # Slack rate-limits every write for two seconds while three alerts come in.
    fail_for(slack, WRITES, 2, 429)
    for alert in (OOM_ALERT, PIPELINE_ALERT, DRIFT_ALERT):
        assert world.post_alerts(alertmanager_payload([alert])).status == 202
    world.settle()
    assert {c.status for c in slack.calls_to("chat.postMessage")} == {429}
    assert all(not slack.messages(name) for name in DEFAULT_CHANNELS)

    # Retry-After has passed: the next post lands in Slack but its answer is lost on the way back ...
    clock.advance(2.0)
    slack.drop_after_send("chat.postMessage")
    world.settle()
    [(lost_id, stored)] = stored_by_outbox_id(slack).items()
    assert stored == 1
    assert [r.status for r in outbox_rows(engine) if r.id == lost_id] == ["pending"]

    # ... and then Slack answers 500 to writes and to look-ups alike for thirty seconds.
    fail_for(slack, WRITES + LOOKUPS, 30, 500)
    outage_ends = clock.now().timestamp() + 30
    for _ in range(120):
        clock.advance(1.0)
        world.settle()
        done = all(r.status == "sent" for r in outbox_rows(engine))
        if done and clock.now().timestamp() > outage_ends:
            break

    rows = outbox_rows(engine)
    assert rows and {r.status for r in rows} == {"sent"}
    posts = [r for r in rows if r.kind == "post"]
    assert {r.incident_id for r in posts} == {1, 2, 3}

    # Every post is in Slack exactly once, the one whose answer was lost included.
    stored_ids = stored_by_outbox_id(slack)
    assert stored_ids == Counter({r.id: 1 for r in posts if r.id is not None})
    found = [r for r in rows if r.id == lost_id]
    assert found[0].result_ts is not None
    # The look-up that would have found it failed during the outage; the post was not re-sent blindly.
    assert any(
        c.status == 500
        for c in slack.calls_to("conversations.history") + slack.calls_to("conversations.replies")
    )
    resent = [
        c
        for c in slack.calls_to("chat.postMessage")
        if (c.args.get("metadata") or {}).get("event_payload", {}).get("outbox_id") == lost_id
        and c.status == 200
    ]
    assert resent == []

    # Nothing got through while Slack was failing; everything after it did, in order per incident.
    assert any(c.status == 500 for c in slack.calls_to("chat.postMessage"))
    accepted = [c for c in slack.calls_to("chat.postMessage") if c.status in (0, 200)]
    assert all(c.at >= outage_ends or c.at <= outage_ends - 30 for c in accepted)
    for incident_id in (1, 2, 3):
        mine = [r for r in posts if r.incident_id == incident_id]
        assert len(mine) >= 2  # the alert's root message and its Level 1 report at least
        stamps = [Decimal(r.result_ts or "0") for r in mine]
        assert stamps == sorted(stamps)
        root = mine[0]
        replies = slack.thread(root.result_channel or "", root.result_ts or "")
        assert "Level 1 report" in replies[0]["text"]

    metrics = http("GET", world.url + "/metrics").text
    assert 'escalation_slack_retries_total{reason="429"}' in metrics
    assert 'escalation_slack_retries_total{reason="5xx"}' in metrics
    assert "escalation_slack_undeliverable_total{" not in metrics  # nothing was given up


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with SlackEmulator(bot_token=BOT_TOKEN) as emulator:
        yield emulator


class Ticker:
    """Monotonic seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def delivery(
    tmp_path: Path,
    slack: SlackEmulator,
    ticker: Ticker,
    clock: FakeClock | None = None,
    *,
    admin: str | None = None,
    metrics: Metrics | None = None,
    timeout: float = 10.0,
) -> tuple[Engine, OutboxDelivery]:
    engine = make_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    migrate(engine)
    client = make_client(slack.bot_token, slack.api_url, timeout)
    return engine, OutboxDelivery(
        engine,
        client,
        clock or FakeClock(),
        metrics or Metrics(),
        admin,
        rate_per_channel=1.0,
        burst=1,
        ticker=ticker,
    )


def queue(engine: Engine, kind: str, **fields: Any) -> int:
    with session_scope(engine) as s:
        row = enqueue(s, FakeClock().now(), kind, **fields)
        return row.id or 0


def test_a_busy_channel_is_paced_while_posts_to_other_channels_go_out_at_once(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    ticker = Ticker()
    engine, outbox = delivery(tmp_path, slack, ticker)
    for n in range(3):
        queue(engine, "post", channel="#ml-alerts", text=f"alert {n}")
    queue(engine, "post", channel="#tech-leads", text="for the tech lead")
    queue(engine, "post", channel="#data-coordinator", text="for the coordinator")

    assert outbox.deliver_due() == 3
    assert [m["text"] for m in slack.messages("ml-alerts")] == ["alert 0"]
    assert [m["text"] for m in slack.messages("tech-leads")] == ["for the tech lead"]
    assert [m["text"] for m in slack.messages("data-coordinator")] == ["for the coordinator"]

    assert outbox.deliver_due() == 0  # #ml-alerts has spent its burst; nothing else is waiting
    ticker.now += 1.0
    assert outbox.deliver_due() == 1
    ticker.now += 1.0
    assert outbox.deliver_due() == 1
    assert [m["text"] for m in slack.messages("ml-alerts")] == ["alert 0", "alert 1", "alert 2"]
    assert outbox.pending() == 0


def test_message_updates_keep_to_the_tier_3_budget_of_the_workspace(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    ticker = Ticker()
    engine, outbox = delivery(tmp_path, slack, ticker)
    root = queue(engine, "post", channel="#ml-alerts", text="INC-1 · 1 alert")
    assert outbox.deliver_due() == 1
    for n in range(2, 10):
        queue(engine, "update", target_of=root, text=f"INC-1 · {n} alerts")

    assert outbox.deliver_due() == 5  # Tier 3: about 50 a minute, in bursts of 5
    assert len(slack.calls_to("chat.update")) == 5
    assert outbox.deliver_due() == 0
    ticker.now += 1.2  # one more token at 50 a minute
    assert outbox.deliver_due() == 1
    ticker.now += 60
    assert outbox.deliver_due() == 2
    [message] = slack.messages("ml-alerts")
    assert message["text"] == "INC-1 · 9 alerts"
    assert [c.status for c in slack.calls_to("chat.update")] == [200] * 8


def test_a_rate_limited_update_holds_every_update_until_retry_after(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    ticker, clock = Ticker(), FakeClock()
    engine, outbox = delivery(tmp_path, slack, ticker, clock)
    first = queue(engine, "post", channel="#ml-alerts", text="first")
    second = queue(engine, "post", channel="#tech-leads", text="second")
    assert outbox.deliver_due() == 2
    slack.fail_next("chat.update", 429, retry_after=2)
    queue(engine, "update", target_of=first, text="first, updated")
    queue(engine, "update", target_of=second, text="second, updated")

    assert outbox.deliver_due() == 0
    assert [c.status for c in slack.calls_to("chat.update")] == [429]  # the other update waited
    clock.advance(1.0)
    assert outbox.deliver_due() == 0
    clock.advance(1.5)
    ticker.now += 60
    assert outbox.deliver_due() == 2
    assert [c.status for c in slack.calls_to("chat.update")] == [429, 200, 200]
    assert [m["text"] for m in slack.messages("ml-alerts")] == ["first, updated"]
    assert [m["text"] for m in slack.messages("tech-leads")] == ["second, updated"]
