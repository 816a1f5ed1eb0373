"""Socket Mode on loopback: the WebSocket side of Slack that the real slack_sdk `SocketModeClient` joins.

`apps.connections.open` on the emulator, called with the app-level token, mints a one-time ticket URL
(`ws://127.0.0.1:PORT/link/?ticket=…`). The client's WebSocket handshake on it is answered with Slack's
`hello`; then `send()` pushes envelopes (`events_api`, `slash_commands`, `interactive`) and
`wait_ack()` returns the `{"envelope_id", "payload"?}` ack the client sent back. `disconnect()` asks
clients to reconnect, as Slack does before it recycles a connection.

The connections are kept in `bot.sandbox.slack.socket_links`, a thread per connection; the WebSocket
protocol itself (handshake, framing, masking, pings, the closing handshake) is wsproto's, in
`bot.sandbox.slack.websocket`.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlencode

from bot.sandbox.slack.socket_links import SocketLinks
from bot.sandbox.slack_emulator import APP_ID, JSON, SlackEmulator

log = logging.getLogger(__name__)

EnvelopeType = Literal["events_api", "slash_commands", "interactive"]
APP_TOKEN = "xapp-1-sandbox"
# Slack asks for a response payload only where one can change what the user sees.
_RESPONDS = {"view_submission", "block_suggestion"}


class SocketModeServer:
    """Slack's Socket Mode endpoint on 127.0.0.1; attach it to an emulator to answer
    `apps.connections.open` for `app_token`."""

    def __init__(
        self,
        emulator: SlackEmulator | None = None,
        app_token: str = APP_TOKEN,
        port: int = 0,
        app_id: str = APP_ID,
        ping_interval: float | None = 10.0,
    ) -> None:
        self.emulator = emulator
        self.app_token = app_token
        self.app_id = app_id
        self._cond = threading.Condition(threading.RLock())
        # Slack pings its clients; slack_sdk's builtin client also notices its own close only on the
        # next frame it receives, so a short interval makes clients shut down faster.
        self._links = SocketLinks(self._cond, port, self._hello, self._on_text, ping_interval)
        # Set while at least one client has its `hello`; cleared when the last one goes away.
        self.connected = self._links.connected
        self._acks: dict[str, JSON] = {}
        self._received: list[JSON] = []

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SocketModeServer:
        """Bind 127.0.0.1, serve in a background thread and attach to the emulator."""
        self._links.start()
        if self.emulator is not None:
            self.emulator.connections_open = self.connections_open
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Detach from the emulator, close every connection with 1001 and stop listening."""
        if self.emulator is not None and self.emulator.connections_open == self.connections_open:
            self.emulator.connections_open = None
        self._links.stop(timeout)

    def __enter__(self) -> SocketModeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._links.port

    # ---- what Slack does -------------------------------------------------------------------------

    def connections_open(self, token: str | None) -> JSON:
        """The `apps.connections.open` answer for `token`: a one-time WebSocket URL, or Slack's error."""
        if not token:
            return {"ok": False, "error": "not_authed"}
        if not token.startswith("xapp-"):
            return {"ok": False, "error": "not_allowed_token_type"}
        if token != self.app_token:
            return {"ok": False, "error": "invalid_auth"}
        query = urlencode({"ticket": self._links.issue_ticket(), "app_id": self.app_id})
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?{query}"}

    def send(
        self,
        envelope_type: EnvelopeType,
        payload: JSON,
        accepts_response_payload: bool | None = None,
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Deliver one envelope on the newest connection and return its `envelope_id`.

        `accepts_response_payload` defaults as Slack sets it: true for slash commands, view submissions
        and block suggestions, false otherwise."""
        if accepts_response_payload is None:
            accepts_response_payload = envelope_type == "slash_commands" or (
                envelope_type == "interactive" and payload.get("type") in _RESPONDS
            )
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        live = self._links.live()
        if not live:
            raise RuntimeError("no Socket Mode client is connected")
        live[-1].send_text(json.dumps(envelope))
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> JSON:
        """The ack the client sent for `envelope_id` (with its `payload`, if any); TimeoutError if none."""
        with self._cond:
            if not self._cond.wait_for(lambda: envelope_id in self._acks, timeout):
                raise TimeoutError(f"no ack for envelope {envelope_id} within {timeout}s")
            return dict(self._acks[envelope_id])

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until `predicate()` holds; it is re-checked whenever a client connects, leaves or sends."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def disconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's `disconnect` message on every connection; clients then open a new one."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "sandbox"}}
        for link in self._links.live():
            link.send_text(json.dumps(message))

    @property
    def ping_interval(self) -> float | None:
        return self._links.ping_interval

    @property
    def handshakes(self) -> int:
        """How many clients completed a handshake since start."""
        with self._cond:
            return self._links.handshakes

    @property
    def live_connections(self) -> int:
        """How many clients are connected now."""
        return self._links.count()

    @property
    def received(self) -> list[JSON]:
        """Every JSON message the clients sent, acks included, in arrival order."""
        with self._cond:
            return [dict(m) for m in self._received]

    # ---- what the clients say (called from connection threads) ------------------------------------

    def _hello(self, live: int) -> str:
        return json.dumps(
            {
                "type": "hello",
                "num_connections": live,
                "debug_info": {
                    "host": "applink-sandbox",
                    "build_number": 1,
                    "approximate_connection_time": 3600,
                },
                "connection_info": {"app_id": self.app_id},
            }
        )

    def _on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            log.warning("socket mode: a client sent a message that is not JSON: %.200s", text)
            return
        if not isinstance(message, dict):
            return
        with self._cond:
            self._received.append(message)
            envelope_id = message.get("envelope_id")
            if isinstance(envelope_id, str):
                self._acks.setdefault(envelope_id, message)
            self._cond.notify_all()
