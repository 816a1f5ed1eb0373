"""What each Slack message says: text from templates/, blocks from bot.integrations.slack.blocks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.core.models import Category, IncidentStatus, L1Outcome, Level
from bot.core.policy import Policy, is_urgent
from bot.integrations.slack import blocks
from bot.render import Trusted, render
from bot.store.tables import Decision, Escalation, Incident

LEVEL_NAMES = {Level.L2: "the data coordinator", Level.L3: "the tech lead", Level.L4: "a decision"}


def fmt_time(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "?"


def actor_text(user_id: str | None) -> Trusted:
    return Trusted(f"<@{user_id}>") if user_id else Trusted("the bot")


class Composer:
    """Builds (text, blocks) pairs; `mention` turns a group/user entry from app.yaml into mention text."""

    def __init__(self, mention: Callable[[str], str]) -> None:
        self._mention = mention

    def mentions(self, entries: list[str]) -> Trusted:
        return Trusted(" ".join(self._mention(e) for e in entries))

    @staticmethod
    def category(incident: Incident) -> str:
        return Category(incident.category).label

    def alert_opened(self, incident: Incident) -> dict[str, Any]:
        status = (
            f"Level 1 self-recovery started at {fmt_time(incident.opened_at)}; "
            "its report follows in this thread."
        )
        text = render(
            "alert_opened",
            icon=":red_circle:",
            id=incident.id,
            category=self.category(incident),
            title=incident.title,
            status_line=status,
        )
        target = ", ".join(f"{k}={v}" for k, v in incident.target.items() if v)
        context = [f"Classified as *{self.category(incident)}*: {incident.classification_reason}"]
        if target:
            context.append(f"Target: {target}")
        return {"text": text, "blocks": blocks.message(text, [blocks_escape(c) for c in context])}

    def l1_report(self, incident: Incident, outcome: L1Outcome) -> dict[str, Any]:
        text = render(
            "l1_report",
            id=incident.id,
            error=outcome.error,
            attempted=outcome.attempted,
            action=outcome.action,
            result=outcome.result,
        )
        return {"text": text, "blocks": blocks.message(text)}

    def escalation(
        self, incident: Incident, esc: Escalation, status: IncidentStatus, outcome_line: str | None = None
    ) -> dict[str, Any]:
        """The L2/L3 message; buttons follow the incident's state for that level."""
        policy = Policy.from_dict(incident.policy)
        level = Level(esc.level)
        trigger = None
        if esc.trigger:
            from bot.core.models import StrategicTrigger

            trigger = StrategicTrigger(esc.trigger).label
        text = render(
            "escalation",
            mention=self.mentions(policy.mentions.get(level.value, [])),
            level_number=level.value[1],
            id=incident.id,
            category=self.category(incident),
            urgent=is_urgent(incident.labels),
            fields=esc.fields,
            trigger=trigger,
            reason=esc.reason,
        )
        live = IncidentStatus(incident.status) if incident.level == level.value else IncidentStatus.RESOLVED
        buttons = blocks.escalation_buttons(incident.id or 0, level, live)
        context = [f"INC-{incident.id} · {incident.source} · opened {fmt_time(incident.opened_at)}"]
        if outcome_line:
            context.append(outcome_line)
        return {
            "text": text,
            "blocks": blocks.message(text, context, buttons, block_id=f"esc-{esc.id}-{incident.version}"),
        }

    def decision(
        self, incident: Incident, decision: Decision, outcome_line: str | None = None
    ) -> dict[str, Any]:
        policy = Policy.from_dict(incident.policy)
        text = render(
            "decision",
            mention=self.mentions(policy.mentions.get("L4", [])),
            id=incident.id,
            category=self.category(incident),
            question=decision.question,
            options=decision.options,
            context=decision.context,
        )
        buttons = (
            blocks.decision_buttons(decision.id or 0, decision.options)
            if decision.status == "pending"
            else []
        )
        context = [f"INC-{incident.id} · decision expires {fmt_time(decision.expires_at)}"]
        if outcome_line:
            context.append(outcome_line)
        return {
            "text": text,
            "blocks": blocks.message(text, context, buttons, block_id=f"dec-{decision.id}-{decision.status}"),
        }

    @staticmethod
    def outcome(kind: str, actor: str | None, at: datetime, **values: Any) -> str:
        values.setdefault("note", None)
        values.setdefault("to", "")
        values.setdefault("choice", "")
        return render("outcome", kind=kind, actor=actor_text(actor), at=fmt_time(at), **values)

    def reminder(self, incident: Incident, level: Level, waited: str, next_step: str) -> dict[str, Any]:
        policy = Policy.from_dict(incident.policy)
        text = render(
            "reminder",
            mention=self.mentions(policy.mentions.get(level.value, [])),
            id=incident.id,
            category=self.category(incident),
            waited=waited,
            level_number=level.value[1],
            next_step=next_step,
        )
        return {"text": text, "blocks": blocks.message(text)}

    @staticmethod
    def plain(text: str) -> dict[str, Any]:
        return {"text": text, "blocks": blocks.message(text)}


def blocks_escape(text: str) -> str:
    from bot.render import escape

    return escape(text)
