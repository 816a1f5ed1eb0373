"""Send a bot the requests Slack sends: signed slash commands, interactions and events, over real HTTP.

Every method POSTs to `<bot_url>/slack/events` with Slack's content type, body shape and
`X-Slack-Signature` / `X-Slack-Request-Timestamp` headers. With an emulator attached, trigger ids and
response urls are minted by it, so the bot's `views.open` and `respond()` land in the same workspace.
For negative tests every method takes `sign=False` (no signature headers), `timestamp=` (e.g. a stale
one) and `tamper=True` (the body is changed after signing).
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from bot.sandbox.slack_emulator import APP_ID, BOT_USER_ID, SlackEmulator

JSON = dict[str, Any]
FORM = "application/x-www-form-urlencoded"
# An address that refuses connections at once, for response urls when no emulator is attached.
_NOWHERE = "http://127.0.0.1:9/response/none"


@dataclass(frozen=True)
class Response:
    """What the bot answered."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def text_value(s: str) -> JSON:
    """A `plain_text_input` value as it appears in `view.state.values`."""
    return {"type": "plain_text_input", "value": s}


def select_value(v: str, text: str | None = None) -> JSON:
    """A `static_select` value as it appears in `view.state.values`."""
    option = {"text": {"type": "plain_text", "text": text or v, "emoji": True}, "value": v}
    return {"type": "static_select", "selected_option": option}


