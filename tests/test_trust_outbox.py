"""Slack delivery at the edges: a post in flight when the process died is looked up before it is sent
again, and a 429 on a post holds every post to that channel (not just the row that got it)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.core.clock import FakeClock
from bot.integrations.slack.client import make_client
from bot.integrations.slack.outbox import OutboxDelivery
from bot.metrics import Metrics
from bot.sandbox.slack_emulator import SlackEmulator
from bot.store.db import session_scope
from bot.store.tables import OutboxMessage
from tests.test_outbox_faults import Ticker, delivery, queue
from tests.test_outbox_faults import slack as slack  # a fixture


def died_mid_send(engine: object, row_id: int) -> None:
    """Put the row back as a killed process leaves it: claimed and sending, its answer never recorded."""
    with session_scope(engine) as s:  # type: ignore[arg-type]
        s.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == row_id)
            .values(status="sending", result_ts=None, result_channel=None, sent_at=None)
        )


def row(engine: object, row_id: int) -> OutboxMessage:
    with Session(engine) as s:  # type: ignore[arg-type]
        found = s.exec(select(OutboxMessage).where(OutboxMessage.id == row_id)).one()
        return found


def test_a_post_slack_stored_before_the_process_died_is_found_after_the_restart_and_not_posted_again(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    clock = FakeClock()
    engine, outbox = delivery(tmp_path, slack, Ticker(), clock)
    row_id = queue(engine, "post", channel="#ml-alerts", text="INC-1 · pipeline step failed")
    assert outbox.deliver_due() == 1  # Slack has the post ...
    [posted] = slack.messages("ml-alerts")
    died_mid_send(engine, row_id)  # ... and the process died before it wrote that down

    clock.advance(61)  # the dead process's claim runs out; a new process takes the row
    restarted = OutboxDelivery(engine, make_client(slack.bot_token, slack.api_url), clock, Metrics())
    assert restarted.deliver_due() == 1

    assert [m["ts"] for m in slack.messages("ml-alerts")] == [posted["ts"]]
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert len(slack.calls_to("conversations.history")) == 1  # it looked before posting again
    after = row(engine, row_id)
    assert (after.status, after.result_ts) == ("sent", posted["ts"])


def test_a_post_slack_never_received_before_the_process_died_is_posted_once_after_the_restart(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    clock = FakeClock()
    engine, outbox = delivery(tmp_path, slack, Ticker(), clock)
    row_id = queue(engine, "post", channel="#ml-alerts", text="INC-1 · pipeline step failed")
    slack.fail_next("chat.postMessage", 500)  # the attempt never got through ...
    outbox.deliver_due()
    with session_scope(engine) as s:  # ... and the process died while it still held the row
        s.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == row_id)
            .values(status="sending", unsure_since=None, next_attempt_at=clock.now())
        )

    clock.advance(61)
    restarted = OutboxDelivery(engine, make_client(slack.bot_token, slack.api_url), clock, Metrics())
    assert restarted.deliver_due() == 1

    assert len(slack.messages("ml-alerts")) == 1
    assert len(slack.calls_to("conversations.history")) == 1


def test_a_429_on_a_post_holds_every_post_to_that_channel_until_retry_after(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    ticker, clock = Ticker(), FakeClock()
    engine, outbox = delivery(tmp_path, slack, ticker, clock)
    for n in range(3):
        queue(engine, "post", channel="#ml-alerts", text=f"alert {n}")
    slack.fail_next("chat.postMessage", 429, retry_after=5)

    outbox.deliver_due()
    for _ in range(4):  # four more rounds a second apart: pacing alone would let a post through each time
        ticker.now += 1.0
        clock.advance(1.0)
        queue(engine, "post", channel="#tech-leads", text=f"lead {_}")
        outbox.deliver_due()

    to_alerts = [
        c
        for c in slack.calls_to("chat.postMessage")
        if c.args.get("channel") == slack.channel_id("#ml-alerts")
    ]
    assert [c.status for c in to_alerts] == [429]  # nothing else was tried while Slack said to wait
    assert len(slack.messages("tech-leads")) == 4  # another channel was not held up

    ticker.now += 1.0
    clock.advance(1.5)  # Retry-After has passed
    for _ in range(3):
        outbox.deliver_due()
        ticker.now += 1.0
    assert [m["text"] for m in slack.messages("ml-alerts")] == ["alert 0", "alert 1", "alert 2"]
    assert clock.now() - FakeClock().now() >= timedelta(seconds=5)
