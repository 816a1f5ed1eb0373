"""Modal submissions: validated before the ack (errors shown in the form), acted on after it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App

from bot.core.models import ActionId, StrategicTrigger
from bot.integrations.slack.blocks import ESCALATE_FIELDS, view_value
from handlers.common import meta, tell

if TYPE_CHECKING:
    from bot.app import Services


def register(app: App, services: Services) -> None:
    incidents = services.incidents

    def handle_resolve_view(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        note = view_value(view["state"]["values"], "note")
        if not note:
            ack(response_action="errors", errors={"note": "Write what fixed it: it helps the next person."})
            return
        ack()
        m, user = meta(view), body["user"]["id"]
        tell(
            services,
            m.get("channel"),
            user,
            lambda: incidents.resolve(int(m["incident_id"]), _level(m), user, note),
        )

    def handle_escalate_l3_view(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        trigger, reason = view_value(values, "trigger"), view_value(values, "reason")
        if trigger not in {t.value for t in StrategicTrigger}:
            ack(response_action="errors", errors={"trigger": "Choose the strategic trigger."})
            return
        if not reason:
            ack(response_action="errors", errors={"reason": "Say why the tech lead is needed."})
            return
        ack()
        m, user = meta(view), body["user"]["id"]
        tell(
            services,
            m.get("channel"),
            user,
            lambda: incidents.escalate_to_l3(int(m["incident_id"]), user, StrategicTrigger(trigger), reason),
        )

    def handle_ask_decision_view(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        question, context = view_value(values, "question"), view_value(values, "context")
        if not question:
            ack(response_action="errors", errors={"question": "Ask the deciders a question."})
            return
        ack()
        m, user = meta(view), body["user"]["id"]
        tell(
            services,
            m.get("channel"),
            user,
            lambda: incidents.ask_decision(int(m["incident_id"]), user, question, context),
        )

    def handle_rationale_view(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        rationale = view_value(view["state"]["values"], "rationale")
        if not rationale:
            ack(response_action="errors", errors={"rationale": "Write a sentence on why."})
            return
        ack()
        m, user = meta(view), body["user"]["id"]
        tell(
            services,
            m.get("channel"),
            user,
            lambda: incidents.add_rationale(int(m["decision_id"]), user, rationale),
        )

    def handle_escalate_view(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        fields = {key: view_value(values, key) for key, _label, _hint in ESCALATE_FIELDS}
        if not fields["problem"]:
            ack(response_action="errors", errors={"problem": "Say what the problem is."})
            return
        ack()
        m, user = meta(view), body["user"]["id"]

        tell(services, m.get("channel"), user, lambda: services.intake.escalate_by_hand(user, fields))

    app.view(ActionId.RESOLVE_VIEW.value)(handle_resolve_view)
    app.view(ActionId.ESCALATE_L3_VIEW.value)(handle_escalate_l3_view)
    app.view(ActionId.ASK_DECISION_VIEW.value)(handle_ask_decision_view)
    app.view(ActionId.RATIONALE_VIEW.value)(handle_rationale_view)
    app.view(ActionId.ESCALATE_VIEW.value)(handle_escalate_view)


def _level(m: dict[str, Any]) -> Any:
    from bot.core.models import Level

    return Level(m.get("level", "L2"))
