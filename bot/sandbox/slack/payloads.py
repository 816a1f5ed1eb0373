"""What Slack sends an app, built as Slack builds it: slash command forms, `block_actions` and
`view_submission` payloads, and Events API envelopes."""

from __future__ import annotations

import secrets
import time

from bot.sandbox.slack.identity import APP_ID, BOT_USER_ID, JSON

VERIFICATION_TOKEN = "sandbox-verification-token"


def text_value(s: str) -> JSON:
    """A `plain_text_input` value as it appears in `view.state.values`."""
    return {"type": "plain_text_input", "value": s}


def select_value(v: str, text: str | None = None) -> JSON:
    """A `static_select` value as it appears in `view.state.values`."""
    option = {"text": {"type": "plain_text", "text": text or v, "emoji": True}, "value": v}
    return {"type": "static_select", "selected_option": option}


def user_ref(user_id: str, name: str, team_id: str) -> JSON:
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def slash_command_form(
    *,
    command: str,
    text: str,
    team_id: str,
    channel: tuple[str, str],
    user: tuple[str, str],
    response_url: str,
    trigger_id: str,
) -> dict[str, str]:
    """The form of `/command text`, run by `user` (id, name) in `channel` (id, name)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": "sandbox",
        "channel_id": channel[0],
        "channel_name": channel[1],
        "user_id": user[0],
        "user_name": user[1],
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def clicked_action(message: JSON, action_id: str, block_id: str, value: str | None) -> JSON:
    """The clicked element as Slack reports it, taken from the message's blocks when it is there."""
    found = (
        {**element, "block_id": block.get("block_id", block_id)}
        for block in message.get("blocks") or []
        for element in block.get("elements") or [block.get("accessory") or {}]
        if isinstance(element, dict) and element.get("action_id") == action_id
    )
    action: JSON = next(found, {"type": "button", "action_id": action_id, "block_id": block_id})
    action.setdefault("text", {"type": "plain_text", "text": action_id, "emoji": True})
    if value is not None:
        action["value"] = value
    action.pop("confirm", None)
    action["action_ts"] = f"{time.time():.6f}"
    return action


def block_actions_payload(
    *,
    user: JSON,
    team_id: str,
    channel: tuple[str, str],
    message: JSON,
    message_ts: str,
    action: JSON,
    trigger_id: str,
    response_url: str,
) -> JSON:
    """A click on `message` (at `message_ts` in `channel` (id, name)) as the `block_actions` payload."""
    return {
        "type": "block_actions",
        "user": user,
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel[0],
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id,
        "team": {"id": team_id, "domain": "sandbox"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel[0], "name": channel[1]},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }


def view_block_actions_payload(
    *, user: JSON, team_id: str, view: JSON, action: JSON, trigger_id: str
) -> JSON:
    """A click on an element of a view (a Home tab, an open modal) as the `block_actions` payload: it
    names the view instead of a channel and message, and carries no response url."""
    return {
        "type": "block_actions",
        "user": user,
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "view", "view_id": view.get("id", "")},
        "trigger_id": trigger_id,
        "team": {"id": team_id, "domain": "sandbox"},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": view,
        "actions": [action],
    }


def submitted_view(
    stored: JSON,
    *,
    view_id: str,
    team_id: str,
    callback_id: str,
    values: dict[str, dict[str, JSON]],
    private_metadata: str,
) -> JSON:
    """The modal as submitted with `values`; the opened view `stored`, if known, fills in the rest."""
    return {
        "id": view_id,
        "team_id": team_id,
        "type": "modal",
        "blocks": stored.get("blocks", []),
        "private_metadata": private_metadata or stored.get("private_metadata", ""),
        "callback_id": callback_id or stored.get("callback_id", ""),
        "state": {"values": values},
        "hash": stored.get("hash", f"{int(time.time())}.{secrets.token_hex(4)}"),
        "title": stored.get("title", {"type": "plain_text", "text": "Modal"}),
        "clear_on_close": False,
        "notify_on_close": False,
        "close": stored.get("close"),
        "submit": stored.get("submit"),
        "previous_view_id": stored.get("previous_view_id"),
        "root_view_id": stored.get("root_view_id", view_id),
        "app_id": APP_ID,
        "external_id": stored.get("external_id", ""),
        "app_installed_team_id": team_id,
        "bot_id": stored.get("bot_id", "BBOT"),
    }


def view_submission_payload(*, user: JSON, team_id: str, view: JSON, trigger_id: str) -> JSON:
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "sandbox"},
        "user": user,
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "view": view,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def event_callback(event: JSON, event_id: str, team_id: str) -> JSON:
    """One Events API event in its `event_callback` envelope."""
    inner = dict(event)
    if "ts" in inner:
        inner.setdefault("event_ts", inner["ts"])
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": inner,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{secrets.token_urlsafe(12)}",
    }


def url_verification(challenge: str) -> JSON:
    return {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
