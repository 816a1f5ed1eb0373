"""Events API: alerts other bots post into the subscribed alert channels become incidents; a mention in an
incident's thread is a question answered from its record, any other mention gets help. Every listener
marks its stored request done (see handlers.inbox)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltContext

from bot.integrations.alerts.slack_messages import parse_slack_alert, subscribed_channel_refs
from bot.services.answers import Mention
from handlers.common import durable

if TYPE_CHECKING:
    from bot.services.container import Services

log = logging.getLogger("handlers")


def register(app: App, services: Services) -> None:
    once = durable(services, app.listener_runner.listener_executor)

    @once
    def handle_app_mention_event(event: dict[str, Any], context: BoltContext) -> None:
        """A question in an incident's thread is answered from its record; any other mention gets help."""
        channel, ts, thread_ts = event.get("channel"), event.get("ts"), event.get("thread_ts")
        if not isinstance(channel, str) or not channel:
            return
        if event.get("bot_id") or event.get("subtype") == "bot_message":
            log.info(
                "a mention by another bot in %s is not answered (two bots could answer each other)", channel
            )
            return
        text, user = event.get("text"), event.get("user")
        services.answers.mention(
            Mention(
                channel=channel,
                ts=ts if isinstance(ts, str) else "",
                thread_ts=thread_ts if isinstance(thread_ts, str) and thread_ts else None,
                text=text if isinstance(text, str) else "",
                user=user if isinstance(user, str) and user else None,
                bot_user_id=context.bot_user_id,
            )
        )

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
