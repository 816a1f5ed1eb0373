"""Snooze: someone at L2 or L3 says "not now" for a while. The incident's reminder and deadline at that
level wait as long (what was left of each is kept), the message says who snoozed it and until when, and
it resumes by itself. Authorised like the level's other buttons."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from sqlmodel import col, select

from bot.core.clock import Clock
from bot.core.errors import Conflict, InputError
from bot.core.models import IncidentStatus, Level
from bot.core.policy import is_urgent
from bot.services.engine import IncidentEngine
from bot.services.incidents import IncidentService, Reply
from bot.services.messages import fmt_time
from bot.services.records import incident, latest_escalation, timeline
from bot.store.db import session_scope
from bot.store.tables import Timer

MAX_SNOOZE = timedelta(hours=24)  # after its escalation, no snooze ends later than this
CHOICES = {"30m": "30 minutes", "1h": "1 hour", "4h": "4 hours", "tomorrow": "tomorrow 09:00"}
PAUSED = ("ack_reminder", "ack_deadline")


def until(choice: str, now: datetime, offset_s: int) -> datetime:
    """When a snooze of `choice` ends, for someone `offset_s` seconds east of UTC."""
    if choice == "30m":
        return now + timedelta(minutes=30)
    if choice == "1h":
        return now + timedelta(hours=1)
    if choice == "4h":
        return now + timedelta(hours=4)
    if choice == "tomorrow":
        local = now.astimezone(timezone(timedelta(seconds=offset_s)))
        nine = (local + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
        return nine.astimezone(UTC)
    raise InputError("until", f"choose one of: {', '.join(CHOICES.values())}")


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} hours"


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class Snoozes:
    def __init__(
        self,
        incidents: IncidentService,
        transitions: IncidentEngine,
        clock: Clock,
        tz_offset: Callable[[str], int],
        kick: Callable[[], None],
    ) -> None:
        self.incidents = incidents
        self.transitions = transitions
        self.clock = clock
        self._tz_offset = tz_offset
        self._kick = kick

    def snooze(self, incident_id: int, level: Level, user_id: str, choice: str) -> Reply:
        inc = self.incidents.check_can_act(incident_id, level, user_id, {IncidentStatus.OPEN})
        if is_urgent(inc.labels):
            raise Conflict(f"INC-{incident_id} puts a model deployment at risk: it cannot be snoozed.")
        now = self.clock.now()
        end = until(choice, now, self._tz_offset(user_id) if choice == "tomorrow" else 0)
        with session_scope(self.transitions.engine) as s:
            inc = incident(s, incident_id, lock=True)
            if inc.level != level.value or inc.status != IncidentStatus.OPEN.value:
                raise self.transitions.conflict(s, inc)
            esc = latest_escalation(s, incident_id, level)
            latest = _utc(esc.at if esc else now) + MAX_SNOOZE
            if end > latest:
                raise Conflict(
                    f"INC-{incident_id} can be snoozed until {fmt_time(latest)} at the latest "
                    f"({_hours(MAX_SNOOZE)} after it was escalated); choose a shorter snooze."
                )
            paused = s.exec(
                select(Timer).where(
                    col(Timer.incident_id) == incident_id,
                    col(Timer.status) == "pending",
                    col(Timer.kind).in_(PAUSED),
                )
            ).all()
            for timer in paused:
                # what was left of it when it was first snoozed: a new snooze replaces the last one
                payload = dict(timer.payload or {})
                left = float(
                    payload.setdefault("left_s", max(0.0, (_utc(timer.due_at) - now).total_seconds()))
                )
                timer.payload = payload
                timer.due_at = end + timedelta(seconds=left)
                s.add(timer)
            timeline(s, incident_id, now, "snoozed", user_id, level=level.value, until=end.isoformat())
            line = self.transitions.composer.outcome("snoozed", user_id, now, to=fmt_time(end))
            self.transitions.refresh.level(s, inc, now, level=level, outcome=line)
        self._kick()
        return Reply(f"INC-{incident_id} is snoozed until {fmt_time(end)}; its reminders wait until then.")
