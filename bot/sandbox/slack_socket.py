"""Socket Mode on loopback: the WebSocket side of Slack that the real slack_sdk `SocketModeClient` joins.

`apps.connections.open` on the emulator, called with the app-level token, mints a one-time ticket URL
(`ws://127.0.0.1:PORT/link/?ticket=…`). The client's WebSocket handshake on it is answered with Slack's
`hello`; then `send()` pushes envelopes (`events_api`, `slash_commands`, `interactive`) and
`wait_ack()` returns the `{"envelope_id", "payload"?}` ack the client sent back. `disconnect()` asks
clients to reconnect, as Slack does before it recycles a connection.

A thread per connection; the WebSocket protocol itself (handshake, framing, masking, pings, the closing
handshake) is wsproto's, in `bot.sandbox.slack.websocket`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socketserver
import threading
import uuid
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from bot.sandbox.slack.websocket import WebSocketLink
from bot.sandbox.slack_emulator import APP_ID, SlackEmulator

log = logging.getLogger(__name__)

JSON = dict[str, Any]
EnvelopeType = Literal["events_api", "slash_commands", "interactive"]
APP_TOKEN = "xapp-1-sandbox"
# Slack asks for a response payload only where one can change what the user sees.
_RESPONDS = {"view_submission", "block_suggestion"}


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, owner: SocketModeServer) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("socket mode: connection error from %s", client_address, exc_info=True)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        owner = self.server.owner
        link = WebSocketLink(self.request)
        if not link.accept(owner._refusal):
            return
        try:
            owner._hello(link)
            link.serve(owner._on_text)
        except OSError:
            log.debug("socket mode: connection from %s dropped", self.client_address, exc_info=True)
        finally:
            owner._closed(link)


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
        # Slack pings its clients; slack_sdk's builtin client also notices its own close only on the
        # next frame it receives, so a short interval makes clients shut down faster.
        self.ping_interval = ping_interval
        # Set while at least one client has its `hello`; cleared when the last one goes away.
        self.connected = threading.Event()
        self._port = port
        self._cond = threading.Condition(threading.RLock())
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tickets: set[str] = set()
        self._links: list[WebSocketLink] = []
        self._handshakes = 0
        self._acks: dict[str, JSON] = {}
        self._received: list[JSON] = []

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SocketModeServer:
        """Bind 127.0.0.1, serve in a background thread and attach to the emulator."""
        if self._server is None:
            self._server = _Server(self._port, self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="socket-mode",
                daemon=True,
            )
            self._thread.start()
        if self.emulator is not None:
            self.emulator.connections_open = self.connections_open
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Detach from the emulator, close every connection with 1001 and stop listening."""
        if self.emulator is not None and self.emulator.connections_open == self.connections_open:
            self.emulator.connections_open = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        with self._cond:
            links = list(self._links)
        for link in links:
            with contextlib.suppress(OSError):
                link.close(1001, "server stopping")
            link.shut()
        for link in links:
            link.closed.wait(timeout)
        self._server, self._thread = None, None

    def __enter__(self) -> SocketModeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the Socket Mode server is not started")
        return int(self._server.server_address[1])

    # ---- what Slack does -------------------------------------------------------------------------

    def connections_open(self, token: str | None) -> JSON:
        """The `apps.connections.open` answer for `token`: a one-time WebSocket URL, or Slack's error."""
        if not token:
            return {"ok": False, "error": "not_authed"}
        if not token.startswith("xapp-"):
            return {"ok": False, "error": "not_allowed_token_type"}
        if token != self.app_token:
            return {"ok": False, "error": "invalid_auth"}
        ticket = secrets.token_hex(16)
        with self._cond:
            self._tickets.add(ticket)
        query = urlencode({"ticket": ticket, "app_id": self.app_id})
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
        with self._cond:
            link = next((x for x in reversed(self._links) if not x.closed.is_set()), None)
        if link is None:
            raise RuntimeError("no Socket Mode client is connected")
        link.send_text(json.dumps(envelope))
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
        with self._cond:
            links = [x for x in self._links if not x.closed.is_set()]
        for link in links:
            message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "sandbox"}}
            link.send_text(json.dumps(message))

    @property
    def handshakes(self) -> int:
        """How many clients completed a handshake since start."""
        with self._cond:
            return self._handshakes

    @property
    def live_connections(self) -> int:
        """How many clients are connected now."""
        with self._cond:
            return len(self._links)

    @property
    def received(self) -> list[JSON]:
        """Every JSON message the clients sent, acks included, in arrival order."""
        with self._cond:
            return [dict(m) for m in self._received]

    # ---- connection bookkeeping (called from connection threads) ----------------------------------

    def _refusal(self, target: str) -> tuple[int, str] | None:
        """Why the upgrade request for `target` is refused, if it is: its ticket is unknown or used."""
        url = urlsplit(target)
        ticket = (parse_qs(url.query).get("ticket") or [""])[0]
        with self._cond:
            if url.path.rstrip("/") != "/link" or ticket not in self._tickets:
                return 401, "invalid or used ticket"
            self._tickets.discard(ticket)  # tickets are single use
            return None

    def _hello(self, link: WebSocketLink) -> None:
        with self._cond:
            live = 1 + sum(1 for x in self._links if not x.closed.is_set())
        hello = json.dumps(
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
        link.send_text(hello)
        with self._cond:
            self._links.append(link)  # only now may envelopes go to it: Slack says hello first
            self._handshakes += 1
            self.connected.set()
            self._cond.notify_all()
        if self.ping_interval:
            threading.Thread(
                target=self._ping, args=(link, self.ping_interval), name="socket-mode-ping", daemon=True
            ).start()

    @staticmethod
    def _ping(link: WebSocketLink, interval: float) -> None:
        while not link.closed.wait(interval):
            try:
                link.ping(b"sandbox")
            except OSError:
                return

    def _closed(self, link: WebSocketLink) -> None:
        link.shut()
        with self._cond:
            link.closed.set()
            if link in self._links:
                self._links.remove(link)
            if not self._links:
                self.connected.clear()
            self._cond.notify_all()

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
