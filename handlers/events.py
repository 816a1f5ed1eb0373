"""Events API: a retried event that was already handled is acked and dropped; mentions get help."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltResponse

from bot.render import render

if TYPE_CHECKING:
    from bot.app import Services


def register(app: App, services: Services) -> None:
    def drop_handled_events(body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse | None:
        """Slack retries events it thinks failed; each event id is processed once."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not services.incidents.claim_request(f"slack-event:{event_id}"):
            return BoltResponse(status=200, body="")
        return next()

    def handle_app_mention_event(event: dict[str, Any]) -> None:
        cmds = services.config.slack.commands
        text = "I handle ML pipeline alerts. " + render(
            "help", escalate=cmds.escalate, escalation=cmds.escalation
        )
        services.incidents.post(event["channel"], text, thread_ts=event.get("thread_ts") or event.get("ts"))

    def handle_message_event() -> None:
        """Messages are acknowledged; alert-channel parsing lives in the intake of Slack alert sources."""

    app.middleware(drop_handled_events)
    app.event("app_mention")(handle_app_mention_event)
    app.event("message")(handle_message_event)
