"""Events API: a retried event that was already handled is acked and dropped; alerts other bots post into
the subscribed alert channels become incidents; mentions get help."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltContext, BoltResponse

from bot.integrations.alerts.slack_messages import parse_slack_alert, subscribed_channel_refs
from bot.render import render

if TYPE_CHECKING:
    from bot.app import Services

log = logging.getLogger("handlers")


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

    def handle_alert_channel_message_event(event: dict[str, Any], context: BoltContext) -> None:
        """A bot's alert in a subscribed channel is ingested; the L1 report goes to its thread."""
        slack = services.config.slack
        refs = subscribed_channel_refs(slack.alert_channels, slack.channels.alerts)
        channel_ids = {services.outbox.channel_id(ref) for ref in refs}
        alert = parse_slack_alert(event, channel_ids, context.bot_user_id, context.bot_id)
        if alert is None:
            return
        result = services.intake.ingest([alert])
        log.info(
            "slack alert %s in %s: opened %s, updated %s, resolved %s",
            alert.fingerprint,
            alert.slack_channel,
            result.opened,
            result.updated,
            result.resolved,
        )

    app.middleware(drop_handled_events)
    app.event("app_mention")(handle_app_mention_event)
    app.event("message")(handle_alert_channel_message_event)
