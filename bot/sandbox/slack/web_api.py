"""The Web API surface: a request's path, query and body parsed, the token checked, the faults in force
applied, and the call routed to its method (or to a response_url, or to a file's upload URL) under the
workspace lock.

Slack's conventions kept here: API errors are HTTP 200 with `{"ok": false, "error": ...}`; a 429 carries
`Retry-After`; every answer names the token's scopes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from urllib.parse import parse_qs, urlsplit

from bot.sandbox.slack.conventions import Failure, decode_json_args
from bot.sandbox.slack.faults import Fault, SlackFaults
from bot.sandbox.slack.files import UploadRefused
from bot.sandbox.slack.identity import BOT_SCOPES, JSON
from bot.sandbox.slack.inspection import Call, Inspector
from bot.sandbox.slack.methods import METHODS
from bot.sandbox.slack.workspace import Workspace

# the scope a method needs, as Slack's `missing_scope` answer names it
_NEEDED = {
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "conversations.replies": "channels:history",
    "conversations.history": "channels:history",
}

UPLOAD_PATH = "/upload/v1/"  # where files.getUploadURLExternal's upload URLs point


@dataclass
class Reply:
    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


def parse_body(content_type: str, body: bytes) -> tuple[JSON, str | None]:
    """The arguments of a JSON or form body, and Slack's error when it cannot be read."""
    if not body:
        return {}, None
    if "json" in content_type or body.lstrip().startswith(b"{"):
        try:
            parsed = json.loads(body)
        except ValueError:
            return {}, "invalid_json"
        return (parsed, None) if isinstance(parsed, dict) else ({}, "invalid_json")
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}, "invalid_form_data"
    return {k: v[-1] for k, v in form.items()}, None


def _fault_reply(fault: Fault, headers: dict[str, str]) -> Reply:
    if fault.retry_after is not None:
        headers = {**headers, "Retry-After": str(fault.retry_after)}
    return Reply(fault.status, {"ok": False, "error": fault.error}, headers)


class WebApi:
    """Answers `/api/<method>` and `/response/<id>` requests for one workspace and bot token."""

    def __init__(
        self, workspace: Workspace, faults: SlackFaults, inspector: Inspector, bot_token: str
    ) -> None:
        self.bot_token = bot_token
        # Socket Mode: answers apps.connections.open for an app-level token (set by SocketModeServer).
        self.connections_open: Callable[[str], JSON] | None = None
        # Called with each `Call` as it arrives, before it is applied and answered (fault tests kill the
        # caller here, so it dies with the request in flight).
        self.on_request: list[Callable[[Call], object]] = []
        # Set while the server stops: a call waiting out injected latency is answered at once.
        self.stopping = threading.Event()
        self._ws = workspace
        self._faults = faults
        self._inspector = inspector

    def route(self, path: str, headers: Message, body: bytes) -> Reply:
        """Answer one HTTP request."""
        url = urlsplit(path)
        if url.path.startswith(UPLOAD_PATH):  # a file's raw bytes, sent without a token
            upload_id = url.path.removeprefix(UPLOAD_PATH)
            return self._serve(
                "upload_url",
                {"upload_id": upload_id, "size": len(body)},
                lambda: self._apply_upload(upload_id, body),
            )
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        args, parse_error = parse_body(headers.get("Content-Type", ""), body)
        args = {**query, **args}
        if url.path.startswith("/api/"):
            method = url.path.removeprefix("/api/")
            auth = headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
            token = token or args.pop("token", None)
            return self._serve(method, args, lambda: self._apply_api(method, token, args, parse_error))
        if url.path.startswith("/response/"):
            response_id = url.path.removeprefix("/response/")
            return self._serve(
                "response_url",
                {"response_id": response_id, **args},
                lambda: self._apply_response(response_id, args, parse_error),
            )
        return Reply(404, {"ok": False, "error": "not_found"})

    def _serve(self, method: str, args: JSON, apply: Callable[[], Reply]) -> Reply:
        """Record the call, let hooks, holds and latency have their turn, then apply it under the lock."""
        call = Call(method, args, self._ws.clock())
        with self._ws.cond:
            self._inspector.record(call)
            self._ws.cond.notify_all()
            held = self._faults.held(method)
            delay = self._faults.delay(method)
        for hook in list(self.on_request):
            hook(call)
        if held is not None:
            held.wait()
        if delay > 0:
            self.stopping.wait(delay)
        with self._ws.cond:
            reply = apply()
            call.status = 0 if reply.drop else reply.status
            call.error = None if reply.body.get("ok") else reply.body.get("error")
            self._ws.cond.notify_all()
        return reply

    def _apply_api(self, method: str, token: str | None, args: JSON, parse_error: str | None) -> Reply:
        headers = {"X-OAuth-Scopes": BOT_SCOPES, "X-Accepted-OAuth-Scopes": ""}
        if parse_error:
            return Reply(200, {"ok": False, "error": parse_error}, headers)
        if not token:
            return Reply(200, {"ok": False, "error": "not_authed"}, headers)
        if method == "apps.connections.open" and self.connections_open is not None:
            return Reply(200, self.connections_open(token), headers)
        if token != self.bot_token:
            return Reply(200, {"ok": False, "error": "invalid_auth"}, headers)
        fault = self._faults.take_fault(method)
        if fault is not None:
            return _fault_reply(fault, headers)
        error = self._faults.take_error(method)
        if error is not None:
            said: JSON = {"ok": False, "error": error}
            if error == "missing_scope":  # Slack names the scope the method needs, and those the token has
                said.update(needed=_NEEDED.get(method, "chat:write"), provided=BOT_SCOPES)
            return Reply(200, said, headers)
        implementation = METHODS.get(method)
        if implementation is None:
            return Reply(200, {"ok": False, "error": "unknown_method"}, headers)
        try:
            decode_json_args(args)
            if self._faults.rate_limited(method, lambda: self._ws.directory.channel(args.get("channel")).id):
                return Reply(429, {"ok": False, "error": "ratelimited"}, {**headers, "Retry-After": "1"})
            body = implementation(self._ws, args)
        except Failure as failure:
            body = {"ok": False, "error": failure.error}
        return Reply(200, body, headers, drop=self._faults.take_drop(method))

    def _apply_upload(self, upload_id: str, body: bytes) -> Reply:
        fault = self._faults.take_fault("upload_url")
        if fault is not None:
            return _fault_reply(fault, {})
        try:
            self._ws.files.receive(upload_id, body)
        except UploadRefused as refused:
            return Reply(refused.status, {"ok": False, "error": refused.reason})
        return Reply(200, {"ok": True, "size": len(body)}, drop=self._faults.take_drop("upload_url"))

    def _apply_response(self, response_id: str, payload: JSON, parse_error: str | None) -> Reply:
        fault = self._faults.take_fault("response_url")
        if fault is not None:
            return _fault_reply(fault, {})
        urls = self._ws.response_urls
        try:
            url = urls.live(response_id)
        except Failure as failure:
            return Reply(404, {"ok": False, "error": failure.error})
        if parse_error:
            return Reply(400, {"ok": False, "error": parse_error})
        urls.accept(response_id, url, payload)
        try:
            decode_json_args(payload)
            urls.respond(url, payload)
        except Failure as failure:
            return Reply(400, {"ok": False, "error": failure.error})
        return Reply(200, {"ok": True}, drop=self._faults.take_drop("response_url"))
