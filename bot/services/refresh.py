"""Keeping an incident's Slack messages true to it: the root alert message (at most once per debounce
interval) and the message of the level it waits at. Both go through the outbox, in the caller's
transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.core.models import IncidentStatus, Level
from bot.integrations.slack.outbox import enqueue
from bot.services import group_pages, grouping
from bot.services.messages import Composer
from bot.services.records import latest_decision, latest_escalation
from bot.services.storm import refresh_message, refresh_summary
from bot.store.tables import Decision, Incident


class MessageRefresh:
    def __init__(
        self,
        composer: Composer,
        debounce: Callable[[], timedelta],
        storm_window: Callable[[], timedelta] = lambda: timedelta(seconds=60),
        grouping: Callable[[], tuple[int, timedelta]] = lambda: (3, timedelta(minutes=30)),
    ) -> None:
        self.composer = composer
        self._debounce = debounce
        self.storm_window = storm_window
        self.grouping = grouping  # (intake.group_at, intake.group_window)

    def debounce(self) -> timedelta:
        """How long a message that changes often waits between refreshes (intake.debounce)."""
        return self._debounce()

    def root(self, s: Session, inc: Incident, now: datetime, *, immediate: bool) -> None:
        """Show the incident's state on its root message: now, or at most once per debounce interval."""
        if inc.storm_id is not None:  # its root is the storm summary: it counts this incident's category
            refresh_summary(s, self.composer, inc.storm_id, now, None if immediate else self._debounce())
            return
        if not inc.alert_outbox_id:
            return  # its root is another bot's message
        queued = refresh_message(
            s,
            now,
            post_id=inc.alert_outbox_id,
            update_id=inc.root_update_outbox_id,
            last=inc.message_updated_at or inc.opened_at,
            wait=None if immediate else self._debounce(),
            payload=self.composer.alert_message(inc),
        )
        if queued is not None:
            inc.root_update_outbox_id, inc.message_updated_at = queued
            s.add(inc)

    def level(
        self,
        s: Session,
        inc: Incident,
        now: datetime,
        *,
        level: Level | None = None,
        outcome: str | None = None,
        replace: bool = False,
    ) -> None:
        """Re-render the message of `level` (by default the one the incident waits at). An escalation's
        `outcome` line is added to what it already says, or `replace`s it; a decision shows its choice."""
        level = level or Level(inc.level)
        if level is Level.L4:
            member = latest_escalation(s, inc.id, Level.L4)
            group = grouping.group_of(s, member) if member is not None else None
            if member is not None and group is not None and member.outbox_id:  # one of a group's decision
                grouping.show(s, self.composer, group, now, None)
                group_pages.show_page(s, self.composer, group, member.outbox_id, now)
                return
            dec = latest_decision(s, inc.id)
            if dec is not None and dec.outbox_id:
                payload = self.composer.decision(inc, dec, decided_line(self.composer, dec, now))
                enqueue(s, now, "update", incident_id=inc.id, target_of=dec.outbox_id, **payload)
            return
        esc = latest_escalation(s, inc.id, level)
        if esc is None or not esc.outbox_id:
            return
        if outcome:
            esc.outcome = outcome if replace else "\n".join(filter(None, [esc.outcome, outcome]))
            s.add(esc)
        group = grouping.group_of(s, esc)
        if group is not None:  # a member: the group's count, and its page of the group's thread
            grouping.show(s, self.composer, group, now, None)
            if esc.on_page:
                group_pages.show_page(s, self.composer, group, esc.outbox_id, now)
                return
        payload = self.composer.escalation(inc, esc, IncidentStatus(inc.status), esc.outcome)
        enqueue(s, now, "update", incident_id=inc.id, target_of=esc.outbox_id, **payload)


def decided_line(composer: Composer, dec: Decision, now: datetime) -> str | None:
    """What a decision message says once someone chose: who, what, when and why."""
    if dec.status != "decided":
        return None
    return composer.outcome(
        "decided", dec.chosen_by, dec.chosen_at or now, choice=dec.chosen_label or "", note=dec.rationale
    )
