"""A loopback stand-in for Anthropic's Messages API: `POST /v1/messages` answered from a script of replies
(a message, or an error status with its error body and headers such as `retry-after`) or, once the script
is empty, by an `answer_from` function (the demo's recorded answers, bot/sandbox/llm_fixtures.py). Every
request is recorded with its headers and JSON body, so a test can search what was sent."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from bot.sandbox.loopback import LoopbackServer

MODEL = "claude-haiku-5-5"
_ids = itertools.count(1)


@dataclass(frozen=True)
class Scripted:
    """One reply: a status, a JSON body (or raw bytes, to send something that is not JSON), headers; with
    `hold` set, the reply waits until the server stops (a reply that never comes in time)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any  # the decoded JSON
    text: str  # the body as sent, to search for what must never be in it
    at: float  # time.monotonic() when it arrived


def usage(
    input_tokens: int = 120, output_tokens: int = 40, cache_read: int = 0, cache_creation: int = 0
) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_creation,
    }


def text(words: str) -> dict[str, Any]:
    return {"type": "text", "text": words}


def tool_use(name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{next(_ids):04d}", "name": name, "input": tool_input}


def message(
    *content: dict[str, Any],
    stop_reason: str | None = None,
    tokens: dict[str, int] | None = None,
    model: str = MODEL,
) -> Scripted:
    """A 200 with an assistant message; the stop reason is tool_use when it calls a tool, else end_turn."""
    calls = any(block["type"] == "tool_use" for block in content)
    return Scripted(
        body={
            "id": f"msg_{next(_ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": list(content),
            "stop_reason": stop_reason or ("tool_use" if calls else "end_turn"),
            "stop_sequence": None,
            "usage": tokens or usage(),
        }
    )


def error(status: int, kind: str, words: str, **headers: str) -> Scripted:
    """An error as the API sends it: `{"type": "error", "error": {"type": ..., "message": ...}}`."""
    return Scripted(
        status=status,
        body={"type": "error", "error": {"type": kind, "message": words}},
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )


AnswerFrom = Callable[[dict[str, Any]], Scripted]  # a request body → its reply


class AnthropicServer(LoopbackServer):
    """The stand-in. `script(...)` queues replies taken in order; with the script empty, `answer_from`
    (when given) answers, else the request is refused as one nobody scripted."""

    def __init__(self, api_key: str = "sk-ant-test-key", answer_from: AnswerFrom | None = None) -> None:
        self.api_key = api_key
        self.answer_from = answer_from
        self.received: list[Received] = []
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self) -> Self:
        self._serve(_Handler, "anthropic-loopback")
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases held replies
        self._shutdown()

    @property
    def url(self) -> str:
        return self._url("the Anthropic stand-in")

    def script(self, *replies: Scripted) -> None:
        """Queue replies: each request takes the next one."""
        with self._lock:
            self._script.extend(replies)

    def left(self) -> int:
        with self._lock:
            return len(self._script)

    def answer(self, path: str, headers: dict[str, str], raw: bytes) -> Scripted:
        key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        if key != self.api_key:
            return error(401, "authentication_error", "invalid x-api-key")
        if path != "/v1/messages":
            return error(404, "not_found_error", f"no route {path}")
        body = json.loads(raw)
        with self._lock:
            self.received.append(Received(path, headers, body, raw.decode(), time.monotonic()))
            if self._script:
                return self._script.popleft()
        if self.answer_from is not None:
            return self.answer_from(body)
        return error(400, "invalid_request_error", "the test scripted no reply for this request")

    def wait_held(self) -> None:
        self._stopping.wait(timeout=30)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go as two writes: no delayed-ACK wait between them

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: AnthropicServer = self.server.sandbox  # type: ignore[attr-defined]
        reply = server.answer(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
        if reply.hold:
            server.wait_held()
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", f"req_{next(_ids):04d}")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep quiet."""
