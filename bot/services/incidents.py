"""What people do to an incident from Slack, and whether they may: acknowledge, resolve, escalate, ask
for a decision, decide and say why. Each is one transition of the `IncidentEngine`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session, select

from bot.core.clock import Clock
from bot.core.errors import Conflict, NotAllowed, NotFound
from bot.core.models import IncidentStatus, Level, StrategicTrigger
from bot.core.policy import Event, actors_for, is_allowed, policy_of
from bot.core.untrusted import scrub
from bot.render import escape
from bot.services import learning
from bot.services.engine import IncidentEngine
from bot.services.records import timeline
from bot.store.db import session_scope
from bot.store.tables import Decision, Incident

NOTE_MAX = 3000  # a resolution note, a reason or a question: what a Slack text input holds


@dataclass(frozen=True)
class Reply:
    """What the person who acted is told (ephemerally)."""

    text: str
    ok: bool = True


def note_text(text: str) -> str:
    """What a person typed, as it is stored and shown: cleaned, redacted and of a sensible length."""
    return str(scrub(text or "")).strip()[:NOTE_MAX]


class IncidentService:
    def __init__(
        self,
        transitions: IncidentEngine,
        clock: Clock,
        membership: Callable[[list[str]], dict[str, set[str]]],
        kick: Callable[[], None],
    ) -> None:
        self.transitions = transitions
        self.clock = clock
        self._membership = membership
        self._kick = kick

    # -- authorisation ----------------------------------------------------------------------------------
    def may_act(self, inc: Incident, level: Level, user_id: str) -> bool:
        entries = actors_for(level, policy_of(inc))
        return is_allowed(user_id, entries, self._membership(entries))

    def check_allowed(self, incident_id: int, level: Level, user_id: str) -> Incident:
        inc = self.transitions.get(incident_id)
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
            with Session(self.transitions.engine) as s:
                raise self.transitions.conflict(s, inc)
        return inc

    # -- what people do ---------------------------------------------------------------------------------
    def acknowledge(self, incident_id: int, level: Level, user_id: str) -> Reply:
        self.check_allowed(incident_id, level, user_id)

        def apply(_s: Session, inc: Incident) -> None:
            inc.acked_by, inc.acked_at = user_id, self.clock.now()

        self.transitions.transition(incident_id, Event.ACK, user_id, at_level=level, apply=apply)
        return Reply(f"You acknowledged INC-{incident_id} at {level}.")

    def resolve(self, incident_id: int, level: Level, user_id: str, note: str) -> Reply:
        note = note_text(note)
        self.check_allowed(incident_id, level, user_id)

        def apply(_s: Session, inc: Incident) -> None:
            inc.resolved_by, inc.resolution_note = user_id, note

        self.transitions.transition(
            incident_id, Event.RESOLVE, user_id, at_level=level, apply=apply, note=note
        )
        return Reply(f"INC-{incident_id} is resolved at {level}. Your note is recorded for next time.")

    def escalate_to_l3(self, incident_id: int, user_id: str, trigger: StrategicTrigger, reason: str) -> Reply:
        reason = note_text(reason)
        self.check_allowed(incident_id, Level.L2, user_id)
        self.transitions.transition(
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
        self.transitions.transition(
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
        with Session(self.transitions.engine) as s:
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
                raise Conflict(
                    f"Already decided by <@{row.chosen_by}>: {escape(str(row.chosen_label))}",
                    by=row.chosen_by,
                )
            row.status, row.chosen_index, row.chosen_label = "decided", option_index, option["label"]
            row.chosen_by, row.chosen_at = user_id, self.clock.now()
            s.add(row)
            dec.status, dec.chosen_label, dec.chosen_by = row.status, row.chosen_label, row.chosen_by

        self.transitions.transition(
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
        return Reply(f"Recorded: {escape(str(option['label']))}."), dec

    def add_rationale(self, decision_id: int, user_id: str, rationale: str) -> Reply:
        rationale = note_text(rationale)
        now = self.clock.now()
        with session_scope(self.transitions.engine) as s:
            dec = s.exec(select(Decision).where(Decision.id == decision_id).with_for_update()).one_or_none()
            if dec is None:
                raise NotFound(f"decision {decision_id} does not exist")
            if dec.chosen_by != user_id:
                raise NotAllowed("Only the person who decided can record why.")
            dec.rationale = rationale
            s.add(dec)
            timeline(s, dec.incident_id, now, "rationale", user_id, rationale=rationale)
            learning.note_rationale(s, dec.incident_id, rationale)  # the resolution's note, if resolved
            inc = s.get(Incident, dec.incident_id)
            if inc is not None:
                self.transitions.refresh.level(s, inc, now, level=Level.L4)
        self._kick()
        return Reply("Thanks: the reason is recorded with the decision.")
