"""The server plumbing the sandbox's stand-ins share: a threaded HTTP server on a loopback port (HTTPS
when given a TLS context), the handler that passes each request to its stand-in, and the record of
requests a test can wait on."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)

Answer = tuple[int, str, bytes]  # status code, content type, body
_answering = threading.local()  # the request each handler thread is answering


def request_headers() -> Mapping[str, str]:
    """The headers of the request this thread is answering (case-insensitive; empty outside one)."""
    headers: Mapping[str, str] = getattr(_answering, "headers", {})
    return headers


@dataclass(frozen=True)
class Recorded:
    """One request as a stand-in received it."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any  # the decoded JSON body (a dict for objects), or None
    headers: Mapping[str, str] = field(default_factory=dict, compare=False)  # names in lower case


def wait_for_request(
    recorded: threading.Condition,
    requests: list[Recorded],
    predicate: Callable[[Recorded], bool],
    timeout: float,
    where: str,
) -> Recorded:
    """Block until a request matching `predicate` is in `requests` (appended under `recorded`)."""
    with recorded:
        found: list[Recorded] = []

        def seen() -> bool:
            found[:] = [r for r in requests if predicate(r)][:1]
            return bool(found)

        if not recorded.wait_for(seen, timeout):
            raise TimeoutError(f"no matching request reached {where}")
        return found[0]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            # the handshake then happens on the request's own thread, at its first read
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-request is what fault tests do on purpose.
        log.debug("sandbox: connection error from %s", client_address, exc_info=True)


class LoopbackServer:
    """Start/stop and a context manager; the request handler reaches this object as `server.sandbox`."""

    _server: _Server | None = None
    _thread: threading.Thread | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _serve(
        self,
        handler: type[BaseHTTPRequestHandler],
        name: str,
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        server = _Server(("127.0.0.1", port), handler)
        server.tls = tls
        server.sandbox = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._thread.start()

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _port(self, what: str) -> int:
        if self._server is None:
            raise RuntimeError(f"{what} is not started")
        return int(self._server.server_address[1])

    def _url(self, what: str) -> str:
        scheme = "https" if self._server is not None and self._server.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._port(what)}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class SandboxHandler(BaseHTTPRequestHandler):
    """Passes each request to `server.sandbox.handle(method, path, content type, body)` and writes the
    `Answer` it returns."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        sandbox = self.server.sandbox  # type: ignore[attr-defined]
        _answering.headers = self.headers
        answer: Answer = sandbox.handle(self.command, self.path, self.headers.get("Content-Type"), raw)
        code, content_type, payload = answer
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""
