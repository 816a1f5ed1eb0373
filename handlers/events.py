"""Events API: alerts other bots post into the subscribed alert channels become incidents; mentions get
help. Every listener marks its stored request done (see handlers.inbox)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltContext

from bot.integrations.alerts.slack_messages import parse_slack_alert, subscribed_channel_refs
from bot.render import render
from handlers.common import durable

if TYPE_CHECKING:
    from bot.services.container import Services

log = logging.getLogger("handlers")


def register(app: App, services: Services) -> None:
    once = durable(services, app.listener_runner.listener_executor)

    @once
    def handle_app_mention_event(event: dict[str, Any], context: BoltContext) -> None:
        channel = event.get("channel")
        if not isinstance(channel, str) or not channel:
            return
        cmds = services.config.slack.commands
        text = "I handle ML pipeline alerts. " + render(
            "help", escalate=cmds.escalate, escalation=cmds.escalation
        )
        thread = event.get("thread_ts") or event.get("ts")
        services.replies.post(channel, text, thread_ts=thread if isinstance(thread, str) else None)

    @once
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

    app.event("app_mention")(handle_app_mention_event)
    app.event("message")(handle_alert_channel_message_event)
