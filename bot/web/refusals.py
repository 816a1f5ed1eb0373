"""What an access log is read for, without a line for every request that went well: each request the
bot answered with 4xx or 5xx is logged with its method, path, status, sender and time taken.

uvicorn's own access log is off. At a few hundred Slack requests a second, a line per request cost the
event loop about 9% of its time; the ones that went well are counted in the bot's metrics instead."""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("bot.web")

Scope = dict[str, Any]
PATH_MAX = 200


class LogRefusals:
    """ASGI middleware around the whole app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answered = False

        async def sending(message: dict[str, Any]) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                if message["status"] >= 400:  # logged before the sender can see the answer
                    _log(scope, message["status"], started)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if not answered:
                _log(scope, "nothing (the app raised)", started)


def _log(scope: Scope, status: int | str, started: float) -> None:
    client = scope.get("client") or ("?", 0)
    log.warning(
        "%s %s answered %s to %s in %.1f ms",
        scope.get("method", "?"),
        printable(str(scope.get("path", ""))),
        status,
        client[0],
        (time.perf_counter() - started) * 1000,
    )


def printable(path: str) -> str:
    """A request path as one safe log line: control characters escaped, cut to PATH_MAX."""
    if not path.isprintable():
        path = path.encode("unicode_escape", "backslashreplace").decode("ascii")
    return path if len(path) <= PATH_MAX else path[:PATH_MAX] + "…"
