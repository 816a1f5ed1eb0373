"""Socket Mode on loopback: the WebSocket side of Slack that the real slack_sdk `SocketModeClient` joins.

`apps.connections.open` on the emulator, called with the app-level token, mints a one-time ticket URL
(`ws://127.0.0.1:PORT/link/?ticket=…`). The client's WebSocket handshake on it is answered with Slack's
`hello`; then `send()` pushes envelopes (`events_api`, `slash_commands`, `interactive`) and
`wait_ack()` returns the `{"envelope_id", "payload"?}` ack the client sent back. `disconnect()` asks
clients to reconnect, as Slack does before it recycles a connection.

Plain RFC 6455 over a thread per connection: server frames are unmasked, client frames must be masked,
pings are answered with pongs, and a close frame is echoed before the socket is shut.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import secrets
import socket
import socketserver
import struct
import threading
import uuid
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from bot.sandbox.slack_driver import Response, SlackDriver
from bot.sandbox.slack_emulator import APP_ID, SlackEmulator

log = logging.getLogger(__name__)

JSON = dict[str, Any]
EnvelopeType = Literal["events_api", "slash_commands", "interactive"]
APP_TOKEN = "xapp-1-sandbox"
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_TEXT, _CLOSE, _PING, _PONG, _CONTINUATION = 0x1, 0x8, 0x9, 0xA, 0x0
# Slack asks for a response payload only where one can change what the user sees.
_RESPONDS = {"view_submission", "block_suggestion"}


def _frame(opcode: int, data: bytes) -> bytes:
    """One final, unmasked frame (servers never mask)."""
    size = len(data)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return head + data


def _unmask(data: bytes, key: bytes) -> bytes:
    if not data:
        return data
    pad = (key * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")).to_bytes(len(data), "big")


class _Link:
    """One open WebSocket connection."""

    def __init__(self, sock: socket.socket, number: int) -> None:
        self.sock = sock
        self.number = number
        self.closed = threading.Event()
        self._send_lock = threading.Lock()

    def send(self, opcode: int, data: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(_frame(opcode, data))

    def send_json(self, message: JSON) -> None:
        self.send(_TEXT, json.dumps(message).encode())

    def shut(self) -> None:
        with contextlib.suppress(OSError):  # the peer may already be gone
            self.sock.shutdown(socket.SHUT_RDWR)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, owner: SocketModeServer) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("socket mode: connection error from %s", client_address, exc_info=True)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        owner = self.server.owner
        key = self._handshake()
        if key is None:
            return
        link = _Link(self.connection, owner._next_number())
        try:
            accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
            self.connection.sendall(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
            )
            owner._hello(link)
            self._serve(link)
        except OSError:
            log.debug("socket mode: connection %d dropped", link.number, exc_info=True)
        finally:
            owner._closed(link)

    def _handshake(self) -> str | None:
        """Read the upgrade request; the Sec-WebSocket-Key when it carries a valid ticket, else None."""
        request = self.rfile.readline(8192).decode("latin-1").split()
        headers: dict[str, str] = {}
        while True:
            line = self.rfile.readline(8192).decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if len(request) != 3 or request[0] != "GET":
            self._refuse(400, "expected a GET upgrade request")
            return None
        url = urlsplit(request[1])
        ticket = (parse_qs(url.query).get("ticket") or [""])[0]
        if url.path.rstrip("/") != "/link" or not self.server.owner._redeem(ticket):
            self._refuse(401, "invalid or used ticket")
            return None
        key = headers.get("sec-websocket-key", "")
        if headers.get("upgrade", "").lower() != "websocket" or not key:
            self._refuse(400, "not a WebSocket upgrade")
            return None
        if headers.get("sec-websocket-version") != "13":
            self._refuse(426, "unsupported WebSocket version")
            return None
        return key

    def _refuse(self, status: int, reason: str) -> None:
        body = reason.encode()
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        self.connection.sendall(head.encode() + body)

    def _read(self, size: int) -> bytes:
        data = self.rfile.read(size) if size else b""
        if len(data) < size:
            raise EOFError
        return data

    def _serve(self, link: _Link) -> None:
        """Read frames until the client closes or goes away."""
        message, kind = b"", _TEXT
        while True:
            try:
                first, second = self._read(2)
                size = second & 0x7F
                if size == 126:
                    (size,) = struct.unpack("!H", self._read(2))
                elif size == 127:
                    (size,) = struct.unpack("!Q", self._read(8))
                if not second & 0x80:
                    link.send(_CLOSE, struct.pack("!H", 1002) + b"client frames must be masked")
                    return
                mask = self._read(4)
                data = _unmask(self._read(size), mask)
            except EOFError:
                return
            opcode = first & 0x0F
            if opcode == _PING:
                link.send(_PONG, data)
            elif opcode == _CLOSE:
                link.send(_CLOSE, data[:2])
                return
            elif opcode in (_TEXT, _CONTINUATION):
                kind = opcode if opcode != _CONTINUATION else kind
                message += data
                if first & 0x80:
                    if kind == _TEXT:
                        self.server.owner._on_text(message.decode("utf-8", errors="replace"))
                    message = b""


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
        self._links: list[_Link] = []
        self._handshakes = 0
        self._serial = 0
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
                link.send(_CLOSE, struct.pack("!H", 1001) + b"server stopping")
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
        link.send_json(envelope)
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
            link.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "sandbox"}})

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

    def _redeem(self, ticket: str) -> bool:
        with self._cond:
            if ticket not in self._tickets:
                return False
            self._tickets.discard(ticket)  # tickets are single use
            return True

    def _next_number(self) -> int:
        with self._cond:
            self._serial += 1
            return self._serial

    def _hello(self, link: _Link) -> None:
        with self._cond:
            live = 1 + sum(1 for x in self._links if not x.closed.is_set())
        link.send_json(
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
    def _ping(link: _Link, interval: float) -> None:
        while not link.closed.wait(interval):
            try:
                link.send(_PING, b"sandbox")
            except OSError:
                return

    def _closed(self, link: _Link) -> None:
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
