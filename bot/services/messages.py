"""What each Slack message says: text from templates/, blocks from bot.integrations.slack.blocks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.core.evidence import Evidence
from bot.core.models import Category, IncidentStatus, L1Outcome, Level, StrategicTrigger
from bot.core.policy import policy_of
from bot.integrations.slack import blocks
from bot.render import Trusted, escape, mention, one_line, render, tidy
from bot.services import drafts, readable
from bot.services import evidence as records
from bot.services.evidence import RunUrl
from bot.store.tables import Decision, Escalation, Incident, Storm

LEVEL_NAMES = {Level.L2: "the data coordinator", Level.L3: "the tech lead", Level.L4: "a decision"}


def fmt_time(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "?"


def actor_text(user_id: str | None) -> Trusted:
    return mention(user_id) or Trusted("the bot")


class Composer:
    """Builds (text, blocks) pairs; `mention` turns a group/user entry from app.yaml into mention text;
    `run_url` (the MLflow gateway's) links a run a check read to its page.

    An L1 report or escalation shows Level 1's steps as they were recorded, read through the session the
    incident (or escalation) is in; with none to read, it shows the fields as they were stored."""

    def __init__(self, mention: Callable[[str], str], run_url: RunUrl | None = None) -> None:
        self._mention = mention
        self._run_url = run_url

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

    def storm_summary(self, storm: Storm, categories: dict[str, int] | None = None) -> dict[str, Any]:
        """One message standing in for every incident of an alert storm; the details are in its thread.
        `categories`: how many of its incidents are in each category now (after Level 1's triage)."""
        by_category = sorted((categories or {}).items(), key=lambda kv: (-kv[1], kv[0]))
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
            categories=[(Category(c).label, n) for c, n in by_category],
        )
        return {"text": text, "blocks": blocks.message(text)}

    def header(self, incident: Incident, title: str, level: Level | None = None) -> str:
        """The first line: who is asked (for a level), level, incident, category and how urgent it is."""
        entries = policy_of(incident).mentions.get(level.value, []) if level else []
        return render(
            "header",
            mention=self.mentions(entries),
            title=title,
            id=incident.id,
            category=self.category(incident),
            urgency=Trusted(escape(readable.urgency(incident))),
        )

    def l1_report(self, incident: Incident, outcome: L1Outcome) -> dict[str, Any]:
        """Error / Attempted / Action / Result, one line per check and per remediation attempt."""
        found = records.for_report(incident, outcome, self._run_url)
        investigated = drafts.investigation_of(incident)
        checks, more_checks = readable.lines(found.checks)
        attempts, more_attempts = readable.lines(found.remediations)
        header = self.header(incident, "Level 1 report")
        body = render(
            "l1_report",
            error=tidy(outcome.error, readable.FIELD_CHARS),
            cause=[] if outcome.fixed else drafts.cause_lines(investigated),
            checks=checks,
            more_checks=more_checks,
            attempted=tidy(outcome.attempted, readable.FALLBACK_CHARS),
            attempts=attempts,
            more_attempts=more_attempts,
            action=tidy(outcome.action, readable.FALLBACK_CHARS),
            result=tidy(outcome.result, readable.FIELD_CHARS),
        )
        result = next(line for line in body.splitlines() if line.startswith("Result: "))
        buttons = [blocks.details_button(incident.id or 0, Level.L1)]
        context = [*self._links(found), *drafts.seen_lines(investigated)]
        drafted = None if outcome.fixed else drafts.drafted_line(investigated)
        context += [drafted] if drafted else []
        return self._laid_out(header, body, result, context, buttons, f"l1-{incident.id}")

    def escalation(
        self, incident: Incident, esc: Escalation, status: IncidentStatus, outcome_line: str | None = None
    ) -> dict[str, Any]:
        """The L2/L3 message; buttons follow the incident's state for that level."""
        level = Level(esc.level)
        found = records.for_escalation(esc, incident, self._run_url) or Evidence()
        investigated = drafts.investigation_of(incident)
        steps, more = readable.lines(found.steps) if not found.empty else ([], None)
        header = self.header(incident, f"Level {level.value[1]}", level)
        body = render(
            "escalation",
            problem=readable.problem(incident, esc.fields or {}),
            cause=drafts.cause_lines(investigated),
            lines=steps,
            more=more,
            attempted=tidy(str(esc.fields.get("attempted") or "not known"), readable.FALLBACK_CHARS),
            impact=readable.field(esc.fields or {}, "impact"),
            infrastructure=readable.field(esc.fields or {}, "infrastructure"),
            request=readable.field(esc.fields or {}, "request"),
            trigger=StrategicTrigger(esc.trigger).label if esc.trigger else None,
            reason=tidy(esc.reason, readable.FIELD_CHARS) if esc.reason else None,
        )
        request = next(line for line in body.splitlines() if line.startswith("Request: "))
        live = IncidentStatus(incident.status) if incident.level == level.value else IncidentStatus.RESOLVED
        buttons = blocks.escalation_buttons(incident.id or 0, level, live)
        opener = mention(incident.opened_by)
        by = f" by {opener}" if opener else ""
        context = [
            f"INC-{incident.id} · {escape(incident.source)} · opened {fmt_time(incident.opened_at)}{by}"
        ]
        context += drafts.seen_lines(investigated)
        if drafted := drafts.drafted_line(investigated):
            context.append(drafted)
        if outcome_line:
            context.append(outcome_line)
        if resolved_line := self.alert_resolved_line(incident):
            context.append(resolved_line)
        block_id = f"esc-{esc.id}-{incident.version}"
        return self._laid_out(header, body, request, [*self._links(found), *context], buttons, block_id)

    @staticmethod
    def _links(found: Evidence) -> list[str]:
        line = readable.links_line(found.links)
        return [line] if line else []

    @staticmethod
    def _laid_out(
        header: str, body: str, second: str, context: list[str], buttons: list[Any], block_id: str
    ) -> dict[str, Any]:
        """A message whose notification text is its header and one line of its body (the Request, the
        Result), and whose blocks show the header and the whole body."""
        return {
            "text": f"{header}\n{second}",
            "blocks": blocks.message(header, context, buttons, block_id, sections=[header, body]),
        }

    def decision(
        self, incident: Incident, decision: Decision, outcome_line: str | None = None
    ) -> dict[str, Any]:
        """The L4 request: the question, each option with its trade-off, and a button per option."""
        header = self.header(incident, "Decision needed", Level.L4)
        options = readable.with_effects(decision.options)  # what each click does, beside its label
        body = render("decision", question=decision.question, options=options, context=decision.context)
        buttons = blocks.decision_buttons(decision.id or 0, options) if decision.status == "pending" else []
        context = [f"INC-{incident.id} · decision expires {fmt_time(decision.expires_at)}"]
        # who drafted the options is kept on them (bot.services.decision_drafts); older ones say nothing
        drafted = next((o for o in decision.options if o.get("drafted_by")), None)
        if drafted is not None and drafted.get("proposed_by") == "claude":
            what = "Question and options" if drafted.get("question_drafted") else "Options"
            context.append(f"{what} drafted by Claude ({escape(str(drafted['drafted_by']))})")
        elif drafted is not None:
            context.append(f"Options from the rule-based template: {escape(str(drafted.get('says')))}")
        if outcome_line:
            context.append(outcome_line)
        if resolved_line := self.alert_resolved_line(incident):
            context.append(resolved_line)
        question = escape(tidy(decision.question, readable.FIELD_CHARS))
        block_id = f"dec-{decision.id}-{decision.status}"
        return self._laid_out(header, body, question, context, buttons, block_id)

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
