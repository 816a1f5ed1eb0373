"""Buttons on escalation and decision messages. Each acks first, then authorises and acts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, BoltContext, Respond

from bot.core.models import ActionId, IncidentStatus, Level
from bot.core.policy import policy_of
from bot.integrations.slack import blocks
from bot.services.details import IncidentDetails
from handlers.common import Notice, ask_why, durable, level_value, option_value, tell

if TYPE_CHECKING:
    from bot.services.container import Services


def _where(body: dict[str, Any]) -> tuple[str, str | None, str | None]:
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    return str((body.get("user") or {}).get("id", "")), channel, container.get("message_ts")


def _value(body: dict[str, Any]) -> Any:
    actions = body.get("actions") or [{}]
    return actions[0].get("value") if isinstance(actions[0], dict) else None


def _clicked(body: dict[str, Any]) -> tuple[int, Level]:
    return level_value(_value(body))


def _notice(body: dict[str, Any], title: str) -> Notice | None:
    """Where to answer a click in a view (App Home has no channel): a modal, with the click's trigger."""
    trigger = body.get("trigger_id")
    return (trigger, title) if isinstance(trigger, str) and trigger else None


def register(app: App, services: Services) -> None:
    incidents = services.incidents
    details = IncidentDetails.of(services)
    once = durable(services, app.listener_runner.listener_executor)

    def act(
        body: dict[str, Any],
        respond: Respond,
        work: Callable[[str, str | None], Any],
        title: str = "Not done",
    ) -> None:
        user, channel, _ = _where(body)
        tell(services, channel, user, lambda: work(user, channel), respond, _notice(body, title))

    def open_modal(body: dict[str, Any], respond: Respond, build: Any, wanted: set[IncidentStatus]) -> None:
        """Check who clicked and that the incident is still there, then open the modal for them."""

        def run(user: str, channel: str | None) -> None:
            incident_id, level = _clicked(body)
            inc = incidents.check_can_act(incident_id, level, user, wanted)
            _, _, ts = _where(body)
            meta = {"incident_id": incident_id, "level": level.value, "channel": channel, "ts": ts}
            services.views.open(
                str(body.get("trigger_id", "")), user, lambda private: build(inc, meta, private), meta
            )

        act(body, respond, run)

    @once
    def handle_ack_button(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
        ack()

        def run(user: str, _channel: str | None) -> Any:
            incident_id, level = _clicked(body)
            return incidents.acknowledge(incident_id, level, user)

        act(body, respond, run)

    def modal_button(build: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]) -> Any:
        """A button that opens a modal about its incident, while it still waits at the level."""

        @once
        def listener(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
            ack()
            waiting = {IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED}
            open_modal(body, respond, lambda _inc, meta, private: build(meta, private), waiting)

        return listener

    handle_resolve_button = modal_button(blocks.resolve_modal)
    handle_escalate_button = modal_button(blocks.escalate_l3_modal)
    handle_snooze_button = modal_button(blocks.snooze_modal)

    @once
    def handle_ask_decision_button(
        ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext
    ) -> None:
        ack()

        def build(inc: Any, meta: dict[str, Any], private: dict[str, Any]) -> dict[str, Any]:
            template = policy_of(inc).decision_template
            return blocks.ask_decision_modal(
                meta, template.get("question", ""), template.get("options", []), private
            )

        open_modal(body, respond, build, {IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED})

    @once
    def handle_decision_option(
        ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext
    ) -> None:
        ack()

        def run(user: str, channel: str | None) -> Any:
            decision_id, option = option_value(_value(body))
            reply, decision = incidents.decide(decision_id, option, user)
            meta = {"decision_id": decision_id, "incident_id": decision.incident_id, "channel": channel}
            ask_why(services, body, user, meta, decision.options[option]["label"])
            return reply

        act(body, respond, run)

    @once
    def handle_details_button(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
        ack()

        def run(user: str, channel: str | None) -> None:
            incident_id, level = _clicked(body)
            name = (body.get("channel") or {}).get("name")
            details.open(incident_id, level, user, (channel, name), str(body.get("trigger_id", "")))

        act(body, respond, run, "Details not shown")

    app.action(ActionId.ACK.value)(handle_ack_button)
    app.action(ActionId.RESOLVE.value)(handle_resolve_button)
    app.action(ActionId.ESCALATE_L3.value)(handle_escalate_button)
    app.action(ActionId.ASK_DECISION.value)(handle_ask_decision_button)
    app.action(re.compile(rf"^{ActionId.DECISION_OPTION.value}_\d+$"))(handle_decision_option)
    app.action(ActionId.DETAILS.value)(handle_details_button)
    app.action(ActionId.SNOOZE.value)(handle_snooze_button)
