"""Modal submissions: checked against the modal the bot opened for this person, validated before the
ack (errors shown in the form), taken once, and acted on after the ack."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, BoltContext

from bot.core.errors import NotAllowed
from bot.core.models import ActionId, Level, StrategicTrigger
from bot.integrations.slack.blocks import ESCALATE_FIELDS, notice_modal, view_value
from bot.services.outage import database_unavailable
from bot.services.snooze import CHOICES
from handlers.common import UNAVAILABLE, durable, tell

if TYPE_CHECKING:
    from bot.services.container import Services


def _values(view: dict[str, Any]) -> dict[str, Any]:
    values = (view.get("state") or {}).get("values")
    return values if isinstance(values, dict) else {}


def register(app: App, services: Services) -> None:
    incidents = services.incidents
    once = durable(services, app.listener_runner.listener_executor)

    def submit(
        ack: Ack,
        body: dict[str, Any],
        view: dict[str, Any],
        context: BoltContext,
        errors: dict[str, str],
        act: Callable[[dict[str, Any], str], Any],
    ) -> None:
        """Refuse a modal the bot did not open for this person; show `errors` in the form; or take the
        modal (once), ack, and act, telling the submitter how it went."""
        user = str((body.get("user") or {}).get("id", ""))
        try:
            if errors:
                services.views.check(view, user)
                ack(response_action="errors", errors=errors)
                return
            m = services.views.take(view, user, context.get("inbox_id"))
        except NotAllowed as exc:
            ack(response_action="update", view=notice_modal("Not accepted", str(exc)))
            return
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            first = next(iter(_values(view)), None)
            if first:
                ack(response_action="errors", errors={first: UNAVAILABLE})
            else:
                ack(response_action="update", view=notice_modal("Try again", UNAVAILABLE))
            return
        ack()
        tell(services, m.get("channel"), user, lambda: act(m, user))

    Act = Callable[[dict[str, Any], str], Any]

    def form(read: Callable[[dict[str, Any]], tuple[dict[str, str], Act]]) -> Callable[..., None]:
        """A modal's listener: `read` turns the form's values into its errors and what to do."""

        @once
        def listener(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
            errors, act = read(_values(view))
            submit(ack, body, view, context, errors, act)

        return listener

    def resolve(values: dict[str, Any]) -> tuple[dict[str, str], Act]:
        note = view_value(values, "note")
        errors = {} if note else {"note": "Write what fixed it: it helps the next person."}

        def act(m: dict[str, Any], user: str) -> Any:
            if m.get("group_id"):  # the modal of a group's button: every member still waiting
                return services.escalation_groups.resolve(int(m["group_id"]), Level(m["level"]), user, note)
            return incidents.resolve(int(m["incident_id"]), Level(m["level"]), user, note)

        return errors, act

    def escalate_l3(values: dict[str, Any]) -> tuple[dict[str, str], Act]:
        trigger, reason = view_value(values, "trigger"), view_value(values, "reason")
        errors = {}
        if trigger not in {t.value for t in StrategicTrigger}:
            errors = {"trigger": "Choose the strategic trigger."}
        elif not reason:
            errors = {"reason": "Say why the tech lead is needed."}

        def act(m: dict[str, Any], user: str) -> Any:
            if m.get("group_id"):
                return services.escalation_groups.escalate(
                    int(m["group_id"]), user, StrategicTrigger(trigger), reason
                )
            return incidents.escalate_to_l3(int(m["incident_id"]), user, StrategicTrigger(trigger), reason)

        return errors, act

    def ask_decision(values: dict[str, Any]) -> tuple[dict[str, str], Act]:
        question, extra = view_value(values, "question"), view_value(values, "context")
        errors = {} if question else {"question": "Ask the deciders a question."}
        return errors, lambda m, user: incidents.ask_decision(int(m["incident_id"]), user, question, extra)

    def rationale(values: dict[str, Any]) -> tuple[dict[str, str], Act]:
        why = view_value(values, "rationale")
        errors = {} if why else {"rationale": "Write a sentence on why."}

        def act(m: dict[str, Any], user: str) -> Any:
            if "decision_ids" in m:  # one reason for a group's decision: recorded with each member's
                replies = [incidents.add_rationale(int(d), user, why) for d in m["decision_ids"]]
                return replies[-1] if replies else None
            return incidents.add_rationale(int(m["decision_id"]), user, why)

        return errors, act

    def escalate(values: dict[str, Any]) -> tuple[dict[str, str], Act]:
        fields = {key: view_value(values, key) for key, _label, _hint in ESCALATE_FIELDS}
        errors = {} if fields["problem"] else {"problem": "Say what the problem is."}
        return errors, lambda _m, user: services.manual.escalate_by_hand(user, fields)

    def snooze(values: dict[str, Any]) -> tuple[dict[str, str], Act]:
        choice = view_value(values, "until")
        errors = {} if choice in CHOICES else {"until": "Choose how long to snooze."}
        return errors, lambda m, user: services.snoozes.snooze(
            int(m["incident_id"]), Level(m["level"]), user, choice
        )

    for view_id, read in (
        (ActionId.SNOOZE_VIEW, snooze),
        (ActionId.RESOLVE_VIEW, resolve),
        (ActionId.ESCALATE_L3_VIEW, escalate_l3),
        (ActionId.ASK_DECISION_VIEW, ask_decision),
        (ActionId.RATIONALE_VIEW, rationale),
        (ActionId.ESCALATE_VIEW, escalate),
    ):
        app.view(view_id.value)(form(read))
