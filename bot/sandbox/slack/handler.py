"""The HTTP side of the Web API: each request's body read, passed to the server's `WebApi`, and its
`Reply` written back as JSON (or, for a dropped answer, the connection closed instead)."""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler
from typing import Any

from bot.sandbox.slack.web_api import Reply, WebApi

log = logging.getLogger(__name__)


class WebApiHandler(BaseHTTPRequestHandler):
    """Reaches the `WebApi` as `server.sandbox.web_api`."""

    def do_GET(self) -> None:
        self._dispatch(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._dispatch(self.rfile.read(length) if length else b"")

    def _dispatch(self, body: bytes) -> None:
        api: WebApi = self.server.sandbox.web_api  # type: ignore[attr-defined]
        try:
            reply = api.route(self.path, self.headers, body)
        except Exception:
            log.exception("slack emulator: unexpected error on %s", self.path)
            reply = Reply(500, {"ok": False, "error": "internal_error"})
        if reply.drop:
            self.close_connection = True  # the call was applied; the caller never hears back
            return
        data = json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            log.debug("slack emulator: client went away before the reply", exc_info=True)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("slack emulator: " + format, *args)
