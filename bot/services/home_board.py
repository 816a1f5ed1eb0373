"""What the App Home tab shows, read once for everyone whose tab is refreshed: the incidents waiting on
someone (not yet acknowledged at L2 or L3, or a decision pending at L4) with who may act on each, the
open incidents by level, and this week's rates; then each person's board picked from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from bot.core.models import Category, IncidentStatus, Level
from bot.core.policy import actors_for, is_allowed, policy_of
from bot.integrations.slack.home_view import OLDEST_SHOWN, HomeBoard, HomeIncident, LevelCount
from bot.services.queries import IncidentQueries
from bot.store.tables import Decision, Escalation, Incident

WEEK = timedelta(days=7)
WAITING = (IncidentStatus.OPEN.value, IncidentStatus.DECISION_PENDING.value)


@dataclass(frozen=True)
class Waiting:
    """An incident waiting for someone to acknowledge it or decide, and who may (app.yaml's entries)."""

    item: HomeIncident
    actors: tuple[str, ...]


@dataclass(frozen=True)
class Snapshot:
    waiting: list[Waiting]  # oldest first
    levels: list[LevelCount]
    week: dict[str, Any]

    def actors(self) -> list[str]:
        """Every handle, group or user named as an actor of a waiting incident."""
        return sorted({entry for w in self.waiting for entry in w.actors})

    def board_for(self, user_id: str, members: Mapping[str, set[str]]) -> HomeBoard:
        """`user_id`'s board: what waits on them (by `members` of the actors' groups), and the rest."""
        mine = [w.item for w in self.waiting if is_allowed(user_id, list(w.actors), members)]
        if mine or is_allowed(user_id, self.actors(), members):
            return HomeBoard(waiting=mine, levels=self.levels, week=self.week)
        # someone outside the escalation chain sees how many, not which (Details would refuse them too)
        counts = [replace(level, oldest=[]) for level in self.levels]
        return HomeBoard(waiting=mine, levels=counts, week=self.week)


def read_snapshot(engine: Engine, queries: IncidentQueries, now: datetime) -> Snapshot:
    with Session(engine) as s:
        waiting = _waiting(s)
        levels = _levels(s)
    return Snapshot(waiting=waiting, levels=levels, week=queries.stats(since=now - WEEK))


def _waiting(s: Session) -> list[Waiting]:
    incidents = list(s.exec(select(Incident).where(col(Incident.status).in_(WAITING))))
    ids = [inc.id for inc in incidents]
    escalated = {
        (incident_id, level): at
        for incident_id, level, at in s.exec(
            select(Escalation.incident_id, Escalation.level, func.max(Escalation.at))
            .where(col(Escalation.incident_id).in_(ids))
            .group_by(col(Escalation.incident_id), col(Escalation.level))
        )
    }
    pending = select(Decision).where(col(Decision.incident_id).in_(ids), Decision.status == "pending")
    asked = {d.incident_id: d for d in s.exec(pending.order_by(col(Decision.id)))}  # the newest wins
    found = []
    for inc in incidents:
        level = Level(inc.level)
        decision = asked.get(inc.id or 0) if inc.status == IncidentStatus.DECISION_PENDING.value else None
        if decision is not None:
            since, event, question = decision.created_at, "asked", decision.question
        else:
            since, event, question = escalated.get((inc.id or 0, inc.level), inc.updated_at), "escalated", ""
        item = _item(inc, since, event, question)
        found.append(Waiting(item, tuple(actors_for(level, policy_of(inc)))))
    return sorted(found, key=lambda w: (w.item.since, w.item.id))


def _levels(s: Session) -> list[LevelCount]:
    still_open = Incident.status != IncidentStatus.RESOLVED.value
    counts = dict(
        s.exec(select(Incident.level, func.count()).where(still_open).group_by(col(Incident.level))).all()
    )
    rows = []
    for level in Level:
        count = int(counts.get(level.value, 0))
        oldest: list[HomeIncident] = []
        if count:
            query = select(Incident).where(still_open, Incident.level == level.value)
            query = query.order_by(col(Incident.opened_at), col(Incident.id)).limit(OLDEST_SHOWN)
            oldest = [_item(inc, inc.opened_at, "opened") for inc in s.exec(query)]
        rows.append(LevelCount(level.value, count, oldest))
    return rows


def _item(inc: Incident, since: datetime, event: str, question: str = "") -> HomeIncident:
    try:
        category = Category(inc.category).label
    except ValueError:  # a category a newer release stored
        category = inc.category
    return HomeIncident(inc.id or 0, inc.level, category, inc.title, since, event, question)