class SlackDriver:
    """Drives a bot at `bot_url` exactly as Slack would, signed with `signing_secret`."""

    text_value = staticmethod(text_value)
    select_value = staticmethod(select_value)

    def __init__(
        self,
        bot_url: str,
        signing_secret: str,
        emulator: SlackEmulator | None = None,
        team_id: str = "T0SANDBOX",
        timeout: float = 10.0,
    ) -> None:
        self.url = bot_url.rstrip("/") + "/slack/events"
        self.emulator = emulator
        self.team_id = team_id
        self.timeout = timeout
        self._verifier = SignatureVerifier(signing_secret)
        self._serial = itertools.count(1)
        self.last_sent: tuple[bytes, dict[str, str]] | None = None

    # ---- what Slack sends --------------------------------------------------------------------------

    def slash_command(
        self,
        command: str,
        text: str,
        user_id: str,
        channel_id: str,
        user_name: str | None = None,
        *,
        sign: bool = True,
        timestamp: int | None = None,
        tamper: bool = False,
    ) -> Response:
        """Run `/command text` as `user_id` in `channel_id` (an id or a name)."""
        channel = self._channel_id(channel_id)
        form = {
            "token": "sandbox-verification-token",
            "team_id": self.team_id,
            "team_domain": "sandbox",
            "channel_id": channel,
            "channel_name": self._channel_name(channel),
            "user_id": user_id,
            "user_name": user_name or self._user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self._response_url(channel, None, user_id),
            "trigger_id": self._trigger_id(user_id),
        }
        body = urlencode(form).encode()
        return self.raw(body, {"Content-Type": FORM}, sign=sign, timestamp=timestamp, tamper=tamper)

    def block_action(
        self,
        user_id: str,
        action_id: str,
        value: str | None,
        message_channel: str,
        message_ts: str,
        block_id: str = "b",
        message: JSON | None = None,
        trigger_id: str | None = None,
        *,
        sign: bool = True,
        timestamp: int | None = None,
        tamper: bool = False,
    ) -> Response:
        """Click the element `action_id` on the message at (message_channel, message_ts)."""
        channel = self._channel_id(message_channel)
        message = message if message is not None else self._stored_message(channel, message_ts)
        message = {k: v for k, v in message.items() if k != "metadata"}  # bots must not rely on it here
        action = self._action(message, action_id, block_id, value)
        payload: JSON = {
            "type": "block_actions",
            "user": self._user_ref(user_id),
            "api_app_id": APP_ID,
            "token": "sandbox-verification-token",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "trigger_id": trigger_id or self._trigger_id(user_id),
            "team": {"id": self.team_id, "domain": "sandbox"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": self._channel_name(channel)},
            "message": message,
            "state": {"values": {}},
            "response_url": self._response_url(channel, message_ts, user_id),
            "actions": [action],
        }
        return self._send_payload(payload, sign, timestamp, tamper)

    def view_submission(
        self,
        user_id: str,
        callback_id: str,
        values: dict[str, dict[str, JSON]],
        private_metadata: str = "",
        view_id: str | None = None,
        *,
        sign: bool = True,
        timestamp: int | None = None,
        tamper: bool = False,
    ) -> Response:
        """Submit a modal; a `view_id` the emulator knows supplies its blocks, title and private_metadata."""
        stored = self._stored_view(view_id)
        view_id = view_id or f"V{next(self._serial):010d}"
        view = {
            "id": view_id,
            "team_id": self.team_id,
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
            "app_installed_team_id": self.team_id,
            "bot_id": stored.get("bot_id", "BBOT"),
        }
        payload: JSON = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": "sandbox"},
            "user": self._user_ref(user_id),
            "api_app_id": APP_ID,
            "token": "sandbox-verification-token",
            "trigger_id": self._trigger_id(user_id, view_id),
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        return self._send_payload(payload, sign, timestamp, tamper)

    def event(
        self,
        event: JSON,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        *,
        sign: bool = True,
        timestamp: int | None = None,
        tamper: bool = False,
    ) -> Response:
        """Deliver one Events API event in its `event_callback` envelope (a redelivery with `retry_num`)."""
        inner = dict(event)
        if "ts" in inner:
            inner.setdefault("event_ts", inner["ts"])
        envelope = {
            "token": "sandbox-verification-token",
            "team_id": self.team_id,
            "api_app_id": APP_ID,
            "event": inner,
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._serial):08d}{secrets.token_hex(3).upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{secrets.token_urlsafe(12)}",
        }
        headers = {"Content-Type": "application/json"}
        if retry_num is not None:
            headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
        body = json.dumps(envelope).encode()
        return self.raw(body, headers, sign=sign, timestamp=timestamp, tamper=tamper)

    def url_verification(self, challenge: str, *, sign: bool = True) -> Response:
        """The handshake Slack sends when the request URL is configured."""
        body = json.dumps(
            {"token": "sandbox-verification-token", "challenge": challenge, "type": "url_verification"}
        )
        return self.raw(body.encode(), {"Content-Type": "application/json"}, sign=sign)

    def raw(
        self,
        body: bytes,
        headers: dict[str, str],
        *,
        sign: bool = True,
        timestamp: int | None = None,
        tamper: bool = False,
    ) -> Response:
        """POST `body` with `headers`, adding Slack's signature headers unless `sign` is False."""
        sent = {"User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)", **headers}
        if sign:
            sent |= self.signature_headers(body, timestamp)
        if tamper:
            body = body + b" "  # any change after signing must invalidate the signature
        self.last_sent = (body, dict(sent))
        return self._post(body, sent)

    def replay(self) -> Response:
        """Send the last request again, byte for byte with the same headers (an attacker's replay)."""
        if self.last_sent is None:
            raise LookupError("nothing was sent yet")
        body, headers = self.last_sent
        return self._post(body, headers)

    def _post(self, body: bytes, sent: dict[str, str]) -> Response:
        request = urllib.request.Request(self.url, data=body, headers=sent, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return Response(reply.status, dict(reply.headers.items()), reply.read())
        except urllib.error.HTTPError as error:
            with error:
                return Response(error.code, dict(error.headers.items()), error.read())

    def signature_headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """`X-Slack-Request-Timestamp` and `X-Slack-Signature` for `body`, as Slack computes them."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self._verifier.generate_signature(timestamp=ts, body=body) or ""
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}

    # ---- helpers -----------------------------------------------------------------------------------

    def _send_payload(self, payload: JSON, sign: bool, timestamp: int | None, tamper: bool) -> Response:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.raw(body, {"Content-Type": FORM}, sign=sign, timestamp=timestamp, tamper=tamper)

    def _channel_id(self, channel: str) -> str:
        if self.emulator is None:
            return channel
        try:
            return self.emulator.channel_id(channel)
        except LookupError:
            return channel  # let the bot see an unknown channel, as Slack would send it

    def _channel_name(self, channel_id: str) -> str:
        if self.emulator is None:
            return channel_id
        try:
            return self.emulator.channel_name(channel_id)
        except LookupError:
            return channel_id

    def _user_name(self, user_id: str) -> str:
        if self.emulator is None:
            return user_id
        try:
            return str(self.emulator.user(user_id)["name"])
        except LookupError:
            return user_id

    def _user_ref(self, user_id: str) -> JSON:
        name = self._user_name(user_id)
        return {"id": user_id, "username": name, "name": name, "team_id": self.team_id}

    def _trigger_id(self, user_id: str, view_id: str | None = None) -> str:
        if self.emulator is not None:
            return self.emulator.mint_trigger_id(user=user_id, view_id=view_id)
        return f"{next(self._serial)}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"

    def _response_url(self, channel: str, ts: str | None, user_id: str) -> str:
        if self.emulator is None:
            return _NOWHERE
        try:
            return self.emulator.mint_response_url(channel=channel, ts=ts, user=user_id)
        except LookupError:
            return self.emulator.mint_response_url(user=user_id)

    def _stored_message(self, channel: str, ts: str) -> JSON:
        if self.emulator is not None:
            try:
                return self.emulator.message(channel, ts)
            except LookupError:
                pass
        return {"type": "message", "ts": ts, "text": "", "blocks": []}

    def _stored_view(self, view_id: str | None) -> JSON:
        if self.emulator is None or view_id is None:
            return {}
        try:
            return self.emulator.view(view_id)
        except LookupError:
            return {}

    @staticmethod
    def _action(message: JSON, action_id: str, block_id: str, value: str | None) -> JSON:
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
