"""What each Slack message says: text from templates/, blocks from bot.integrations.slack.blocks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.core.models import Category, IncidentStatus, L1Outcome, Level
from bot.core.policy import is_urgent, policy_of
from bot.integrations.slack import blocks
from bot.render import Trusted, escape, mention, one_line, render
from bot.store.tables import Decision, Escalation, Incident, Storm

LEVEL_NAMES = {Level.L2: "the data coordinator", Level.L3: "the tech lead", Level.L4: "a decision"}


def fmt_time(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "?"


def actor_text(user_id: str | None) -> Trusted:
    return mention(user_id) or Trusted("the bot")


class Composer:
    """Builds (text, blocks) pairs; `mention` turns a group/user entry from app.yaml into mention text."""

    def __init__(self, mention: Callable[[str], str]) -> None:
        self._mention = mention

    def mentions(self, entries: list[str]) -> Trusted:
        return Trusted(" ".join(self._mention(e) for e in entries))

    @staticmethod
    def category(incident: Incident) -> str:
        return Category(incident.category).label

    def alert_message(self, incident: Incident) -> dict[str, Any]:
        """The root alert message as the incident stands now: repeats, truncation, flapping, resolution."""
        icon, status = (
            ":red_circle:",
            (
                f"Level 1 self-recovery started at {fmt_time(incident.opened_at)}; "
                "its report follows in this thread."
            ),
        )
        if incident.status == IncidentStatus.RESOLVED.value and incident.alert_resolved_at:
            icon = ":large_green_circle:"
            status = (
                f"The alert resolved at {fmt_time(incident.alert_resolved_at)} before Level 1 finished; "
                "the incident is closed."
            )
        elif incident.reopened_count:
            status = (
                f"Fired again at {fmt_time(incident.opened_at)} soon after it resolved, so the incident "
                f"was reopened ({incident.reopened_count}×); Level 1 runs again and reports in this thread."
            )
        text = render(
            "alert_opened",
            icon=icon,
            id=incident.id,
            category=self.category(incident),
            title=incident.title,
            status_line=status,
        )
        target = ", ".join(f"{k}={v}" for k, v in incident.target.items() if v)
        context = [f"Classified as *{self.category(incident)}*: {incident.classification_reason}"]
        if incident.reclassified_from:
            was = Category(incident.reclassified_from).label
            context = [
                f"Classified as *{self.category(incident)}*, re-classified from {was}: "
                f"{incident.classification_reason}"
            ]
        if target:
            context.append(f"Target: {target}")
        if len(incident.sources or []) > 1:
            context.append("Reported by " + ", ".join(incident.sources))
        context = [blocks_escape(one_line(c)) for c in context]
        if incident.alert_count > 1:
            context.append(f"Fired ×{incident.alert_count}, last at {fmt_time(incident.last_alert_at)}")
        if incident.truncated_alerts:
            context.append(f"+{incident.truncated_alerts} alerts truncated by Alertmanager")
        return {"text": text, "blocks": blocks.message(text, context)}

    @staticmethod
    def alert_resolved_line(incident: Incident) -> str | None:
        """The context line an escalation or decision message gets once its alert resolved."""
        if not incident.alert_resolved_at or incident.status == IncidentStatus.RESOLVED.value:
            return None
        return (
            f":large_green_circle: The alert resolved at {fmt_time(incident.alert_resolved_at)}; "
            "the incident stays open until someone resolves it."
        )

    def storm_summary(self, storm: Storm) -> dict[str, Any]:
        """One message standing in for every incident of an alert storm; the details are in its thread."""
        seconds = max(1, round((storm.last_opened_at - storm.started_at).total_seconds()))
        ranked = sorted(storm.pipelines.items(), key=lambda kv: (-int(kv[1]), kv[0]))
        text = render(
            "storm_summary",
            over=storm.ended_at is not None,
            count=storm.incident_count,
            alerts=storm.alert_count,
            seconds=seconds,
            pipeline_count=len(ranked),
            pipelines=ranked[:5],
            more=max(0, len(ranked) - 5),
            started=fmt_time(storm.started_at),
        )
        return {"text": text, "blocks": blocks.message(text)}

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
        policy = policy_of(incident)
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
        opener = mention(incident.opened_by)
        by = f" by {opener}" if opener else ""
        context = [
            f"INC-{incident.id} · {escape(incident.source)} · opened {fmt_time(incident.opened_at)}{by}"
        ]
        if outcome_line:
            context.append(outcome_line)
        if resolved_line := self.alert_resolved_line(incident):
            context.append(resolved_line)
        return {
            "text": text,
            "blocks": blocks.message(text, context, buttons, block_id=f"esc-{esc.id}-{incident.version}"),
        }

    def decision(
        self, incident: Incident, decision: Decision, outcome_line: str | None = None
    ) -> dict[str, Any]:
        policy = policy_of(incident)
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
        if resolved_line := self.alert_resolved_line(incident):
            context.append(resolved_line)
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
        policy = policy_of(incident)
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
    return escape(text)
