"""/escalate and /escalation. Reads answer in the ack; changes are acked first, then done."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App

from bot.core.errors import BotError
from bot.core.models import Level
from bot.integrations.slack import blocks
from bot.render import render
from handlers.common import tell

if TYPE_CHECKING:
    from bot.app import Services


def register(app: App, services: Services) -> None:
    cmds = services.config.slack.commands
    incidents = services.incidents

    def help_text() -> str:
        return render("help", escalate=cmds.escalate, escalation=cmds.escalation)

    def handle_escalate_command(ack: Ack, command: dict[str, Any]) -> None:
        text, user, channel = command.get("text", "").strip(), command["user_id"], command.get("channel_id")
        if not text:
            ack()
            incidents.open_view(command["trigger_id"], blocks.escalate_modal({"channel": channel}))
            return
        ack("Opening an incident for Level 2…")

        tell(services, channel, user, lambda: services.intake.escalate_by_hand(user, {"problem": text}))

    def handle_escalation_command(ack: Ack, command: dict[str, Any]) -> None:
        words = command.get("text", "").strip().split(maxsplit=2)
        verb = words[0].lower() if words else "help"
        user, channel = command["user_id"], command.get("channel_id")
        if verb == "list":
            ack(render("incident_list", incidents=incidents.open_incidents()))
        elif verb == "stats":
            ack(render("stats", **incidents.stats()))
        elif verb in ("show", "ack", "resolve"):
            if len(words) < 2 or not words[1].upper().removeprefix("INC-").isdigit():
                ack(
                    f"Usage: {cmds.escalation} {verb} ID{' NOTE' if verb == 'resolve' else ''} "
                    "(e.g. 12 or INC-12)"
                )
                return
            incident_id = int(words[1].upper().removeprefix("INC-"))
            if verb == "show":
                try:
                    ack(_show(services, incident_id))
                except BotError as exc:
                    ack(str(exc))
                return
            if verb == "resolve" and len(words) < 3:
                ack(f"Usage: {cmds.escalation} resolve ID NOTE: the note says what fixed it.")
                return
            ack(f"Working on INC-{incident_id}…")

            def act() -> Any:
                inc = incidents.get(incident_id)
                level = Level(inc.level)
                if verb == "ack":
                    return incidents.acknowledge(incident_id, level, user)
                return incidents.resolve(incident_id, level, user, words[2])

            tell(services, channel, user, act)
        else:
            prefix = "" if verb == "help" else f"Unknown subcommand `{verb}`.\n"
            ack(prefix + help_text())

    app.command(cmds.escalate)(handle_escalate_command)
    app.command(cmds.escalation)(handle_escalation_command)


def _show(services: Services, incident_id: int) -> str:
    inc, findings, timeline = services.incidents.details(incident_id)
    opened = inc.opened_at.strftime("%Y-%m-%d %H:%M UTC")
    return render(
        "incident_show",
        i=inc,
        opened=opened,
        findings=findings,
        timeline=[
            {"at": e.at.strftime("%H:%M"), "kind": e.kind, "actor": f"<@{e.actor}>" if e.actor else None}
            for e in timeline
        ],
    )
