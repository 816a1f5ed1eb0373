"""Incident lifecycle: every transition is applied once, under a row lock, with its effects (Slack
messages through the outbox, timers, timeline) in the same transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.core.clock import Clock
from bot.core.errors import Conflict, NotAllowed, NotFound
from bot.core.models import Category, IncidentStatus, Level, StrategicTrigger
from bot.core.policy import Effect, Event, actors_for, is_allowed, is_urgent, policy_of, step
from bot.core.untrusted import scrub
from bot.integrations.slack.outbox import enqueue
from bot.metrics import Metrics
from bot.services.messages import Composer, actor_text
from bot.store.db import session_scope
from bot.store.tables import Decision, Escalation, Finding, Incident, ProcessedRequest, TimelineEvent, Timer

log = logging.getLogger(__name__)

NOTE_MAX = 3000  # a resolution note, a reason or a question: what a Slack text input holds
MOVES = (
    "acknowledged",
    "resolved",
    "escalated",
    "decision_requested",
    "decided",
    "auto_escalated",
    "alert_resolved",
)


@dataclass(frozen=True)
class Reply:
    """What the person who acted is told (ephemerally)."""

    text: str
    ok: bool = True


def timeline(
    s: Session, incident_id: int, at: datetime, kind: str, actor: str | None = None, **detail: Any
) -> None:
    s.add(TimelineEvent(incident_id=incident_id, at=at, kind=kind, actor=actor, detail=detail))


class IncidentService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        composer: Composer,
        metrics: Metrics,
        membership: Callable[[list[str]], dict[str, set[str]]],
        kick: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.composer = composer
        self.metrics = metrics
        self._membership = membership
        self._kick = kick

    # -- reading ----------------------------------------------------------------------------------------
    def get(self, incident_id: int) -> Incident:
        with Session(self.engine) as s:
            inc = s.get(Incident, incident_id)
            if inc is None:
                raise NotFound(f"INC-{incident_id} does not exist")
            return inc

    def details(self, incident_id: int) -> tuple[Incident, list[Finding], list[TimelineEvent]]:
        with Session(self.engine) as s:
            inc = s.get(Incident, incident_id)
            if inc is None:
                raise NotFound(f"INC-{incident_id} does not exist")
            findings = list(s.exec(select(Finding).where(Finding.incident_id == incident_id)))
            events = list(
                s.exec(
                    select(TimelineEvent)
                    .where(TimelineEvent.incident_id == incident_id)
                    .order_by(col(TimelineEvent.id))
                )
            )
            return inc, findings, events

    def last_move(self, s: Session, incident_id: int) -> TimelineEvent | None:
        return s.exec(
            select(TimelineEvent)
            .where(TimelineEvent.incident_id == incident_id, col(TimelineEvent.kind).in_(MOVES))
            .order_by(col(TimelineEvent.id).desc())
        ).first()

    def _conflict(self, s: Session, inc: Incident) -> Conflict:
        decided = s.exec(
            select(Decision).where(Decision.incident_id == inc.id, Decision.status == "decided")
        ).first()
        if decided is not None and decided.chosen_at is not None:
            return Conflict(
                f"Already decided by <@{decided.chosen_by}>: “{decided.chosen_label}” at "
                f"{decided.chosen_at:%H:%M} UTC (now {inc.status.replace('_', ' ')} at {inc.level}).",
                by=decided.chosen_by,
            )
        move = self.last_move(s, inc.id or 0)
        if move is None:
            return Conflict(f"INC-{inc.id} is {inc.status} at {inc.level}; nothing to do here")
        who = actor_text(move.actor)
        what = move.kind.replace("_", " ")
        return Conflict(
            f"Already decided by {who}: INC-{inc.id} was {what} at {move.at:%H:%M} UTC "
            f"(now {inc.status.replace('_', ' ')} at {inc.level}).",
            by=move.actor,
        )

    # -- authorisation ----------------------------------------------------------------------------------
    def may_act(self, inc: Incident, level: Level, user_id: str) -> bool:
        entries = actors_for(level, policy_of(inc))
        return is_allowed(user_id, entries, self._membership(entries))

    def check_allowed(self, incident_id: int, level: Level, user_id: str) -> Incident:
        inc = self.get(incident_id)
        if not self.may_act(inc, level, user_id):
            entries = actors_for(level, policy_of(inc))
            raise NotAllowed(
                f"You are not allowed to act on INC-{incident_id} at {level}: only {', '.join(entries)} may."
            )
        return inc

    def check_can_act(
        self, incident_id: int, level: Level, user_id: str, wanted: set[IncidentStatus]
    ) -> Incident:
        """Allowed, and the incident still waits at `level` in one of the `wanted` states."""
        inc = self.check_allowed(incident_id, level, user_id)
        if inc.level != level.value or IncidentStatus(inc.status) not in wanted:
            with Session(self.engine) as s:
                raise self._conflict(s, inc)
        return inc

    # -- the one way a transition happens ----------------------------------------------------------------
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
            inc = s.exec(select(Incident).where(Incident.id == incident_id).with_for_update()).one_or_none()
            if inc is None:
                raise NotFound(f"INC-{incident_id} does not exist")
            if at_level is not None and inc.level != at_level.value:
                raise self._conflict(s, inc)
            policy = policy_of(inc)
            before = Level(inc.level)
            try:
                nxt = step(
                    before, IncidentStatus(inc.status), event, policy, now, urgent=is_urgent(inc.labels)
                )
            except Conflict:
                raise self._conflict(s, inc) from None
            inc.level, inc.status = nxt.level.value, nxt.status.value
            inc.version += 1
            inc.updated_at = now
            if apply:
                apply(s, inc)
            kind = _timeline_kind(event, actor)
            timeline(s, incident_id, now, kind, actor, level=inc.level, **detail)
            if nxt.status is IncidentStatus.RESOLVED:
                inc.resolved_at, inc.resolved_level = now, inc.level
                inc.resolved_by = inc.resolved_by or actor
                self.metrics.incidents_resolved.labels(level=inc.level).inc()
            s.add(inc)
            s.flush()
            self._carry_out(s, inc, before, nxt.effects, event, actor, now, detail)
        self._kick()
        return inc

    def _carry_out(
        self,
        s: Session,
        inc: Incident,
        before: Level,
        effects: tuple[Effect, ...],
        event: Event,
        actor: str | None,
        now: datetime,
        detail: dict[str, Any],
    ) -> None:
        for effect in effects:
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
                self._update_message(s, inc, before, event, actor, now, detail)
            elif effect.kind == "post_escalation" and effect.level:
                self._post_escalation(s, inc, effect.level, actor, now, detail)
            elif effect.kind == "post_decision":
                self._post_decision(s, inc, actor, now, detail)
            elif effect.kind == "start_timer" and effect.timer and effect.due_at and effect.level:
                s.add(
                    Timer(
                        incident_id=inc.id,
                        kind=effect.timer,
                        due_at=effect.due_at,
                        payload={"level": effect.level.value},
                        created_at=now,
                    )
                )
            elif effect.kind == "run_action":
                s.add(
                    Timer(
                        incident_id=inc.id, kind="decision_action", due_at=now, payload=detail, created_at=now
                    )
                )

    def _update_message(
        self,
        s: Session,
        inc: Incident,
        before: Level,
        event: Event,
        actor: str | None,
        now: datetime,
        detail: dict[str, Any],
    ) -> None:
        """Rewrite the message of the level the incident was at: the outcome replaces the used buttons."""
        c = self.composer
        if event is Event.ACK:
            line = c.outcome("acknowledged", actor, now)
        elif event is Event.RESOLVE:
            line = c.outcome("resolved", actor, now, note=detail.get("note"))
        elif event in (Event.ESCALATE, Event.ACK_TIMEOUT, Event.ASK_DECISION):
            to = {Level.L2: "the tech lead", Level.L3: "a decision"}.get(before, "the next level")
            note = detail.get("reason") or detail.get("note")
            if detail.get("trigger"):
                note = f"{StrategicTrigger(detail['trigger']).label}: {note}"
            if event is Event.ASK_DECISION:
                line = c.outcome("decision_requested", actor, now, note=note)
            else:
                line = c.outcome("escalated", actor, now, to=to, note=note)
        elif event is Event.DECIDE:
            line = c.outcome(
                "decided", actor, now, choice=detail.get("choice", ""), note=detail.get("rationale")
            )
        else:
            line = c.outcome(event.value, actor, now)
        if before is Level.L4:
            dec = s.exec(
                select(Decision).where(Decision.incident_id == inc.id).order_by(col(Decision.id).desc())
            ).first()
            if dec is not None and dec.outbox_id:
                payload = c.decision(inc, dec, line)
                enqueue(s, now, "update", incident_id=inc.id, target_of=dec.outbox_id, **payload)
            return
        esc = s.exec(
            select(Escalation)
            .where(Escalation.incident_id == inc.id, Escalation.level == before.value)
            .order_by(col(Escalation.id).desc())
        ).first()
        if esc is None or not esc.outbox_id:
            return
        esc.outcome = "\n".join(filter(None, [esc.outcome if event is not Event.ACK else None, line]))
        if event is Event.ACK:
            esc.outcome = line
        s.add(esc)
        payload = c.escalation(inc, esc, IncidentStatus(inc.status), esc.outcome)
        enqueue(s, now, "update", incident_id=inc.id, target_of=esc.outbox_id, **payload)

    def _post_escalation(
        self,
        s: Session,
        inc: Incident,
        level: Level,
        actor: str | None,
        now: datetime,
        detail: dict[str, Any],
    ) -> None:
        policy = policy_of(inc)
        fields = dict(inc.fields)
        if level is Level.L3:
            why = detail.get("reason") or "not acknowledged in time"
            who = "the bot" if actor is None else "the data coordinator"
            fields["attempted"] = f"{fields.get('attempted', '')} Level 2: {who} escalated: {why}".strip()
        esc = Escalation(
            incident_id=inc.id or 0,
            level=level.value,
            channel=policy.channel_for(level),
            fields=fields,
            trigger=detail.get("trigger"),
            reason=detail.get("reason"),
            escalated_by=actor,
            at=now,
        )
        s.add(esc)
        s.flush()
        payload = self.composer.escalation(inc, esc, IncidentStatus(inc.status))
        row = enqueue(s, now, "post", incident_id=inc.id, channel=esc.channel, **payload)
        esc.outbox_id = row.id
        s.add(esc)
        inc.fields = fields
        self.metrics.escalations.labels(level=level.value).inc()

    def _post_decision(
        self, s: Session, inc: Incident, actor: str | None, now: datetime, detail: dict[str, Any]
    ) -> None:
        policy = policy_of(inc)
        template = policy.decision_template
        options = [dict(o) for o in template.get("options", [])]
        question = (
            detail.get("question") or template.get("question") or f"How should we proceed with INC-{inc.id}?"
        )
        context = detail.get("context") or inc.fields.get("problem", "")
        dec = Decision(
            incident_id=inc.id or 0,
            question=question,
            options=options,
            context=context,
            requested_by=actor,
            created_at=now,
            expires_at=now + timedelta(seconds=policy.decision_expiry_s),
        )
        s.add(dec)
        s.flush()
        payload = self.composer.decision(inc, dec)
        row = enqueue(s, now, "post", incident_id=inc.id, channel=policy.channel_for(Level.L4), **payload)
        dec.outbox_id = row.id
        s.add(dec)
        self.metrics.escalations.labels(level="L4").inc()

    # -- what people do ---------------------------------------------------------------------------------
    def acknowledge(self, incident_id: int, level: Level, user_id: str) -> Reply:
        self.check_allowed(incident_id, level, user_id)

        def apply(_s: Session, inc: Incident) -> None:
            inc.acked_by, inc.acked_at = user_id, self.clock.now()

        self.transition(incident_id, Event.ACK, user_id, at_level=level, apply=apply)
        return Reply(f"You acknowledged INC-{incident_id} at {level}.")

    def resolve(self, incident_id: int, level: Level, user_id: str, note: str) -> Reply:
        note = note_text(note)
        self.check_allowed(incident_id, level, user_id)

        def apply(_s: Session, inc: Incident) -> None:
            inc.resolved_by, inc.resolution_note = user_id, note

        self.transition(incident_id, Event.RESOLVE, user_id, at_level=level, apply=apply, note=note)
        return Reply(f"INC-{incident_id} is resolved at {level}. Your note is recorded for next time.")

    def escalate_to_l3(self, incident_id: int, user_id: str, trigger: StrategicTrigger, reason: str) -> Reply:
        reason = note_text(reason)
        self.check_allowed(incident_id, Level.L2, user_id)
        self.transition(
            incident_id,
            Event.ESCALATE,
            user_id,
            at_level=Level.L2,
            trigger=trigger.value,
            reason=reason or trigger.label,
        )
        return Reply(f"INC-{incident_id} is escalated to the tech lead ({trigger.label}).")

    def ask_decision(self, incident_id: int, user_id: str, question: str, context: str) -> Reply:
        question, context = note_text(question), note_text(context)
        self.check_allowed(incident_id, Level.L3, user_id)
        self.transition(
            incident_id,
            Event.ASK_DECISION,
            user_id,
            at_level=Level.L3,
            question=question,
            context=context,
            note=question,
        )
        return Reply(f"A decision is requested for INC-{incident_id}.")

    def decide(self, decision_id: int, option_index: int, user_id: str) -> tuple[Reply, Decision]:
        with Session(self.engine) as s:
            dec = s.get(Decision, decision_id)
            if dec is None:
                raise NotFound(f"decision {decision_id} does not exist")
        if not 0 <= option_index < len(dec.options):
            raise NotFound(f"decision {decision_id} has no option {option_index + 1}")
        self.check_allowed(dec.incident_id, Level.L4, user_id)
        option = dec.options[option_index]

        def apply(s: Session, inc: Incident) -> None:
            row = s.exec(select(Decision).where(Decision.id == decision_id).with_for_update()).one()
            if row.status != "pending":
                raise Conflict(f"Already decided by <@{row.chosen_by}>: {row.chosen_label}", by=row.chosen_by)
            row.status, row.chosen_index, row.chosen_label = "decided", option_index, option["label"]
            row.chosen_by, row.chosen_at = user_id, self.clock.now()
            s.add(row)
            dec.status, dec.chosen_label, dec.chosen_by = row.status, row.chosen_label, row.chosen_by

        self.transition(
            dec.incident_id,
            Event.DECIDE,
            user_id,
            at_level=Level.L4,
            apply=apply,
            choice=option["label"],
            decision_id=decision_id,
            option=option_index,
            action=option.get("action"),
        )
        return Reply(f"Recorded: {option['label']}."), dec

    def add_rationale(self, decision_id: int, user_id: str, rationale: str) -> Reply:
        rationale = note_text(rationale)
        now = self.clock.now()
        with session_scope(self.engine) as s:
            dec = s.exec(select(Decision).where(Decision.id == decision_id).with_for_update()).one_or_none()
            if dec is None:
                raise NotFound(f"decision {decision_id} does not exist")
            if dec.chosen_by != user_id:
                raise NotAllowed("Only the person who decided can record why.")
            dec.rationale = rationale
            s.add(dec)
            inc = s.get(Incident, dec.incident_id)
            assert inc is not None
            timeline(s, dec.incident_id, now, "rationale", user_id, rationale=rationale)
            if dec.outbox_id:
                line = self.composer.outcome(
                    "decided", user_id, dec.chosen_at or now, choice=dec.chosen_label or "", note=rationale
                )
                enqueue(
                    s,
                    now,
                    "update",
                    incident_id=inc.id,
                    target_of=dec.outbox_id,
                    **self.composer.decision(inc, dec, line),
                )
        self._kick()
        return Reply("Thanks: the reason is recorded with the decision.")

    def reply(self, channel: str | None, user_id: str, text: str, incident_id: int | None = None) -> None:
        """Tell one person something, ephemerally, through the outbox."""
        if not channel:
            return
        with session_scope(self.engine) as s:
            enqueue(s, self.clock.now(), "ephemeral", channel=channel, user=user_id, text=text)
        self._kick()

    def post(self, channel: str, text: str, thread_ts: str | None = None) -> None:
        """Post a message that belongs to no incident (e.g. help in reply to a mention)."""
        with session_scope(self.engine) as s:
            enqueue(
                s, self.clock.now(), "post", channel=channel, thread_ts=thread_ts, **self.composer.plain(text)
            )
        self._kick()

    def was_processed(self, key: str) -> bool:
        with Session(self.engine) as s:
            found = s.exec(select(ProcessedRequest.id).where(ProcessedRequest.key == key[:255])).first()
            return found is not None

    def claim_request(self, key: str) -> bool:
        """Record an inbound delivery key; False when it was recorded before (a retry or a duplicate)."""
        try:
            with session_scope(self.engine) as s:
                s.add(ProcessedRequest(key=key[:255], at=self.clock.now()))
        except IntegrityError:
            return False
        return True

    def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        with session_scope(self.engine) as s:
            enqueue(s, self.clock.now(), "view", trigger_id=trigger_id, view=view)
        self._kick()

    # -- lists for commands -----------------------------------------------------------------------------
    def open_incidents(self, limit: int = 20) -> list[Incident]:
        with Session(self.engine) as s:
            return list(
                s.exec(
                    select(Incident)
                    .where(Incident.status != IncidentStatus.RESOLVED.value)
                    .order_by(col(Incident.id).desc())
                    .limit(limit)
                )
            )

    def stats(self) -> dict[str, Any]:
        with Session(self.engine) as s:
            rows = list(s.exec(select(Incident.level, Incident.status)))
        total = len(rows)
        resolved = [lvl for lvl, st in rows if st == IncidentStatus.RESOLVED.value]
        l1 = sum(1 for lvl in resolved if lvl == "L1")
        beyond = [r for r in rows if r[0] != "L1"]
        l2 = sum(1 for lvl in resolved if lvl == "L2")
        l4 = sum(1 for lvl, _ in rows if lvl == "L4")

        def pct(a: int, b: int) -> int:
            return round(100 * a / b) if b else 0

        return {
            "total": total,
            "resolved": len(resolved),
            "l1_pct": pct(l1, total),
            "l2_pct": pct(l2, len(beyond)),
            "l4_pct": pct(l4, total),
        }


def note_text(text: str) -> str:
    """What a person typed, as it is stored and shown: cleaned, redacted and of a sensible length."""
    return str(scrub(text or "")).strip()[:NOTE_MAX]


def _timeline_kind(event: Event, actor: str | None) -> str:
    return {
        Event.L1_FIXED: "resolved",
        Event.L1_FAILED: "escalated",
        Event.ACK: "acknowledged",
        Event.RESOLVE: "resolved",
        Event.ESCALATE: "escalated",
        Event.ASK_DECISION: "decision_requested",
        Event.ACK_TIMEOUT: "auto_escalated",
        Event.DECIDE: "decided",
        Event.ALERT_RESOLVED: "alert_resolved",
    }[event]


def category_of(inc: Incident) -> Category:
    return Category(inc.category)
