"""One server-side WebSocket connection on a plain socket, framed by wsproto (RFC 6455).

wsproto does the protocol: the upgrade handshake (and its refusals: 400 for a malformed upgrade, 426 for
another WebSocket version), unmasking client frames (an unmasked one closes the link with 1002), message
fragments, and the closing handshake. This class only moves bytes between it and the socket.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

_CHUNK = 65536


class WebSocketLink:
    """A client's connection: `accept()` answers its upgrade request, `serve()` reads until it closes or
    goes away. Sends may come from any thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = threading.Event()
        self._ws = WSConnection(ConnectionType.SERVER)
        self._lock = threading.Lock()  # one wsproto state, read by one thread and written by several

    def accept(self, refuse: Callable[[str], tuple[int, str] | None]) -> bool:
        """Read the upgrade request and answer 101, unless `refuse(target)` gives (status, reason)."""
        while True:
            data = self.sock.recv(_CHUNK)
            try:
                events = self._feed(data or None)
            except RemoteProtocolError as error:
                if error.event_hint is not None:
                    self._send(error.event_hint)
                return False
            for event in events:
                if not isinstance(event, Request):
                    continue
                refusal = refuse(event.target)
                if refusal is None:
                    self._send(AcceptConnection())
                    return True
                status, reason = refusal
                body = reason.encode()
                headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
                self._send(RejectConnection(status_code=status, headers=headers, has_body=True))
                self._send(RejectData(data=body))
                return False
            if not data:
                return False

    def serve(self, on_text: Callable[[str], None]) -> None:
        """Answer pings and the closing handshake, and pass each whole text message to `on_text`."""
        parts: list[str] = []
        while True:
            data = self.sock.recv(_CHUNK)
            for event in self._feed(data or None):
                if isinstance(event, TextMessage):
                    parts.append(event.data)
                    if event.message_finished:
                        on_text("".join(parts))
                        parts.clear()
                elif isinstance(event, Ping):
                    self._send(event.response())
                elif isinstance(event, CloseConnection):
                    self._answer_close(event)
                    return
            if not data:
                return

    def send_text(self, text: str) -> None:
        self._send(TextMessage(data=text))

    def ping(self, payload: bytes) -> None:
        self._send(Ping(payload=payload))

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake, unless it is already under way."""
        with self._lock:
            if self._ws.state is ConnectionState.OPEN:
                self.sock.sendall(self._ws.send(CloseConnection(code=code, reason=reason)))

    def shut(self) -> None:
        with contextlib.suppress(OSError):  # the peer may already be gone
            self.sock.shutdown(socket.SHUT_RDWR)

    def _answer_close(self, event: CloseConnection) -> None:
        with self._lock:
            state = self._ws.state
        if state is ConnectionState.REMOTE_CLOSING:
            self._send(CloseConnection(code=event.code))  # echo the peer's code, as RFC 6455 asks
        elif state is ConnectionState.OPEN:
            self._send(event.response())  # the peer broke the protocol: say how, then go

    def _feed(self, data: bytes | None) -> list[Event]:
        with self._lock:
            self._ws.receive_data(data)
            return list(self._ws.events())

    def _send(self, event: Event) -> None:
        with self._lock:
            try:
                data = self._ws.send(event)
            except LocalProtocolError as error:
                raise ConnectionError(f"the WebSocket cannot send now: {error}") from error
            self.sock.sendall(data)
