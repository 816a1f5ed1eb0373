"""What a test reads back from a SandboxWorld with one incident: its row, findings and timeline, and the
Level 1 report in its alert's thread."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from bot.core.models import ActionId
from bot.sandbox.slack_driver import select_value, text_value
from bot.sandbox.world import COORDINATOR, TECH_LEAD, SandboxWorld
from bot.services.pollers import PollReport
from bot.store.tables import Incident, TimelineEvent
from tests.shown import shown


def only_incident(world: SandboxWorld) -> tuple[Incident, list[Any], list[TimelineEvent]]:
    """The world's one incident, its findings and its timeline."""
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        [inc] = s.exec(select(Incident)).all()
    return world.bot.services.queries.details(inc.id or 0)


def report(world: SandboxWorld) -> str:
    """The Level 1 report as it is shown: the one reply to the one root message in #ml-alerts."""
    [root] = world.slack.messages("#ml-alerts")
    [text] = [shown(m) for m in world.slack.thread("#ml-alerts", root["ts"])]
    return text


def jobs_polls(world: SandboxWorld) -> list[PollReport]:
    """What the failed-Jobs poller did when every poller ran once (the others find nothing here)."""
    assert world.bot is not None
    return [r for r in world.bot.pollers.poll_all() if r.poller == "kubernetes_failed_jobs"]


def escalate_to_tech_lead(world: SandboxWorld, reason: str) -> dict[str, Any]:
    """The data coordinator escalates INC-1's Level 2 message to the tech lead (scalability, `reason`);
    returns the Level 3 message."""
    [l2] = world.slack.messages("#data-coordinator")
    world.click(COORDINATOR, ActionId.ESCALATE_L3, "#data-coordinator", l2["ts"])
    world.settle()
    trigger = {"trigger": {"value": select_value("scalability")}, "reason": {"value": text_value(reason)}}
    world.submit_latest_view(COORDINATOR, trigger)
    world.settle()
    [l3] = world.slack.messages("#tech-leads")
    return l3


def open_decision_form(world: SandboxWorld) -> None:
    """The tech lead clicks *Ask for a decision* on the Level 3 message: the form is open."""
    [l3] = world.slack.messages("#tech-leads")
    world.click(TECH_LEAD, ActionId.ASK_DECISION, "#tech-leads", l3["ts"])
    world.settle()
