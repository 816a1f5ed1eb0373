"""The outbox's error policy, one class of error at a time: a transport error is an outage (the method is
held and a post is looked up before it is sent again), a Slack error that no retry fixes fails that row
and nothing else, and an error in the bot itself fails that row loudly while the rest keeps flowing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from bot.core.clock import FakeClock
from bot.integrations.slack.client import make_client
from bot.integrations.slack.outbox import OutboxDelivery
from bot.metrics import Metrics
from bot.sandbox.slack_emulator import SlackEmulator
from bot.store.tables import OutboxMessage
from tests.test_outbox_faults import Ticker, delivery, queue
from tests.test_outbox_faults import slack as slack  # a fixture

ADMIN = "#escalation-admin"
ALERTS = "#ml-alerts"
LEADS = "#tech-leads"


def row(engine: Engine, row_id: int) -> OutboxMessage:
    with Session(engine) as s:
        found = s.get(OutboxMessage, row_id)
        assert found is not None
        return found


def counted(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_post_whose_answer_times_out_is_an_outage_looked_up_before_it_is_sent_again(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    ticker, clock, metrics = Ticker(), FakeClock(), Metrics()
    engine, outbox = delivery(tmp_path, slack, ticker, clock, metrics=metrics, timeout=1)
    first = queue(engine, "post", channel=ALERTS, text="INC-1 · training crashed")
    second = queue(engine, "post", channel=LEADS, text="INC-2 · pipeline step failed")
    slack.latency("chat.postMessage", 1.5)  # Slack stores the post, but answers after the client gave up

    assert outbox.deliver_due() == 0
    late = row(engine, first)
    assert late.status == "pending" and (late.error or "").startswith("TimeoutError")
    assert late.unsure_since is not None  # it may be in Slack: look before posting again
    # The method is held during an outage: the other post waited instead of trying a failing Slack.
    assert (row(engine, second).status, row(engine, second).attempts) == ("pending", 0)
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert counted(metrics, "escalation_slack_retries_total", reason="connection") == 1

    assert slack.wait_for(lambda: len(slack.messages(ALERTS)) == 1)
    slack.latency("chat.postMessage", 0)
    clock.advance(1.0)
    ticker.now += 1.0
    assert outbox.deliver_due() == 2
    [stored] = slack.messages(ALERTS)
    assert row(engine, first).result_ts == stored["ts"]  # found in the channel, not posted twice
    assert len(slack.calls_to("conversations.history")) == 1
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert [m["text"] for m in slack.messages(LEADS)] == ["INC-2 · pipeline step failed"]


def test_an_unreachable_slack_is_an_outage_and_nothing_is_given_up(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    clock, metrics = FakeClock(), Metrics()
    engine, _ = delivery(tmp_path, slack, Ticker(), clock)
    slack.add_user("U0ALICE", "alice")
    slack.add_user("U0BOB", "bob")
    first = queue(engine, "ephemeral", channel=ALERTS, user="U0ALICE", text="only for you")
    second = queue(engine, "ephemeral", channel=ALERTS, user="U0BOB", text="and for you")
    nowhere = make_client(slack.bot_token, "http://127.0.0.1:9/api/")  # nothing listens there
    cut_off = OutboxDelivery(engine, nowhere, clock, metrics, ADMIN)

    assert cut_off.deliver_due() == 0
    refused = row(engine, first)
    assert refused.status == "pending" and (refused.error or "").startswith("URLError")
    assert row(engine, second).attempts == 0  # held with its method, not sent into the outage
    assert counted(metrics, "escalation_slack_retries_total", reason="connection") == 1
    assert counted(metrics, "escalation_outbox_errors_total", kind="ephemeral", exception="URLError") == 0

    clock.advance(1.0)
    back = OutboxDelivery(engine, make_client(slack.bot_token, slack.api_url), clock, Metrics(), ADMIN)
    assert back.deliver_due() == 2
    assert sorted(e["user"] for e in slack.ephemerals()) == ["U0ALICE", "U0BOB"]
    assert slack.messages(ADMIN) == []


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"channel": ALERTS, "text": "x" * 40_001}, "msg_too_long"),
        ({"channel": ALERTS, "text": "INC-1", "blocks": [{"text": "no type"}]}, "invalid_blocks"),
        ({"channel": "#ml-nowhere", "text": "INC-1"}, "channel_not_found"),
        ({"channel": ALERTS, "text": "INC-1 report", "thread_ts": "1700000000.000001"}, "thread_not_found"),
    ],
)
def test_a_slack_error_final_for_one_message_fails_that_row_and_holds_nothing_else(
    tmp_path: Path, slack: SlackEmulator, fields: dict[str, object], error: str
) -> None:
    metrics = Metrics()
    engine, outbox = delivery(tmp_path, slack, Ticker(), admin=ADMIN, metrics=metrics)
    broken = queue(engine, "post", incident_id=1, **fields)
    after = queue(engine, "post", incident_id=1, channel=LEADS, text="INC-1 · next message")
    elsewhere = queue(engine, "post", channel="#data-coordinator", text="INC-2")

    assert outbox.deliver_due() == 1  # the broken one failed; a post after it in the same round went
    assert (row(engine, broken).status, row(engine, broken).error) == ("dead", error)
    assert row(engine, elsewhere).status == "sent"
    assert outbox.deliver_due() == 2  # the incident's next message, and the notice to the admin channel
    assert row(engine, after).status == "sent"
    [notice] = slack.messages(ADMIN)
    assert "INC-1" in notice["text"] and error in notice["text"]
    assert counted(metrics, "escalation_slack_undeliverable_total", error=error) == 1
    assert counted(metrics, "escalation_slack_retries_total", reason="5xx") == 0


def test_an_error_in_the_bot_fails_that_row_loudly_and_the_rest_keeps_flowing(
    tmp_path: Path, slack: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    engine, outbox = delivery(tmp_path, slack, Ticker(), admin=ADMIN, metrics=metrics)
    slack.add_user("U0BOB", "bob")
    # A stored row the sender cannot use: an ephemeral without the person it is for.
    broken = queue(engine, "ephemeral", incident_id=1, channel=ALERTS, text="only for you")
    fine = queue(engine, "ephemeral", incident_id=2, channel=ALERTS, user="U0BOB", text="for Bob")
    other = queue(engine, "post", incident_id=3, channel="#data-coordinator", text="INC-3")
    later = queue(engine, "post", incident_id=1, channel=LEADS, text="INC-1 · Level 2")

    with caplog.at_level(logging.ERROR):
        assert outbox.deliver_due() == 2  # the same method went on at once, and so did a post

    assert (row(engine, broken).status, row(engine, broken).error) == (
        "dead",
        "error in the bot: KeyError: 'user'",
    )
    assert (row(engine, fine).status, row(engine, other).status) == ("sent", "sent")
    [logged] = [r for r in caplog.records if "error in the bot" in r.getMessage()]
    traceback = logging.Formatter().format(logged)  # the log's redaction may have rendered it already
    assert "Traceback (most recent call last)" in traceback and "KeyError: 'user'" in traceback
    assert counted(metrics, "escalation_outbox_errors_total", kind="ephemeral", exception="KeyError") == 1
    assert counted(metrics, "escalation_slack_retries_total", reason="connection") == 0  # not an outage
    assert [e["user"] for e in slack.ephemerals()] == ["U0BOB"]  # the broken row never reached Slack

    assert outbox.deliver_due() == 2  # the incident's next message, and the notice to the admin channel
    assert row(engine, later).status == "sent"
    [notice] = slack.messages(ADMIN)
    assert (
        "INC-1" in notice["text"]
        and "KeyError" in notice["text"]
        and f"outbox row {broken}" in notice["text"]
    )
    assert outbox.deliver_due() == 0
    assert outbox.pending() == 0


def test_an_error_in_the_bot_on_a_message_to_the_admin_channel_begets_no_notice(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    metrics = Metrics()
    engine, outbox = delivery(tmp_path, slack, Ticker(), admin=ADMIN, metrics=metrics)
    broken = queue(engine, "reaction", channel=ADMIN, target_ts="1700000000.000100")  # no reaction name

    assert outbox.deliver_due() == 0
    assert row(engine, broken).status == "dead"
    assert counted(metrics, "escalation_outbox_errors_total", kind="reaction", exception="KeyError") == 1
    assert outbox.deliver_due() == 0  # nothing was queued about it
    assert outbox.pending() == 0
    assert slack.messages(ADMIN) == [] and slack.calls_to("reactions.add") == []
