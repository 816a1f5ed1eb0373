"""Buttons on the message of a group of incidents escalated together (an alert storm, a shared cause, an
Alertmanager group): each acts on every member still waiting at the group's level. Acknowledge acts at
once; Resolved and Escalate to tech lead open the same modals as for one incident, whose submission
(handlers/views.py) acts on the group. *Handle alone*, on a member in the group's thread, splits it out."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, BoltContext, Respond

from bot.core.errors import InputError
from bot.core.models import Level
from bot.integrations.slack import blocks
from bot.services.group_decisions import GROUP_DECIDE
from bot.services.group_pages import GROUP_SPLIT
from bot.services.grouping import GROUP_ACK, GROUP_ESCALATE, GROUP_RESOLVE
from handlers.common import ask_why, durable, option_value, parse_value, tell

if TYPE_CHECKING:
    from bot.services.container import Services


def _where(body: dict[str, Any]) -> tuple[str, str | None, str | None]:
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    return str((body.get("user") or {}).get("id", "")), channel, container.get("message_ts")


def _group(body: dict[str, Any]) -> tuple[int, Level]:
    """The group and level a button names; InputError for a value the bot did not make."""
    actions = body.get("actions") or [{}]
    group_id, level = parse_value(actions[0].get("value") if isinstance(actions[0], dict) else None)
    try:
        return group_id, Level(level)
    except ValueError:
        raise InputError(
            "value", "this button's value is not one the bot made; nothing was changed"
        ) from None


def register(app: App, services: Services) -> None:
    groups = services.escalation_groups
    once = durable(services, app.listener_runner.listener_executor)

    def act(body: dict[str, Any], respond: Respond, work: Callable[[str, int, Level], Any]) -> None:
        user, channel, _ = _where(body)
        tell(services, channel, user, lambda: work(user, *_group(body)), respond)

    def open_modal(
        body: dict[str, Any], respond: Respond, build: Callable[..., dict[str, Any]], verb: str
    ) -> None:
        def work(user: str, group_id: int, level: Level) -> None:
            _, left = groups.waiting(group_id, level, user)
            _, channel, ts = _where(body)
            meta = {"group_id": group_id, "level": level.value, "channel": channel, "ts": ts}

            def view(private: dict[str, Any]) -> dict[str, Any]:
                built = build({"incident_id": None, "level": level.value}, private)
                built["title"]["text"] = f"{verb} {len(left)} incident{'' if len(left) == 1 else 's'}"[:24]
                return built

            services.views.open(str(body.get("trigger_id", "")), user, view, meta)

        act(body, respond, work)

    @once
    def handle_group_ack(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
        ack()
        act(body, respond, lambda user, group_id, level: groups.acknowledge(group_id, level, user))

    @once
    def handle_group_resolve(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
        ack()
        open_modal(body, respond, blocks.resolve_modal, "Resolve")

    @once
    def handle_group_escalate(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
        ack()
        open_modal(body, respond, blocks.escalate_l3_modal, "Escalate")

    @once
    def handle_group_split(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
        ack()  # the value names the member: "<incident id>:<level>"
        act(body, respond, lambda user, incident_id, level: groups.split(incident_id, level, user))

    @once
    def handle_group_decide(ack: Ack, body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
        ack()  # "<group id>:<index of the option the group's message offers>"; its block names the options

        def work(user: str, group_id: int, index: int) -> Any:
            action = (body.get("actions") or [{}])[0]
            digest = str(action.get("block_id", "") if isinstance(action, dict) else "").rpartition("-")[2]
            reply, made, label = groups.decide(group_id, index, digest, user)
            _, channel, _ = _where(body)
            ask_why(services, body, user, {"decision_ids": made, "channel": channel}, label)
            return reply

        user, channel, _ = _where(body)
        actions = body.get("actions") or [{}]
        tell(
            services,
            channel,
            user,
            lambda: work(
                user, *option_value(actions[0].get("value") if isinstance(actions[0], dict) else None)
            ),
            respond,
        )

    app.action(GROUP_ACK)(handle_group_ack)
    app.action(re.compile(rf"^{GROUP_DECIDE}_\d{{1,2}}$"))(handle_group_decide)
    app.action(GROUP_SPLIT)(handle_group_split)
    app.action(GROUP_RESOLVE)(handle_group_resolve)
    app.action(GROUP_ESCALATE)(handle_group_escalate)
