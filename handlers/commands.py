"""/escalate and /escalation. Reads answer in the ack; changes are acked first, then done."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, BoltContext, Respond

from bot.core.errors import BotError
from bot.core.models import Category, IncidentStatus, Level
from bot.integrations.slack import blocks
from bot.render import escape, mention, render
from bot.services import readable, stats, stats_text
from bot.services.outage import database_unavailable
from handlers.common import UNAVAILABLE, durable, incident_id, tell

if TYPE_CHECKING:
    from bot.services.container import Services

MAX_TEXT = 3000  # what a person can sensibly type into a slash command


def register(app: App, services: Services) -> None:
    cmds = services.config.slack.commands
    incidents, queries = services.incidents, services.queries
    once = durable(services, app.listener_runner.listener_executor)

    def help_text() -> str:
        return render("help", escalate=cmds.escalate, escalation=cmds.escalation)

    @once
    def handle_escalate_command(
        ack: Ack, command: dict[str, Any], respond: Respond, context: BoltContext
    ) -> None:
        text = str(command.get("text") or "").strip()[:MAX_TEXT]
        user, channel = str(command.get("user_id") or ""), command.get("channel_id")
        if not text:
            ack()
            tell(
                services,
                channel,
                user,
                lambda: services.views.open(
                    str(command.get("trigger_id") or ""),
                    user,
                    lambda private: blocks.escalate_modal({"channel": channel}, private=private),
                    {"channel": channel},
                ),
                respond,
            )
            return
        ack("Opening an incident for Level 2…")
        tell(
            services,
            channel,
            user,
            lambda: services.manual.escalate_by_hand(user, {"problem": text}),
            respond,
        )

    @once
    def handle_escalation_command(
        ack: Ack, command: dict[str, Any], respond: Respond, context: BoltContext
    ) -> None:
        words = str(command.get("text") or "").strip()[:MAX_TEXT].split(maxsplit=2)
        verb = words[0].lower() if words else "help"
        user, channel = str(command.get("user_id") or ""), command.get("channel_id")
        try:
            if verb == "list":
                ack(render("incident_list", incidents=queries.open_incidents(), total=queries.count_open()))
                return
            if verb == "stats":
                ack(_stats(services, " ".join(words[1:]) or "7d"))  # "7d 30d" is refused, not read as 7d
                return
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            ack(UNAVAILABLE)
            return
        if verb not in ("show", "ack", "resolve"):
            prefix = "" if verb == "help" else f"Unknown subcommand `{_typed(verb, 40)}`.\n"
            ack(prefix + help_text())
            return
        number = incident_id(words[1]) if len(words) >= 2 else None
        if number is None:
            ack(
                f"Usage: {cmds.escalation} {verb} ID{' NOTE' if verb == 'resolve' else ''} "
                "(e.g. 12 or INC-12)"
            )
            return
        if verb == "show":
            try:
                ack(_show(services, number))
            except BotError as exc:
                ack(str(exc))
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                ack(UNAVAILABLE)
            return
        if verb == "resolve" and len(words) < 3:
            ack(f"Usage: {cmds.escalation} resolve ID NOTE: the note says what fixed it.")
            return
        ack(f"Working on INC-{number}…")

        def act() -> Any:
            inc = queries.get(number)
            level = Level(inc.level)
            if verb == "ack":
                return incidents.acknowledge(number, level, user)
            return incidents.resolve(number, level, user, words[2])

        tell(services, channel, user, act, respond)

    app.command(cmds.escalate)(handle_escalate_command)
    app.command(cmds.escalation)(handle_escalation_command)


def _stats(services: Services, period: str) -> str:
    """The stats of the last `period` (7d, 30d, 90d) against the previous one, or which periods there are."""
    length = stats.parse_period(period)
    if length is None:
        accepted = ", ".join(f"`{name}`" for name in stats.PERIODS)
        shown = _typed(period, 20)
        return (
            f"`{shown}` is not a period the stats know. Use one of {accepted}: "
            f"e.g. `{services.config.slack.commands.escalation} stats 30d` (7d when none is given)."
        )
    return stats_text.text(services.queries.report(services.clock.now(), length))


def _show(services: Services, number: int) -> str:
    """The incident as its messages show it: its category and status in words, and Attempted as one line
    per check and remediation by its human name ("Pod logs", not pod_logs_tail); then its timeline."""
    inc, _, timeline = services.queries.details(number)
    found = services.queries.evidence(number)
    steps, more = readable.lines(found.steps)
    fields = inc.fields or {}
    return render(
        "incident_show",
        i=inc,
        status=IncidentStatus(inc.status).value.replace("_", " "),
        category=Category(inc.category).label,
        opened=inc.opened_at.strftime("%Y-%m-%d %H:%M UTC"),
        problem=readable.problem(inc, fields) if fields else None,
        lines=steps,
        more=more,
        attempted=str(fields.get("attempted") or "not known"),
        impact=readable.field(fields, "impact"),
        infrastructure=readable.field(fields, "infrastructure"),
        request=readable.field(fields, "request"),
        drafted_by=(inc.investigation or {}).get("drafted_by"),
        tokens=services.queries.llm_tokens(number),
        timeline=[
            {
                "at": e.at.strftime("%H:%M"),
                "kind": e.kind,
                "actor": mention(e.actor),
            }
            for e in timeline
        ],
    )


def _typed(text: str, limit: int) -> str:
    """What someone typed, shown back inside `code`: cut, escaped, its backticks made plain, so it can
    neither mention, link nor close the code span."""
    return escape(text[:limit].replace("`", "'"))
