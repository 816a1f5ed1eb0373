"""Send a bot the requests Slack sends: signed slash commands, interactions and events, over real HTTP.

Every method POSTs to `<bot_url>/slack/events` with Slack's content type, body shape and
`X-Slack-Signature` / `X-Slack-Request-Timestamp` headers. With an emulator attached, trigger ids and
response urls are minted by it, so the bot's `views.open` and `respond()` land in the same workspace.
For negative tests every method takes `sign=False` (no signature headers), `timestamp=` (e.g. a stale
one) and `tamper=True` (the body is changed after signing). The payloads themselves are built in
`bot.sandbox.slack.payloads`.
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

from bot.sandbox.slack import payloads
from bot.sandbox.slack.identity import JSON
from bot.sandbox.slack.lookups import WorkspaceLookups
from bot.sandbox.slack.payloads import select_value, text_value
from bot.sandbox.slack_emulator import SlackEmulator

__all__ = ["FORM", "Response", "SlackDriver", "select_value", "text_value"]

FORM = "application/x-www-form-urlencoded"


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
        self._workspace = WorkspaceLookups(emulator, self._serial)
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
        ws = self._workspace
        channel = ws.channel_id(channel_id)
        form = payloads.slash_command_form(
            command=command,
            text=text,
            team_id=self.team_id,
            channel=(channel, ws.channel_name(channel)),
            user=(user_id, user_name or ws.user_name(user_id)),
            response_url=ws.response_url(channel, None, user_id),
            trigger_id=ws.trigger_id(user_id),
        )
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
        ws = self._workspace
        channel = ws.channel_id(message_channel)
        message = message if message is not None else ws.message(channel, message_ts)
        message = {k: v for k, v in message.items() if k != "metadata"}  # bots must not rely on it here
        payload = payloads.block_actions_payload(
            user=self._user_ref(user_id),
            team_id=self.team_id,
            channel=(channel, ws.channel_name(channel)),
            message=message,
            message_ts=message_ts,
            action=payloads.clicked_action(message, action_id, block_id, value),
            trigger_id=trigger_id or ws.trigger_id(user_id),
            response_url=ws.response_url(channel, message_ts, user_id),
        )
        return self._send_payload(payload, sign, timestamp, tamper)

    def view_action(
        self,
        user_id: str,
        view: JSON,
        action_id: str,
        value: str | None,
        *,
        trigger_id: str | None = None,
        sign: bool = True,
        timestamp: int | None = None,
        tamper: bool = False,
    ) -> Response:
        """Click the element `action_id` carrying `value` in `view` (a Home tab or an open modal, as the
        emulator stores it)."""
        found = (
            {**element, "block_id": block.get("block_id", "b")}
            for block in view.get("blocks") or []
            for element in block.get("elements") or [block.get("accessory") or {}]
            if element.get("action_id") == action_id and element.get("value") == value
        )
        clicked = next(found, None) or payloads.clicked_action({}, action_id, "b", value)
        clicked.setdefault("action_ts", f"{time.time():.6f}")
        payload = payloads.view_block_actions_payload(
            user=self._user_ref(user_id),
            team_id=self.team_id,
            view=view,
            action=clicked,
            trigger_id=trigger_id or self._workspace.trigger_id(user_id, view.get("id")),
        )
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
        stored = self._workspace.view(view_id)
        view_id = view_id or f"V{next(self._serial):010d}"
        view = payloads.submitted_view(
            stored,
            view_id=view_id,
            team_id=self.team_id,
            callback_id=callback_id,
            values=values,
            private_metadata=private_metadata,
        )
        payload = payloads.view_submission_payload(
            user=self._user_ref(user_id),
            team_id=self.team_id,
            view=view,
            trigger_id=self._workspace.trigger_id(user_id, view_id),
        )
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
        event_id = event_id or f"Ev{next(self._serial):08d}{secrets.token_hex(3).upper()}"
        envelope = payloads.event_callback(event, event_id, self.team_id)
        headers = {"Content-Type": "application/json"}
        if retry_num is not None:
            headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
        body = json.dumps(envelope).encode()
        return self.raw(body, headers, sign=sign, timestamp=timestamp, tamper=tamper)

    def app_home_opened(
        self,
        user_id: str,
        tab: str = "home",
        *,
        sign: bool = True,
        timestamp: int | None = None,
        tamper: bool = False,
    ) -> Response:
        """`user_id` opens the app's Home tab (or its "messages" tab): the `app_home_opened` event, carrying
        the Home view the emulator holds for them, if any."""
        event = self._workspace.app_home_opened(user_id, tab)
        return self.event(event, sign=sign, timestamp=timestamp, tamper=tamper)

    def url_verification(self, challenge: str, *, sign: bool = True) -> Response:
        """The handshake Slack sends when the request URL is configured."""
        body = json.dumps(payloads.url_verification(challenge))
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

    def signature_headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """`X-Slack-Request-Timestamp` and `X-Slack-Signature` for `body`, as Slack computes them."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self._verifier.generate_signature(timestamp=ts, body=body) or ""
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}

    # ---- helpers -----------------------------------------------------------------------------------

    def _post(self, body: bytes, sent: dict[str, str]) -> Response:
        request = urllib.request.Request(self.url, data=body, headers=sent, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return Response(reply.status, dict(reply.headers.items()), reply.read())
        except urllib.error.HTTPError as error:
            with error:
                return Response(error.code, dict(error.headers.items()), error.read())

    def _send_payload(self, payload: JSON, sign: bool, timestamp: int | None, tamper: bool) -> Response:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.raw(body, {"Content-Type": FORM}, sign=sign, timestamp=timestamp, tamper=tamper)

    def _user_ref(self, user_id: str) -> JSON:
        return payloads.user_ref(user_id, self._workspace.user_name(user_id), self.team_id)
