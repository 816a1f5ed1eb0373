"""The WebSocket side of Socket Mode: a listening socket on 127.0.0.1, the one-time tickets that admit a
client, and the clients connected now, each pinged and read in threads of its own."""

from __future__ import annotations

import contextlib
import logging
import secrets
import socketserver
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.sandbox.slack.websocket import WebSocketLink

log = logging.getLogger(__name__)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, links: SocketLinks) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.links = links

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("socket mode: connection error from %s", client_address, exc_info=True)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        links = self.server.links
        link = WebSocketLink(self.request)
        if not link.accept(links._refusal):
            return
        try:
            links._admit(link)
            link.serve(links.on_text)
        except OSError:
            log.debug("socket mode: connection from %s dropped", self.client_address, exc_info=True)
        finally:
            links._closed(link)


class SocketLinks:
    """Clients admitted by ticket; `greeting(live)` is the first message each gets (`live` counts it),
    and `on_text` gets every text message they send. State changes notify `cond`."""

    def __init__(
        self,
        cond: threading.Condition,
        port: int,
        greeting: Callable[[int], str],
        on_text: Callable[[str], None],
        ping_interval: float | None,
    ) -> None:
        self.on_text = on_text
        self.ping_interval = ping_interval
        # Set while at least one client has its greeting; cleared when the last one goes away.
        self.connected = threading.Event()
        self.handshakes = 0
        self._cond = cond
        self._port = port
        self._greeting = greeting
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tickets: set[str] = set()
        self._links: list[WebSocketLink] = []

    def start(self) -> None:
        if self._server is None:
            self._server = _Server(self._port, self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="socket-mode",
                daemon=True,
            )
            self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop listening, close every connection with 1001 and wait for each to go."""
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

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the Socket Mode server is not started")
        return int(self._server.server_address[1])

    def issue_ticket(self) -> str:
        """A ticket that admits one client, once."""
        ticket = secrets.token_hex(16)
        with self._cond:
            self._tickets.add(ticket)
        return ticket

    def live(self) -> list[WebSocketLink]:
        """The connections still open, oldest first."""
        with self._cond:
            return [x for x in self._links if not x.closed.is_set()]

    def count(self) -> int:
        with self._cond:
            return len(self._links)

    # ---- called from connection threads ------------------------------------------------------------

    def _refusal(self, target: str) -> tuple[int, str] | None:
        """Why the upgrade request for `target` is refused, if it is: its ticket is unknown or used."""
        url = urlsplit(target)
        ticket = (parse_qs(url.query).get("ticket") or [""])[0]
        with self._cond:
            if url.path.rstrip("/") != "/link" or ticket not in self._tickets:
                return 401, "invalid or used ticket"
            self._tickets.discard(ticket)  # tickets are single use
            return None

    def _admit(self, link: WebSocketLink) -> None:
        link.send_text(self._greeting(1 + len(self.live())))
        with self._cond:
            self._links.append(link)  # only now may anything else go to it: the greeting comes first
            self.handshakes += 1
            self.connected.set()
            self._cond.notify_all()
        if self.ping_interval:
            threading.Thread(
                target=_ping, args=(link, self.ping_interval), name="socket-mode-ping", daemon=True
            ).start()

    def _closed(self, link: WebSocketLink) -> None:
        link.shut()
        with self._cond:
            link.closed.set()
            if link in self._links:
                self._links.remove(link)
            if not self._links:
                self.connected.clear()
            self._cond.notify_all()


def _ping(link: WebSocketLink, interval: float) -> None:
    while not link.closed.wait(interval):
        try:
            link.ping(b"sandbox")
        except OSError:
            return
