"""Buttons on escalation and decision messages. Each acks first, then authorises and acts."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App

from bot.core.models import ActionId, IncidentStatus, Level
from bot.core.policy import Policy
from bot.integrations.slack import blocks
from handlers.common import parse_value, tell

if TYPE_CHECKING:
    from bot.app import Services


def _where(body: dict[str, Any]) -> tuple[str, str | None, str | None]:
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    return body["user"]["id"], channel, container.get("message_ts")


def register(app: App, services: Services) -> None:
    incidents = services.incidents

    def open_modal(body: dict[str, Any], build: Any, wanted: set[IncidentStatus]) -> None:
        """Check who clicked and that the incident is still there, then open the modal."""
        user, channel, ts = _where(body)
        incident_id, level_value = parse_value(body["actions"][0]["value"])
        level = Level(level_value)

        def run() -> None:
            inc = incidents.check_can_act(incident_id, level, user, wanted)
            meta = {"incident_id": incident_id, "level": level.value, "channel": channel, "ts": ts}
            incidents.open_view(body["trigger_id"], build(inc, meta))

        tell(services, channel, user, run)

    def handle_ack_button(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        user, channel, _ = _where(body)
        incident_id, level = parse_value(body["actions"][0]["value"])
        tell(services, channel, user, lambda: incidents.acknowledge(incident_id, Level(level), user))

    def handle_resolve_button(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        open_modal(
            body,
            lambda _inc, meta: blocks.resolve_modal(meta),
            {IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED},
        )

    def handle_escalate_button(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        open_modal(
            body,
            lambda _inc, meta: blocks.escalate_l3_modal(meta),
            {IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED},
        )

    def handle_ask_decision_button(ack: Ack, body: dict[str, Any]) -> None:
        ack()

        def build(inc: Any, meta: dict[str, Any]) -> dict[str, Any]:
            template = Policy.from_dict(inc.policy).decision_template
            return blocks.ask_decision_modal(meta, template.get("question", ""), template.get("options", []))

        open_modal(body, build, {IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED})

    def handle_decision_option(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        user, channel, _ = _where(body)
        decision_id, option = parse_value(body["actions"][0]["value"])

        def run() -> Any:
            reply, decision = incidents.decide(decision_id, int(option), user)
            meta = {"decision_id": decision_id, "channel": channel}
            incidents.open_view(
                body["trigger_id"], blocks.rationale_modal(meta, decision.options[int(option)]["label"])
            )
            return reply

        tell(services, channel, user, run)

    app.action(ActionId.ACK.value)(handle_ack_button)
    app.action(ActionId.RESOLVE.value)(handle_resolve_button)
    app.action(ActionId.ESCALATE_L3.value)(handle_escalate_button)
    app.action(ActionId.ASK_DECISION.value)(handle_ask_decision_button)
    app.action(re.compile(rf"^{ActionId.DECISION_OPTION.value}_\d+$"))(handle_decision_option)
