"""Modal submissions: validated before the ack (errors shown in the form), acted on after it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App

from bot.core.models import ActionId, StrategicTrigger
from bot.integrations.slack.blocks import ESCALATE_FIELDS, view_value
from handlers.common import meta, tell

if TYPE_CHECKING:
    from bot.app import Services


def register(app: App, services: Services) -> None:
    incidents = services.incidents

    def submit(
        ack: Ack,
        body: dict[str, Any],
        view: dict[str, Any],
        errors: dict[str, str],
        act: Callable[[dict[str, Any], str], Any],
    ) -> None:
        """Show `errors` in the form, or ack and act, telling the submitter how it went."""
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        m, user = meta(view), body["user"]["id"]
        tell(services, m.get("channel"), user, lambda: act(m, user))

    def handle_resolve_view(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        note = view_value(view["state"]["values"], "note")
        errors = {} if note else {"note": "Write what fixed it: it helps the next person."}
        submit(
            ack,
            body,
            view,
            errors,
            lambda m, user: incidents.resolve(int(m["incident_id"]), _level(m), user, note),
        )

    def handle_escalate_l3_view(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        trigger, reason = view_value(values, "trigger"), view_value(values, "reason")
        errors = {}
        if trigger not in {t.value for t in StrategicTrigger}:
            errors = {"trigger": "Choose the strategic trigger."}
        elif not reason:
            errors = {"reason": "Say why the tech lead is needed."}
        submit(
            ack,
            body,
            view,
            errors,
            lambda m, user: incidents.escalate_to_l3(
                int(m["incident_id"]), user, StrategicTrigger(trigger), reason
            ),
        )

    def handle_ask_decision_view(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        question, context = view_value(values, "question"), view_value(values, "context")
        errors = {} if question else {"question": "Ask the deciders a question."}
        submit(
            ack,
            body,
            view,
            errors,
            lambda m, user: incidents.ask_decision(int(m["incident_id"]), user, question, context),
        )

    def handle_rationale_view(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        rationale = view_value(view["state"]["values"], "rationale")
        errors = {} if rationale else {"rationale": "Write a sentence on why."}
        submit(
            ack,
            body,
            view,
            errors,
            lambda m, user: incidents.add_rationale(int(m["decision_id"]), user, rationale),
        )

    def handle_escalate_view(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        fields = {key: view_value(values, key) for key, _label, _hint in ESCALATE_FIELDS}
        errors = {} if fields["problem"] else {"problem": "Say what the problem is."}
        submit(ack, body, view, errors, lambda _m, user: services.intake.escalate_by_hand(user, fields))

    app.view(ActionId.RESOLVE_VIEW.value)(handle_resolve_view)
    app.view(ActionId.ESCALATE_L3_VIEW.value)(handle_escalate_l3_view)
    app.view(ActionId.ASK_DECISION_VIEW.value)(handle_ask_decision_view)
    app.view(ActionId.RATIONALE_VIEW.value)(handle_rationale_view)
    app.view(ActionId.ESCALATE_VIEW.value)(handle_escalate_view)


def _level(m: dict[str, Any]) -> Any:
    from bot.core.models import Level

    return Level(m.get("level", "L2"))
