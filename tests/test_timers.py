"""Deadlines on a fake clock: reminders, automatic escalation, timers that survive a restart, and the Level 1
deadline that gets an incident to people even when Level 1 cannot finish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlmodel import Session, col, select

from bot.core.clock import FakeClock
from bot.core.models import ActionId
from bot.sandbox.world import COORDINATOR, DEMO_CONFIG, PIPELINE_ALERT, SandboxWorld, alertmanager_payload
from bot.store.tables import Decision, Escalation, Finding, Incident, TimelineEvent, Timer
from tests.shown import shown

ALERTS, COORDINATION, TECH_LEADS, DECISIONS = (
    "#ml-alerts",
    "#data-coordinator",
    "#tech-leads",
    "#ml-decisions",
)
COORDINATOR_GROUP, TECH_LEAD_GROUP = "<!subteam^S0COORD>", "<!subteam^S0LEAD>"
SECOND = timedelta(seconds=1)


def pipeline_alert(severity: str) -> dict[str, Any]:
    """The failing feature pipeline step (Level 1 cannot fix it) with the given severity."""
    return {
        **PIPELINE_ALERT,
        "labels": {**cast(dict[str, str], PIPELINE_ALERT["labels"]), "severity": severity},
    }


def utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def advance_to(clock: FakeClock, at: datetime) -> None:
    clock.advance((at - clock.now()).total_seconds())


def incident(world: SandboxWorld) -> Incident:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        [inc] = s.exec(select(Incident)).all()
        return inc


def escalations(world: SandboxWorld, level: str) -> list[Escalation]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Escalation).where(Escalation.level == level)))


def escalated_at(world: SandboxWorld, level: str) -> datetime:
    [esc] = escalations(world, level)
    return utc(esc.at)


def context_text(message: dict[str, Any]) -> str:
    return "\n".join(
        e["text"] for b in message.get("blocks", []) if b["type"] == "context" for e in b["elements"]
    )


def button_labels(message: dict[str, Any]) -> list[str]:
    return [
        e["text"]["text"] for b in message.get("blocks", []) if b["type"] == "actions" for e in b["elements"]
    ]


def reach_l2(world: SandboxWorld, severity: str = "warning") -> dict[str, Any]:
    """Alert → Level 1 fails → the L2 message in the coordinator channel."""
    assert world.post_alerts(alertmanager_payload([pipeline_alert(severity)])).status == 202
    world.settle()
    [l2] = world.slack.messages(COORDINATION)
    assert "Level 2 · INC-1" in l2["text"]
    return l2


@pytest.mark.parametrize(
    ("severity", "factor"),
    [pytest.param("warning", 1.0, id="warning"), pytest.param("critical", 0.5, id="critical-halved")],
)
def test_an_unacknowledged_l2_escalation_is_reminded_and_then_escalated_to_the_tech_lead(
    timed_world: SandboxWorld, clock: FakeClock, severity: str, factor: float
) -> None:
    world = timed_world
    l2 = reach_l2(world, severity)
    started = escalated_at(world, "L2")
    remind_at = started + timedelta(minutes=15) * factor
    deadline = started + timedelta(minutes=30) * factor

    advance_to(clock, remind_at - SECOND)
    world.settle()
    assert world.slack.thread(COORDINATION, l2["ts"]) == []

    advance_to(clock, remind_at + SECOND)
    world.settle()
    [reminder] = world.slack.thread(COORDINATION, l2["ts"])
    assert reminder["text"].startswith(f":alarm_clock: {COORDINATOR_GROUP} INC-1 ")
    assert "without an acknowledgement" in reminder["text"]

    advance_to(clock, deadline - SECOND)
    world.settle()
    assert (incident(world).level, incident(world).status) == ("L2", "open")
    assert world.slack.messages(TECH_LEADS) == []

    advance_to(clock, deadline + SECOND)
    world.settle()
    inc = incident(world)
    assert (inc.level, inc.status) == ("L3", "open")
    [l3] = world.slack.messages(TECH_LEADS)
    assert l3["text"].startswith(f"{TECH_LEAD_GROUP} *Level 3 · INC-1")
    assert "• ⬆️ *Level 2*: the bot escalated: not acknowledged" in shown(l3)
    l2_now = world.slack.message(COORDINATION, l2["ts"])
    assert ":arrow_up: Escalated to the tech lead by the bot at " in context_text(l2_now)
    assert "not acknowledged within" in context_text(l2_now)
    assert button_labels(l2_now) == ["Details"]  # nothing left to do at L2; the evidence stays
    assert len(world.slack.thread(COORDINATION, l2["ts"])) == 1  # one reminder, not one per settle
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        moves = s.exec(select(TimelineEvent).where(TimelineEvent.kind == "auto_escalated")).all()
    assert [(m.actor, m.detail["level"]) for m in moves] == [(None, "L3")]


def test_a_critical_incident_is_told_its_halved_deadline(timed_world: SandboxWorld, clock: FakeClock) -> None:
    world = timed_world
    l2 = reach_l2(world, "critical")
    started = escalated_at(world, "L2")

    advance_to(clock, started + timedelta(minutes=8))
    world.settle()
    [reminder] = world.slack.thread(COORDINATION, l2["ts"])
    advance_to(clock, started + timedelta(minutes=16))
    world.settle()

    assert "It escalates automatically after 15m." in reminder["text"]
    assert "not acknowledged within 15m" in context_text(world.slack.message(COORDINATION, l2["ts"]))


def test_acknowledging_at_l2_stops_the_reminder_and_the_automatic_escalation(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    l2 = reach_l2(world)
    assert world.click(COORDINATOR, ActionId.ACK, COORDINATION, l2["ts"]).status == 200
    world.settle()
    assert "Acknowledged by <@U0COORD>" in context_text(world.slack.message(COORDINATION, l2["ts"]))

    clock.advance(timedelta(hours=3).total_seconds())
    world.settle()

    inc = incident(world)
    assert (inc.level, inc.status, inc.acked_by) == ("L2", "acknowledged", COORDINATOR)
    assert world.slack.thread(COORDINATION, l2["ts"]) == []
    assert world.slack.messages(TECH_LEADS) == []
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        timers = {t.kind: t.status for t in s.exec(select(Timer).where(col(Timer.kind).like("ack_%")))}
    assert timers == {"ack_reminder": "cancelled", "ack_deadline": "cancelled"}


def test_an_unacknowledged_l3_escalation_becomes_a_decision_request_with_the_categorys_options(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    reach_l2(world)
    advance_to(clock, escalated_at(world, "L2") + timedelta(minutes=30) + SECOND)
    world.settle()
    [l3] = world.slack.messages(TECH_LEADS)
    l3_at = escalated_at(world, "L3")

    advance_to(clock, l3_at + timedelta(hours=1) + SECOND)  # the tech lead's reminder
    world.settle()
    [reminder] = world.slack.thread(TECH_LEADS, l3["ts"])
    assert reminder["text"].startswith(f":alarm_clock: {TECH_LEAD_GROUP} INC-1 ")
    assert world.slack.messages(DECISIONS) == []

    advance_to(clock, l3_at + timedelta(hours=2) + SECOND)
    world.settle()

    inc = incident(world)
    assert (inc.level, inc.status) == ("L4", "decision_pending")
    template = world.config.decisions.for_category("pipeline_step_failed")
    assert template != world.config.decisions.for_category("default")
    [decision] = world.slack.messages(DECISIONS)
    assert "*Decision needed · INC-1 · pipeline step failed* · not urgent" in decision["text"]
    assert decision["text"].endswith(f"\n{template.question}")  # what a notification shows
    assert button_labels(decision) == [o.label for o in template.options]
    for number, option in enumerate(template.options, start=1):
        assert f"*{number}. {option.label}* — {option.trade_off}" in shown(decision)
    assert ":arrow_up: Escalated to a decision by the bot at " in context_text(
        world.slack.message(TECH_LEADS, l3["ts"])
    )
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        [row] = s.exec(select(Decision)).all()
    assert (row.status, row.requested_by) == ("pending", None)
    assert [o["label"] for o in row.options] == [o.label for o in template.options]


def test_timers_due_while_the_bot_was_down_run_once_after_the_restart(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    l2 = reach_l2(world)
    deadline = escalated_at(world, "L2") + timedelta(minutes=30)

    world.stop_bot()
    advance_to(clock, deadline + timedelta(minutes=5))
    world.start_bot()  # a new process on the same database
    world.settle()
    clock.advance(60)
    world.settle()

    assert (incident(world).level, incident(world).status) == ("L3", "open")
    [l3] = world.slack.messages(TECH_LEADS)
    assert "Level 3 · INC-1" in l3["text"]
    assert len(escalations(world, "L3")) == 1
    assert len(world.slack.thread(COORDINATION, l2["ts"])) <= 1  # at most the one overdue reminder


def test_level_1_against_a_hanging_cluster_is_cut_off_and_the_incident_reaches_l2_within_the_budget(
    clock: FakeClock,
) -> None:
    config = {**DEMO_CONFIG, "levels": {"l1": {"verify_poll_interval": "1s", "check_timeout": "1s"}}}
    with SandboxWorld(clock=clock, config=config) as world:
        world.kube.hang("/api")  # no Kubernetes request (core /api or group /apis) is ever answered
        assert world.post_alerts(alertmanager_payload([pipeline_alert("warning")])).status == 202
        world.settle()

        inc = incident(world)
        assert (inc.level, inc.status) == ("L2", "open")
        assert escalated_at(world, "L2") - utc(inc.opened_at) <= timedelta(minutes=5)
        [root] = world.slack.messages(ALERTS)
        [report] = world.slack.thread(ALERTS, root["ts"])
        assert "did not answer within 1s and was cut off" in shown(report)
        [l2] = world.slack.messages(COORDINATION)
        assert "Level 2 · INC-1" in l2["text"]
        assert world.bot is not None
        with Session(world.bot.services.engine) as s:
            findings = s.exec(select(Finding)).all()
        assert findings
        assert {f.status for f in findings} == {"error"}


def test_when_level_1_never_reports_its_deadline_escalates_the_incident(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    assert world.bot is not None
    assert world.post_alerts(alertmanager_payload([pipeline_alert("warning")])).status == 202
    opened = utc(incident(world).opened_at)
    # A replica takes the Level 1 run and dies before reporting anything.
    assert [t.kind for t in world.bot.services.timers.claim()] == ["run_l1"]
    world.stop_bot()

    advance_to(clock, opened + timedelta(minutes=5, seconds=31))  # the 5m budget and its 30s grace
    world.start_bot()
    world.settle()

    inc = incident(world)
    assert (inc.level, inc.status) == ("L2", "open")
    [root] = world.slack.messages(ALERTS)
    [report] = world.slack.thread(ALERTS, root["ts"])
    # the dead replica's claim ran out long ago: its Level 1 run or the deadline, whichever comes first,
    # reports that the budget is spent (and the other finds the incident already escalated)
    assert "the Level 1 budget ran out" in report["text"] and "escalating to Level 2" in report["text"]
    [l2] = world.slack.messages(COORDINATION)
    assert "Level 2 · INC-1" in l2["text"]

    clock.advance(timedelta(minutes=10).total_seconds())  # the dead replica's claim on Level 1 expires
    world.settle()
    assert len(world.slack.thread(ALERTS, root["ts"])) == 1
    assert len(world.slack.messages(COORDINATION)) == 1


def test_a_kick_while_a_job_runs_is_not_logged_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import bot.app  # noqa: F401  (installs the filter)

    caplog.set_level(logging.WARNING)
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    scheduler_log.warning(
        'Execution of job "%s" skipped: maximum number of running instances reached (%d)', "outbox", 1
    )
    scheduler_log.warning("Run time of job %s was missed by %s", "timers", "0:00:01")
    assert [r.getMessage() for r in caplog.records] == ["Run time of job timers was missed by 0:00:01"]


def test_persistent_work_is_retried_past_five_failures_and_other_work_is_given_up(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    assert world.bot is not None
    services = world.bot.services
    runs: list[str] = []

    def failing(t: Timer, _claim: object) -> None:
        runs.append(t.kind)
        raise RuntimeError("the database is away")

    services.timers.handle("must_happen", failing, persistent=True)
    services.timers.handle("may_be_dropped", failing)
    with Session(services.engine) as s:
        for kind in ("must_happen", "may_be_dropped"):
            s.add(Timer(incident_id=None, kind=kind, due_at=clock.now(), payload={}, created_at=clock.now()))
        s.commit()
    for _ in range(7):
        services.timers.run_due(inline=True)
        clock.advance(301)  # past the longest backoff (5 minutes)

    with Session(services.engine) as s:
        rows = {
            t.kind: (t.status, t.attempts) for t in s.exec(select(Timer).where(col(Timer.kind).like("m%")))
        }
    assert rows == {"must_happen": ("pending", 7), "may_be_dropped": ("failed", 5)}
    assert runs.count("must_happen") == 7 and runs.count("may_be_dropped") == 5
