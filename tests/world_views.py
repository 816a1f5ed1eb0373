"""What a test reads back from a SandboxWorld with one incident: its row, findings and timeline, and the
Level 1 report in its alert's thread."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from bot.sandbox.world import SandboxWorld
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
