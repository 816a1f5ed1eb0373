"""Reading and writing an incident's own records inside a transaction: its timeline, its newest
escalation and decision, the last move people or the bot made on it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from bot.core.errors import NotFound
from bot.core.models import Level
from bot.store.tables import Decision, Escalation, Incident, TimelineEvent

# the timeline kinds that move an incident on (what "already decided by …" points at)
MOVES = (
    "acknowledged",
    "resolved",
    "escalated",
    "decision_requested",
    "decided",
    "auto_escalated",
    "alert_resolved",
)


def timeline(
    s: Session, incident_id: int, at: datetime, kind: str, actor: str | None = None, **detail: Any
) -> None:
    s.add(TimelineEvent(incident_id=incident_id, at=at, kind=kind, actor=actor, detail=detail))


def incident(s: Session, incident_id: int, *, lock: bool = False) -> Incident:
    """The incident, locked for this transaction when `lock` (a no-op on SQLite); NotFound otherwise."""
    query = select(Incident).where(Incident.id == incident_id)
    found = s.exec(query.with_for_update() if lock else query).one_or_none()
    if found is None:
        raise NotFound(f"INC-{incident_id} does not exist")
    return found


def latest_decision(s: Session, incident_id: int | None) -> Decision | None:
    """The incident's newest request for a decision."""
    query = select(Decision).where(Decision.incident_id == incident_id)
    return s.exec(query.order_by(col(Decision.id).desc())).first()


def latest_escalation(s: Session, incident_id: int | None, level: Level | str) -> Escalation | None:
    """The incident's newest escalation message at `level` (L2 or L3)."""
    wanted = level.value if isinstance(level, Level) else level
    query = select(Escalation).where(Escalation.incident_id == incident_id, Escalation.level == wanted)
    return s.exec(query.order_by(col(Escalation.id).desc())).first()


def last_move(s: Session, incident_id: int) -> TimelineEvent | None:
    query = select(TimelineEvent).where(
        TimelineEvent.incident_id == incident_id, col(TimelineEvent.kind).in_(MOVES)
    )
    return s.exec(query.order_by(col(TimelineEvent.id).desc())).first()
