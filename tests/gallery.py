"""Every kind of message the bot posts, as the Slack emulator holds them after real runs: a failing
pipeline step taken from Level 1 through a reminder, Level 3 and a decision; an OOM kill fixed at Level 1;
and an alert storm's summary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from bot.core.clock import FakeClock
from bot.core.models import ActionId
from bot.sandbox.slack_driver import select_value, text_value
from bot.sandbox.world import (
    COORDINATOR,
    DECIDER,
    DEMO_CONFIG,
    OOM_ALERT,
    PIPELINE_ALERT,
    TECH_LEAD,
    SandboxWorld,
    alertmanager_payload,
)
from bot.services.records import latest_escalation
from bot.store.tables import Escalation, Incident

ALERTS, COORDINATION, TECH_LEADS, DECISIONS = (
    "#ml-alerts",
    "#data-coordinator",
    "#tech-leads",
    "#ml-decisions",
)
Messages = dict[str, dict[str, Any]]


def thread_of(world: SandboxWorld, channel: str, root: dict[str, Any]) -> list[dict[str, Any]]:
    return world.slack.thread(channel, root["ts"])


def root_of(world: SandboxWorld, text: str) -> dict[str, Any]:
    return next(m for m in world.slack.messages(ALERTS) if text in m["text"])


@contextmanager
def escalated_world() -> Iterator[tuple[SandboxWorld, Messages]]:
    """The failing step (INC-1, critical: urgent) through every level, and the OOM kill fixed (INC-2)."""
    clock = FakeClock()
    with SandboxWorld(clock=clock) as world:
        world.post_alerts(alertmanager_payload([PIPELINE_ALERT, OOM_ALERT]))
        world.settle()
        found: Messages = {"alert": root_of(world, "INC-1")}
        [found["l1_not_fixed"]] = thread_of(world, ALERTS, found["alert"])
        [found["l1_fixed"]] = thread_of(world, ALERTS, root_of(world, "INC-2"))
        [l2] = world.slack.messages(COORDINATION)
        found["l2"] = l2

        clock.advance(timedelta(minutes=8).total_seconds())  # severity critical: reminded after 7.5 minutes
        world.settle()
        [found["reminder"]] = thread_of(world, COORDINATION, l2)

        world.click(COORDINATOR, ActionId.ESCALATE_L3, COORDINATION, l2["ts"])
        world.settle()
        world.submit_latest_view(
            COORDINATOR,
            {
                "trigger": {"value": select_value("architecture_redesign")},
                "reason": {"value": text_value("Upstream stopped writing the daily partition")},
            },
        )
        world.settle()
        found["l2_escalated"] = world.slack.message(COORDINATION, l2["ts"])
        [l3] = world.slack.messages(TECH_LEADS)
        found["l3"] = l3

        world.click(TECH_LEAD, ActionId.ASK_DECISION, TECH_LEADS, l3["ts"])
        world.settle()
        world.submit_latest_view(TECH_LEAD, {"question": {"value": text_value("Which way now?")}})
        world.settle()
        [l4] = world.slack.messages(DECISIONS)
        found["l4_pending"] = l4

        world.click(DECIDER, f"{ActionId.DECISION_OPTION}_1", DECISIONS, l4["ts"])
        world.settle()
        found["l4_decided"] = world.slack.message(DECISIONS, l4["ts"])
        yield world, found


def storm_summary() -> dict[str, Any]:
    """The one message that stands for the alerts past a storm threshold of five (of eight at once)."""
    config = {**DEMO_CONFIG, "intake": {"storm_threshold": 5, "storm_window": "60s"}}
    alerts = [
        {
            "labels": {"alertname": "RowCountDrop", "job_name": f"etl-{i % 2}", "partition": f"p{i}"},
            "annotations": {"summary": f"row count dropped in partition p{i}"},
            "fingerprint": f"d0{i:014d}",
        }
        for i in range(8)
    ]
    with SandboxWorld(config=config) as world:
        world.post_alerts(alertmanager_payload(alerts))
        world.settle()
        return next(m for m in world.slack.messages(ALERTS) if "Alert storm" in m["text"])


def incident_and_l2(s: Session) -> tuple[Incident, Escalation]:
    """INC-1 and its Level 2 escalation, read in `s` (so a message composed from them reads its records)."""
    inc, esc = s.get(Incident, 1), latest_escalation(s, 1, "L2")
    assert inc is not None and esc is not None
    return inc, esc
