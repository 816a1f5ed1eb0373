"""The driver for a bot in Socket Mode: Slack's requests delivered as envelopes on the socket."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from bot.sandbox.slack_driver import Response, SlackDriver
from bot.sandbox.slack_emulator import JSON, SlackEmulator
from bot.sandbox.slack_socket import EnvelopeType, SocketModeServer


class SocketModeDriver(SlackDriver):
    """`SlackDriver` over Socket Mode: the same payloads, sent as envelopes instead of signed POSTs.

    Each call waits for the ack and answers 200 with the ack's `payload` as the body (empty without one),
    as the HTTP transport would; `last_ack` holds the whole ack. No signature is involved."""

    def __init__(self, socket_mode: SocketModeServer, emulator: SlackEmulator, timeout: float = 5.0) -> None:
        super().__init__("http://127.0.0.1:9", "unused-in-socket-mode", emulator, timeout=timeout)
        self.socket_mode = socket_mode
        self.last_ack: JSON = {}

    def raw(
        self,
        body: bytes,
        headers: dict[str, str],
        *,
        sign: bool = True,
        timestamp: int | None = None,
        tamper: bool = False,
    ) -> Response:
        """Send `body` (a form, a `payload=` form or an Events API JSON) as its Socket Mode envelope."""
        content_type = headers.get("Content-Type", "")
        retry: dict[str, Any] = {}
        if "json" in content_type:
            kind: EnvelopeType = "events_api"
            payload = json.loads(body)
            if "X-Slack-Retry-Num" in headers:
                retry = {
                    "retry_attempt": int(headers["X-Slack-Retry-Num"]),
                    "retry_reason": headers.get("X-Slack-Retry-Reason", ""),
                }
        else:
            form = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
            kind = "interactive" if set(form) == {"payload"} else "slash_commands"
            payload = json.loads(form["payload"]) if kind == "interactive" else form
        envelope_id = self.socket_mode.send(kind, payload, **retry)
        self.last_ack = self.socket_mode.wait_ack(envelope_id, self.timeout)
        answer = self.last_ack.get("payload")
        data = json.dumps(answer).encode() if answer is not None else b""
        return Response(200, {"Content-Type": "application/json"}, data)
