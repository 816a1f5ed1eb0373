"""Snooze: someone at L2 says "not now"; the reminder and the deadline wait that long (what was left of
each is kept), the message says who snoozed it until when, and it resumes by itself. Refused for people
who may not act at that level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlmodel import Session, select

from bot.core.clock import FakeClock
from bot.core.errors import Conflict
from bot.core.models import ActionId, Level
from bot.sandbox.slack_driver import select_value
from bot.sandbox.world import COORDINATOR, OUTSIDER, PIPELINE_ALERT, SandboxWorld, alertmanager_payload
from bot.services.snooze import until
from bot.store.tables import Escalation, TimelineEvent, Timer

COORD = "#data-coordinator"


def reach_l2(world: SandboxWorld) -> dict[str, Any]:
    """The failing pipeline step at severity warning: reminded at 15 min, escalated at 30 min."""
    alert = {
        **PIPELINE_ALERT,
        "labels": {**cast(dict[str, str], PIPELINE_ALERT["labels"]), "severity": "warning"},
    }
    assert world.post_alerts(alertmanager_payload([alert])).status == 202
    world.settle()
    [l2] = world.slack.messages(COORD)
    return l2


def escalated_at(world: SandboxWorld) -> datetime:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        [esc] = s.exec(select(Escalation)).all()
    return esc.at if esc.at.tzinfo else esc.at.replace(tzinfo=UTC)


def reminders(world: SandboxWorld, l2: dict[str, Any]) -> list[str]:
    return [m["text"] for m in world.slack.thread(COORD, l2["ts"]) if ":alarm_clock:" in m["text"]]


def snooze(world: SandboxWorld, user: str, l2: dict[str, Any], choice: str) -> None:
    world.click(user, ActionId.SNOOZE.value, COORD, l2["ts"])
    world.settle()
    world.submit_latest_view(user, {"until": {"value": select_value(choice)}})
    world.settle()


def test_a_snoozed_escalation_is_reminded_and_escalated_that_much_later(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    l2 = reach_l2(world)
    started = escalated_at(world)
    assert "Snooze" in str(l2["blocks"])
    clock.advance(5 * 60)
    snooze(world, COORDINATOR, l2, "1h")  # at 5 min: the reminder (15 min) and deadline (30 min) wait 1 h

    clock.advance((started + timedelta(minutes=16) - clock.now()).total_seconds())
    world.settle()
    paused = reminders(world, l2)
    clock.advance((started + timedelta(minutes=76) - clock.now()).total_seconds())
    world.settle()
    resumed = reminders(world, l2)
    clock.advance((started + timedelta(minutes=89) - clock.now()).total_seconds())
    world.settle()
    still_l2 = world.slack.messages("#tech-leads")
    clock.advance((started + timedelta(minutes=91) - clock.now()).total_seconds())
    world.settle()
    escalated = world.slack.messages("#tech-leads")
    message = world.slack.message(COORD, l2["ts"])

    assert paused == []
    assert len(resumed) == 1
    assert still_l2 == [] and len(escalated) == 1  # 30 min deadline + 1 h snooze
    assert ":zzz: Snoozed by <@U0COORD>" in str(message["blocks"]) and "until" in str(message["blocks"])
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        [event] = s.exec(select(TimelineEvent).where(TimelineEvent.kind == "snoozed")).all()
    assert event.actor == COORDINATOR and event.detail["level"] == "L2"


def test_snooze_is_refused_to_someone_who_may_not_act_at_that_level(timed_world: SandboxWorld) -> None:
    world = timed_world
    l2 = reach_l2(world)
    views_before = len(world.slack.views)
    world.click(OUTSIDER, ActionId.SNOOZE.value, COORD, l2["ts"])
    world.settle()
    assert len(world.slack.views) == views_before  # no modal for them
    told = [c for c in world.slack.calls_to("chat.postEphemeral") if c.args.get("user") == OUTSIDER]
    assert told and "not allowed" in told[-1].args["text"]


def test_until_tomorrow_is_nine_in_the_morning_where_the_person_is() -> None:
    now = datetime(2026, 12, 4, 22, 30, tzinfo=UTC)
    assert until("tomorrow", now, 0) == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    # in UTC+2 it is already 00:30 on the 5th: tomorrow is the 6th, 09:00 there, 07:00 UTC
    assert until("tomorrow", now, 2 * 3600) == datetime(2026, 12, 6, 7, 0, tzinfo=UTC)
    assert until("30m", now, 0) == now + timedelta(minutes=30)


def test_until_tomorrow_uses_the_time_zone_slack_has_for_the_person(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    world.slack.workspace.directory.users[COORDINATOR]["tz_offset"] = 2 * 3600  # Athens in winter
    l2 = reach_l2(world)
    now = clock.now()
    snooze(world, COORDINATOR, l2, "tomorrow")
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        [event] = s.exec(select(TimelineEvent).where(TimelineEvent.kind == "snoozed")).all()
    assert datetime.fromisoformat(event.detail["until"]) == until("tomorrow", now, 2 * 3600)


def test_a_snooze_replaces_the_last_one_and_ends_within_a_day_of_the_escalation(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    world.slack.workspace.directory.users[COORDINATOR]["tz_offset"] = -5 * 3600  # 04:00 in New York
    l2 = reach_l2(world)
    started = escalated_at(world)
    for _ in range(6):  # six clicks on "30 minutes" in the same minute: still 30 minutes
        snooze(world, COORDINATOR, l2, "30m")
    snooze(world, COORDINATOR, l2, "tomorrow")  # 09:00 there is 29 h away: past the day's cap
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        due = {t.kind: t.due_at for t in s.exec(select(Timer).where(Timer.status == "pending"))}
    told = [c.args["text"] for c in world.slack.calls_to("chat.postEphemeral")]
    assert due["ack_reminder"].replace(tzinfo=UTC) == started + timedelta(minutes=30 + 15)
    assert due["ack_deadline"].replace(tzinfo=UTC) == started + timedelta(minutes=30 + 30)
    assert any("can be snoozed until" in t and "at the latest" in t for t in told)


def test_an_urgent_or_acknowledged_incident_cannot_be_snoozed(timed_world: SandboxWorld) -> None:
    world = timed_world
    assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202  # severity critical
    world.settle()
    assert world.bot is not None
    snoozes = world.bot.services.snoozes
    with pytest.raises(Conflict, match="puts a model deployment at risk"):
        snoozes.snooze(1, Level.L2, COORDINATOR, "1h")
    world.bot.services.incidents.acknowledge(1, Level.L2, COORDINATOR)
    with pytest.raises(Conflict):
        snoozes.snooze(1, Level.L2, COORDINATOR, "1h")
