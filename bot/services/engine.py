"""The incident engine: every transition is applied once, under a row lock, with its effects (Slack
messages through the outbox, timers, timeline) in the same transaction. Who may ask for a transition is
decided before, in `IncidentService`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col

from bot.core.clock import Clock
from bot.core.errors import Conflict
from bot.core.models import IncidentStatus, Level, StrategicTrigger
from bot.core.policy import Effect, Event, is_urgent, policy_of, step
from bot.integrations.slack.outbox import enqueue
from bot.metrics import Metrics
from bot.render import escape
from bot.services import decision_drafts, group_pages, grouping, learning
from bot.services.changes import IncidentChanges
from bot.services.messages import Composer, actor_text
from bot.services.records import incident, last_move, latest_decision, timeline
from bot.services.refresh import MessageRefresh
from bot.store.db import session_scope
from bot.store.tables import Decision, Escalation, Incident, Timer

log = logging.getLogger(__name__)

_TIMELINE_KIND = {
    Event.L1_FIXED: "resolved",
    Event.L1_FAILED: "escalated",
    Event.ACK: "acknowledged",
    Event.RESOLVE: "resolved",
    Event.ESCALATE: "escalated",
    Event.ASK_DECISION: "decision_requested",
    Event.ACK_TIMEOUT: "auto_escalated",
    Event.DECIDE: "decided",
    Event.ALERT_RESOLVED: "alert_resolved",
}
_NEXT_NAME = {Level.L2: "the tech lead", Level.L3: "a decision"}


class IncidentEngine:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        composer: Composer,
        refresh: MessageRefresh,
        metrics: Metrics,
        kick: Callable[[], None],
        changes: IncidentChanges | None = None,
    ) -> None:
        self.changes = changes or IncidentChanges()
        self.engine = engine
        self.clock = clock
        self.composer = composer
        self.refresh = refresh
        self.metrics = metrics
        self._kick = kick
        # a language model drafts Level 4 decisions (bot.services.decision_drafts): set by bot.app
        self.drafts_decisions = False

    def get(self, incident_id: int) -> Incident:
        with Session(self.engine) as s:
            return incident(s, incident_id)

    def conflict(self, s: Session, inc: Incident) -> Conflict:
        """Why a move no longer applies: who made the move that came first, and where the incident is."""
        now_at = f"(now {inc.status.replace('_', ' ')} at {inc.level})"
        decided = latest_decision(s, inc.id)
        if decided is not None and decided.status == "decided" and decided.chosen_at is not None:
            return Conflict(
                f"Already decided by <@{decided.chosen_by}>: “{escape(str(decided.chosen_label))}” at "
                f"{decided.chosen_at:%H:%M} UTC {now_at}.",
                by=decided.chosen_by,
            )
        if inc.status == IncidentStatus.DECISION_PENDING.value:  # nothing was decided: say where it waits
            where = policy_of(inc).channel_for(Level.L4)
            return Conflict(
                f"INC-{inc.id} waits for a decision in {where}: choose one of its options there {now_at}."
            )
        move = last_move(s, inc.id or 0)
        if move is None:
            return Conflict(f"INC-{inc.id} is {inc.status} at {inc.level}; nothing to do here")
        what = move.kind.replace("_", " ")
        return Conflict(
            f"Already decided by {actor_text(move.actor)}: INC-{inc.id} was {what} at {move.at:%H:%M} UTC "
            f"{now_at}.",
            by=move.actor,
        )

    def transition(
        self,
        incident_id: int,
        event: Event,
        actor: str | None,
        *,
        at_level: Level | None = None,
        apply: Callable[[Session, Incident], None] | None = None,
        **detail: Any,
    ) -> Incident:
        """Apply `event` once: lock the row, check it still applies, record it and carry out its effects."""
        now = self.clock.now()
        with session_scope(self.engine) as s:
            inc = incident(s, incident_id, lock=True)
            if at_level is not None and inc.level != at_level.value:
                raise self.conflict(s, inc)
            policy = policy_of(inc)
            before = Level(inc.level)
            try:
                nxt = step(
                    before, IncidentStatus(inc.status), event, policy, now, urgent=is_urgent(inc.labels)
                )
            except Conflict:
                raise self.conflict(s, inc) from None
            inc.level, inc.status = nxt.level.value, nxt.status.value
            inc.version += 1
            inc.updated_at = now
            if apply:
                apply(s, inc)
            timeline(s, incident_id, now, _TIMELINE_KIND[event], actor, level=inc.level, **detail)
            if nxt.status is IncidentStatus.RESOLVED:
                inc.resolved_at, inc.resolved_level = now, inc.level
                inc.resolved_by = inc.resolved_by or actor
                self.metrics.incidents_resolved.labels(level=inc.level).inc()
                learning.record(s, inc, now, note=detail.get("note"))  # kept for the next similar one
            s.add(inc)
            s.flush()
            for effect in nxt.effects:
                self._carry_out(s, inc, before, effect, event, actor, now, detail)
        self._kick()
        self.changes.changed(incident_id)  # committed: whoever shows incidents elsewhere (App Home)
        return inc

    def _carry_out(
        self,
        s: Session,
        inc: Incident,
        before: Level,
        effect: Effect,
        event: Event,
        actor: str | None,
        now: datetime,
        detail: dict[str, Any],
    ) -> None:
        if effect.kind == "cancel_timers":
            s.execute(
                update(Timer)
                .where(
                    col(Timer.incident_id) == inc.id,
                    col(Timer.status) == "pending",
                    col(Timer.kind).notin_(("run_l1", "decision_action")),
                )
                .values(status="cancelled")
            )
        elif effect.kind == "update_message":
            # the outcome replaces the used buttons on the message of the level the incident was at
            line = self._outcome(event, before, actor, now, detail)
            self.refresh.level(s, inc, now, level=before, outcome=line, replace=event is Event.ACK)
        elif effect.kind == "post_escalation" and effect.level:
            self._post_escalation(s, inc, effect.level, actor, now, detail)
        elif effect.kind == "post_decision":
            self._post_decision(s, inc, actor, now, detail)
        elif effect.kind == "start_timer" and effect.timer and effect.due_at and effect.level:
            payload = {"level": effect.level.value}
            s.add(
                Timer(
                    incident_id=inc.id,
                    kind=effect.timer,
                    due_at=effect.due_at,
                    payload=payload,
                    created_at=now,
                )
            )
        elif effect.kind == "run_action":
            s.add(
                Timer(incident_id=inc.id, kind="decision_action", due_at=now, payload=detail, created_at=now)
            )

    def _outcome(
        self, event: Event, before: Level, actor: str | None, now: datetime, detail: dict[str, Any]
    ) -> str:
        c = self.composer
        if event is Event.ACK:
            return c.outcome("acknowledged", actor, now)
        if event is Event.RESOLVE:
            return c.outcome("resolved", actor, now, note=detail.get("note"))
        if event in (Event.ESCALATE, Event.ACK_TIMEOUT, Event.ASK_DECISION):
            note = detail.get("reason") or detail.get("note")
            if detail.get("trigger"):
                note = f"{StrategicTrigger(detail['trigger']).label}: {note}"
            if event is Event.ASK_DECISION:
                return c.outcome("decision_requested", actor, now, note=note)
            return c.outcome("escalated", actor, now, to=_NEXT_NAME.get(before, "the next level"), note=note)
        return c.outcome(event.value, actor, now)

    def _post_escalation(
        self,
        s: Session,
        inc: Incident,
        level: Level,
        actor: str | None,
        now: datetime,
        detail: dict[str, Any],
    ) -> None:
        fields = dict(inc.fields)
        if level is Level.L3:
            why = detail.get("reason") or "not acknowledged in time"
            who = "the bot" if actor is None else "the data coordinator"
            fields["attempted"] = f"{fields.get('attempted', '')} Level 2: {who} escalated: {why}".strip()
        esc = Escalation(
            incident_id=inc.id or 0,
            level=level.value,
            channel=policy_of(inc).channel_for(level),
            fields=fields,
            trigger=detail.get("trigger"),
            reason=detail.get("reason"),
            escalated_by=actor,
            at=now,
        )
        at, together = self.refresh.grouping()
        group = grouping.join(s, inc, level, esc.channel, now, self.refresh.storm_window(), together, at)
        esc.group_id = group.id if group is not None else None
        s.add(esc)
        s.flush()
        if group is not None:
            # at once: while an update of it waits in the outbox, that update is rewritten instead
            grouping.show(s, self.composer, group, now, None)
        if group is None:
            payload = self.composer.escalation(inc, esc, IncidentStatus(inc.status))
            esc.outbox_id = enqueue(s, now, "post", incident_id=inc.id, channel=esc.channel, **payload).id
        else:  # on a page of the group's thread, without a mention: the group's message did the mentioning
            group_pages.add_member(s, self.composer, group, esc, now)
        s.add(esc)
        inc.fields = fields
        self.metrics.escalations.labels(level=level.value).inc()

    def _post_decision(
        self, s: Session, inc: Incident, actor: str | None, now: datetime, detail: dict[str, Any]
    ) -> None:
        policy = policy_of(inc)
        template = policy.decision_template
        question = (
            detail.get("question") or template.get("question") or f"How should we proceed with INC-{inc.id}?"
        )
        dec = Decision(
            incident_id=inc.id or 0,
            question=question,
            options=[dict(o) for o in template.get("options", [])],
            context=detail.get("context") or inc.fields.get("problem", ""),
            requested_by=actor,
            created_at=now,
            expires_at=now + timedelta(seconds=policy.decision_expiry_s),
        )
        s.add(dec)
        s.flush()
        channel = policy.channel_for(Level.L4)
        group = grouping.join_decision(s, inc, channel, now)
        if group is not None:  # escalated together at L3: one decision for all, each one's in its thread
            esc = Escalation(incident_id=inc.id or 0, level=Level.L4.value, channel=channel, at=now)
            esc.fields, esc.group_id, esc.escalated_by = dict(inc.fields), group.id, actor
            s.add(esc)
            s.flush()
            grouping.show(s, self.composer, group, now, None)
            group_pages.add_member(s, self.composer, group, esc, now)
        elif self.drafts_decisions:  # posted once Claude drafted it, or with the template when it cannot
            decision_drafts.schedule(s, dec, now)
        else:
            dec.options = decision_drafts.rule_based(dec.options, decision_drafts.NO_KEY_SAYS)
            payload = self.composer.decision(inc, dec)
            dec.outbox_id = enqueue(s, now, "post", incident_id=inc.id, channel=channel, **payload).id
        s.add(dec)
        self.metrics.escalations.labels(level="L4").inc()
