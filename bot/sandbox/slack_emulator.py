"""A stateful Slack workspace that speaks the Web API over loopback HTTP.

The real `slack_sdk.WebClient(token=..., base_url=emulator.api_url)` talks to it, so the bot's Slack
adapter, outbox and retry logic run unchanged in tests and in the offline demo. It holds channels,
users, user groups, messages and threads, ephemerals, reactions and views; records every call; and
injects faults (429 with Retry-After, 5xx, `ok:false` errors, latency, held and dropped requests).

Slack's conventions kept here: API errors are HTTP 200 with `{"ok": false, "error": ...}`; a 429
carries `Retry-After`; ids are `C…` channels, `U…` users, `S…` user groups, `V…` views; message
timestamps are unique `"<epoch>.<6 digits>"` strings.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

TEAM_ID = "T0SANDBOX"
TEAM_NAME = "Sandbox"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
APP_ID = "ASANDBOX"
BOT_NAME = "escalation-bot"
DEFAULT_CHANNELS = ("ml-alerts", "data-coordinator", "tech-leads", "ml-decisions", "escalation-admin")
BOT_SCOPES = (
    "app_mentions:read,channels:history,groups:history,channels:read,chat:write,commands,"
    "reactions:write,users:read,usergroups:read"
)
MAX_TEXT = 40_000
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_VIEW_BYTES = 250_000
RESPONSE_URL_USES = 5
RESPONSE_URL_TTL = 30 * 60.0
# Arguments that form-encoded callers send as JSON strings, and the error Slack gives when they are not JSON.
_JSON_ARGS = {
    "blocks": "invalid_blocks",
    "attachments": "invalid_attachments",
    "view": "invalid_arguments",
    "metadata": "invalid_metadata_format",
}

JSON = dict[str, Any]


@dataclass
class Call:
    """One request the emulator received; `status` is 0 while it is in flight or if it was dropped."""

    method: str
    args: JSON
    at: float
    status: int = 0
    error: str | None = None


@dataclass
class _Reply:
    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


class _Failure(LookupError):
    """An `ok:false` answer; public helpers let it out as a LookupError (unknown channel, thread, …)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class _Fault:
    status: int
    error: str
    retry_after: int | None
    count: int = 1
    until: float | None = None  # a time window instead of a count


@dataclass
class _Channel:
    id: str
    name: str
    members: set[str]
    created: int
    is_archived: bool = False


@dataclass
class _Trigger:
    minted_at: float
    user: str | None
    view_id: str | None
    used: bool = False


@dataclass
class _ResponseUrl:
    minted_at: float
    channel: str | None
    ts: str | None
    user: str | None
    uses: int = 0


def _flag(value: Any) -> bool:
    """Slack's booleans: JSON true, or "1"/"true" in a form."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _ts_key(ts: Any, error: str) -> Decimal:
    try:
        return Decimal(str(ts))
    except InvalidOperation as exc:
        raise _Failure(error) from exc


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, emulator: SlackEmulator) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.emulator = emulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("slack emulator: connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._dispatch(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._dispatch(self.rfile.read(length) if length else b"")

    def _dispatch(self, body: bytes) -> None:
        try:
            reply = self.server.emulator._route(self.path, self.headers, body)
        except Exception:
            log.exception("slack emulator: unexpected error on %s", self.path)
            reply = _Reply(500, {"ok": False, "error": "internal_error"})
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


class SlackEmulator:
    """A local Slack workspace serving the Web API at `api_url`; see the module docstring."""

    def __init__(
        self,
        bot_token: str = "xoxb-sandbox",
        port: int = 0,
        *,
        on_message: Callable[[JSON], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        trigger_ttl: float = 3.0,
        strict_rate_limit: bool = False,
    ) -> None:
        self.bot_token = bot_token
        self.team_id, self.bot_user_id, self.bot_id, self.app_id = TEAM_ID, BOT_USER_ID, BOT_ID, APP_ID
        # Called in its own thread with the `message` event Slack would deliver for each bot post.
        self.on_message = on_message
        # Socket Mode: answers apps.connections.open for an app-level token (set by SocketModeServer).
        self.connections_open: Callable[[str], JSON] | None = None
        # Called with each `Call` as it arrives, before it is applied and answered (fault tests kill the
        # caller here, so it dies with the request in flight).
        self.on_request: list[Callable[[Call], object]] = []
        self._port = port
        self._clock = clock
        self._trigger_ttl = trigger_ttl
        self._strict_rate_limit = strict_rate_limit
        self._cond = threading.Condition(threading.RLock())
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._calls: list[Call] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._errors: dict[str, list[str]] = {}
        self._drops: dict[str, int] = {}
        self._latency: dict[str, float] = {}
        self._holds: dict[str, threading.Event] = {}
        self._last_post: dict[str, float] = {}
        self._channels: dict[str, _Channel] = {}
        self._users: dict[str, JSON] = {}
        self._usergroups: dict[str, JSON] = {}
        self._messages: dict[str, dict[str, JSON]] = {}
        self._ephemerals: list[JSON] = []
        self._views: dict[str, JSON] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._responses: list[JSON] = []
        self._last_ts_us = 0
        self._serial = 0
        self._methods: dict[str, Callable[[JSON], JSON]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.info": self._conversations_info,
            "conversations.list": self._conversations_list,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
            "users.info": self._users_info,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "reactions.add": self._reactions_add,
        }
        self.add_user(BOT_USER_ID, BOT_NAME, real_name="Escalation Bot", is_bot=True)
        for name in DEFAULT_CHANNELS:
            self.add_channel(name)

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SlackEmulator:
        """Bind 127.0.0.1 and serve in a background thread."""
        if self._server is None:
            self._stopping.clear()
            self._server = _Server(self._port, self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Release held requests, stop serving and close the socket."""
        self._stopping.set()
        with self._cond:
            for event in self._holds.values():
                event.set()
            self._holds.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server, self._thread = None, None

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the Slack emulator is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        # slack_sdk joins method names onto this with urljoin, which drops "/api" without the slash.
        return f"{self.base_url}/api/"

    def client(self, **kwargs: Any) -> Any:
        """A real `slack_sdk.WebClient` pointed at this workspace with the bot token."""
        from slack_sdk import WebClient

        return WebClient(token=self.bot_token, base_url=self.api_url, **kwargs)

    # ---- workspace set-up --------------------------------------------------------------------------

    def add_channel(self, name: str, id: str | None = None, members: Iterable[str] | None = None) -> str:
        """Create a public channel; by default the bot and every known user are members."""
        with self._cond:
            name = name.removeprefix("#")
            channel_id = id or f"C{self._next_serial():09d}"
            joined = set(members) if members is not None else set(self._users)
            self._channels[channel_id] = _Channel(channel_id, name, joined, int(time.time()))
            self._messages.setdefault(channel_id, {})
            return channel_id

    def add_user(
        self,
        id: str,
        name: str,
        real_name: str | None = None,
        is_bot: bool = False,
        email: str | None = None,
        join: bool = True,
    ) -> None:
        """Add a user; with `join` they become a member of every existing channel."""
        with self._cond:
            real = real_name or name
            self._users[id] = {
                "id": id,
                "team_id": TEAM_ID,
                "name": name,
                "real_name": real,
                "tz": "Etc/UTC",
                "tz_offset": 0,
                "is_bot": is_bot,
                "deleted": False,
                "profile": {"display_name": name, "real_name": real, "email": email or f"{name}@example.com"},
            }
            if join:
                for channel in self._channels.values():
                    channel.members.add(id)

    def add_usergroup(self, id: str, handle: str, users: Iterable[str]) -> str:
        """Add a user group (`handle` without "@")."""
        with self._cond:
            handle = handle.removeprefix("@")
            self._usergroups[id] = {
                "id": id,
                "team_id": TEAM_ID,
                "is_usergroup": True,
                "handle": handle,
                "name": handle,
                "description": "",
                "date_delete": 0,
                "users": list(users),
            }
            return id

    def join(self, channel: str, user: str) -> None:
        """Make `user` a member of `channel`."""
        with self._cond:
            self._channel(channel).members.add(user)

    def leave(self, channel: str, user: str) -> None:
        """Remove `user` (the bot too) from `channel`."""
        with self._cond:
            self._channel(channel).members.discard(user)

    def archive(self, channel: str) -> None:
        """Archive `channel`; posting to it then fails with `is_archived`."""
        with self._cond:
            self._channel(channel).is_archived = True

    def add_message(
        self, channel: str, text: str = "", *, thread_ts: str | None = None, **fields: Any
    ) -> JSON:
        """Store a message someone else posted (a person, Alertmanager, another bot) and return it."""
        with self._cond:
            ch = self._channel(channel)
            msg: JSON = {"type": "message", "text": text, **fields}
            parent = self._thread_parent(ch.id, thread_ts) if thread_ts else None
            msg["ts"] = self._mint_ts()
            if parent is not None:
                self._attach_reply(parent, msg, broadcast=False)
            self._messages[ch.id][msg["ts"]] = msg
            self._cond.notify_all()
            return copy.deepcopy(msg)

    def message_event(self, channel: str, ts: str) -> JSON:
        """The Events API `message` event Slack would deliver for the stored message at (channel, ts)."""
        with self._cond:
            ch = self._channel(channel)
            return self._event_for(ch.id, self._messages[ch.id][ts])

    def channel_id(self, channel: str) -> str:
        """The id of a channel given by id or name (with or without "#"); LookupError if unknown."""
        with self._cond:
            return self._channel(channel).id

    def channel_name(self, channel: str) -> str:
        """The name (without "#") of a channel given by id or name."""
        with self._cond:
            return self._channel(channel).name

    def user(self, user_id: str) -> JSON:
        """The stored user object; KeyError if unknown."""
        with self._cond:
            return copy.deepcopy(self._users[user_id])

    def mint_trigger_id(self, user: str | None = None, view_id: str | None = None) -> str:
        """A trigger id that `views.open`/`views.push` accept once within the trigger TTL."""
        with self._cond:
            trigger_id = f"{self._next_serial()}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"
            self._triggers[trigger_id] = _Trigger(self._clock(), user, view_id)
            return trigger_id

    def mint_response_url(
        self, channel: str | None = None, ts: str | None = None, user: str | None = None
    ) -> str:
        """A `response_url` on this server; with channel and ts, `replace_original` edits that message."""
        with self._cond:
            channel_id = self._channel(channel).id if channel else None
            response_id = secrets.token_hex(8)
            self._response_urls[response_id] = _ResponseUrl(self._clock(), channel_id, ts, user)
            return f"{self.base_url}/response/{response_id}"

    # ---- fault injection ---------------------------------------------------------------------------
    # `method` may be "*" for every method; response_url posts are the method "response_url".

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = 2,
        error: str | None = None,
        count: int = 1,
    ) -> None:
        """Answer the next `count` calls with `status` (429 → ratelimited, else internal_error)."""
        with self._cond:
            fault = _Fault(status, error or self._status_error(status), retry_after, count)
            self._faults.setdefault(method, []).append(fault)

    def fail_for(self, method: str, seconds: float, status: int, retry_after: int | None = None) -> None:
        """Answer every call to `method` with `status` for the next `seconds`."""
        with self._cond:
            until = self._clock() + seconds
            retry = retry_after if retry_after is not None or status != 429 else max(1, round(seconds))
            fault = _Fault(status, self._status_error(status), retry, count=0, until=until)
            self._faults.setdefault(method, []).append(fault)

    def error_next(self, method: str, error: str, count: int = 1) -> None:
        """Answer the next `count` calls with HTTP 200 `{"ok": false, "error": error}`."""
        with self._cond:
            self._errors.setdefault(method, []).extend([error] * count)

    def latency(self, method: str, seconds: float) -> None:
        """Delay every later call to `method` by `seconds` (0 removes the delay)."""
        with self._cond:
            self._latency[method] = seconds

    def hold(self, method: str) -> None:
        """Block calls to `method` (after recording them as received) until `release(method)`."""
        with self._cond:
            self._holds.setdefault(method, threading.Event())

    def release(self, method: str) -> None:
        """Let the calls held for `method` proceed, and stop holding new ones."""
        with self._cond:
            event = self._holds.pop(method, None)
        if event is not None:
            event.set()

    def drop_after_send(self, method: str, count: int = 1) -> None:
        """Apply the next `count` calls but close the connection without answering."""
        with self._cond:
            self._drops[method] = self._drops.get(method, 0) + count

    def clear_faults(self) -> None:
        """Remove every injected fault, error, latency, drop and hold."""
        with self._cond:
            self._faults.clear()
            self._errors.clear()
            self._latency.clear()
            self._drops.clear()
            held, self._holds = self._holds, {}
        for event in held.values():
            event.set()

    # ---- recordings for assertions -----------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        """Every recorded call to `method`, in arrival order."""
        with self._cond:
            return [c for c in self._calls if c.method == method]

    def messages(self, channel: str) -> list[JSON]:
        """Top-level messages of a channel (id or name), oldest first."""
        with self._cond:
            ch = self._channel(channel)
            return [copy.deepcopy(m) for m in self._messages[ch.id].values() if self._is_top_level(m)]

    def thread(self, channel: str, ts: str) -> list[JSON]:
        """Replies in the thread under `ts`, oldest first, without the parent."""
        with self._cond:
            ch = self._channel(channel)
            return [copy.deepcopy(m) for m in self._replies(ch.id, ts)]

    def message(self, channel: str, ts: str) -> JSON:
        """The stored message at (channel, ts); KeyError if there is none."""
        with self._cond:
            return copy.deepcopy(self._messages[self._channel(channel).id][ts])

    def ephemerals(self, channel: str | None = None, user: str | None = None) -> list[JSON]:
        """Ephemeral messages, optionally only those in `channel` and/or shown to `user`."""
        with self._cond:
            channel_id = self._channel(channel).id if channel else None
            return [
                copy.deepcopy(e)
                for e in self._ephemerals
                if (channel_id is None or e["channel"] == channel_id) and (user is None or e["user"] == user)
            ]

    @property
    def views(self) -> list[JSON]:
        """Every view opened or pushed, in order, as currently stored."""
        with self._cond:
            return [copy.deepcopy(v) for v in self._views.values()]

    def view(self, view_id: str) -> JSON:
        """The stored view with this id; KeyError if unknown."""
        with self._cond:
            return copy.deepcopy(self._views[view_id])

    @property
    def responses(self) -> list[JSON]:
        """Every payload accepted at a response_url, with its `response_id`, channel, ts and user."""
        with self._cond:
            return copy.deepcopy(self._responses)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until `predicate()` holds; it is re-checked whenever a call arrives or completes."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    # ---- HTTP plumbing -----------------------------------------------------------------------------

    def _route(self, path: str, headers: Message, body: bytes) -> _Reply:
        url = urlsplit(path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        args, parse_error = self._parse_body(headers.get("Content-Type", ""), body)
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
        return _Reply(404, {"ok": False, "error": "not_found"})

    @staticmethod
    def _parse_body(content_type: str, body: bytes) -> tuple[JSON, str | None]:
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

    def _serve(self, method: str, args: JSON, apply: Callable[[], _Reply]) -> _Reply:
        call = Call(method, args, self._clock())
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()
            held = self._holds.get(method) or self._holds.get("*")
            delay = self._latency.get(method, self._latency.get("*", 0.0))
        for hook in list(self.on_request):
            hook(call)
        if held is not None:
            held.wait()
        if delay > 0:
            self._stopping.wait(delay)
        with self._cond:
            reply = apply()
            call.status = 0 if reply.drop else reply.status
            call.error = None if reply.body.get("ok") else reply.body.get("error")
            self._cond.notify_all()
        return reply

    def _apply_api(self, method: str, token: str | None, args: JSON, parse_error: str | None) -> _Reply:
        headers = {"X-OAuth-Scopes": BOT_SCOPES, "X-Accepted-OAuth-Scopes": ""}
        if parse_error:
            return _Reply(200, {"ok": False, "error": parse_error}, headers)
        if not token:
            return _Reply(200, {"ok": False, "error": "not_authed"}, headers)
        if method == "apps.connections.open" and self.connections_open is not None:
            return _Reply(200, self.connections_open(token), headers)
        if token != self.bot_token:
            return _Reply(200, {"ok": False, "error": "invalid_auth"}, headers)
        fault = self._take_fault(method)
        if fault is not None:
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            return _Reply(fault.status, {"ok": False, "error": fault.error}, headers)
        error = self._take(self._errors, method)
        if error is not None:
            return _Reply(200, {"ok": False, "error": error}, headers)
        implementation = self._methods.get(method)
        if implementation is None:
            return _Reply(200, {"ok": False, "error": "unknown_method"}, headers)
        try:
            self._decode_json_args(args)
            self._check_rate(method, args)
            body = implementation(args)
        except _Failure as failure:
            body = {"ok": False, "error": failure.error}
            if failure.error == "ratelimited":
                return _Reply(429, body, {**headers, "Retry-After": "1"})
        return _Reply(200, body, headers, drop=self._take_drop(method))

    def _take_fault(self, method: str) -> _Fault | None:
        now = self._clock()
        for key in (method, "*"):
            queue = self._faults.get(key, [])
            queue[:] = [f for f in queue if (f.until is None and f.count > 0) or (f.until or 0) > now]
            if queue:
                fault = queue[0]
                if fault.until is None:
                    fault.count -= 1
                return fault
        return None

    @staticmethod
    def _take(queues: dict[str, list[str]], method: str) -> str | None:
        for key in (method, "*"):
            if queues.get(key):
                return queues[key].pop(0)
        return None

    def _take_drop(self, method: str) -> bool:
        for key in (method, "*"):
            if self._drops.get(key, 0) > 0:
                self._drops[key] -= 1
                return True
        return False

    @staticmethod
    def _status_error(status: int) -> str:
        return "ratelimited" if status == 429 else "internal_error"

    @staticmethod
    def _decode_json_args(args: JSON) -> None:
        for key, error in _JSON_ARGS.items():
            if isinstance(args.get(key), str):
                try:
                    args[key] = json.loads(args[key]) if args[key] else None
                except ValueError as exc:
                    raise _Failure(error) from exc

    def _check_rate(self, method: str, args: JSON) -> None:
        # Strict mode: Slack's ~1 message per second per channel for chat.postMessage.
        if not self._strict_rate_limit or method != "chat.postMessage":
            return
        channel = self._channel(args.get("channel")).id
        now = self._clock()
        if now - self._last_post.get(channel, float("-inf")) < 1.0:
            raise _Failure("ratelimited")
        self._last_post[channel] = now

    # ---- state helpers (called with the lock held) ---------------------------------------------

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def _mint_ts(self) -> str:
        self._last_ts_us = max(int(time.time() * 1_000_000), self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    def _channel(self, ref: Any) -> _Channel:
        if not isinstance(ref, str) or not ref:
            raise _Failure("channel_not_found")
        if ref in self._channels:
            return self._channels[ref]
        name = ref.removeprefix("#")
        for channel in self._channels.values():
            if channel.name == name:
                return channel
        raise _Failure("channel_not_found")

    def _member_channel(self, ref: Any) -> _Channel:
        channel = self._channel(ref)
        if BOT_USER_ID not in channel.members:
            raise _Failure("not_in_channel")
        return channel

    def _user_id(self, args: JSON, key: str = "user") -> str:
        user = args.get(key)
        if not isinstance(user, str) or user not in self._users:
            raise _Failure("user_not_found")
        return user

    @staticmethod
    def _is_top_level(msg: JSON) -> bool:
        return msg.get("thread_ts") in (None, msg["ts"]) or msg.get("subtype") == "thread_broadcast"

    def _replies(self, channel_id: str, parent_ts: str) -> list[JSON]:
        return [
            m
            for m in self._messages[channel_id].values()
            if m.get("thread_ts") == parent_ts and m["ts"] != parent_ts
        ]

    def _stored(self, channel_id: str, ts: Any) -> JSON:
        msg = self._messages[channel_id].get(str(ts))
        if msg is None:
            raise _Failure("message_not_found")
        return msg

    def _thread_parent(self, channel_id: str, thread_ts: Any) -> JSON:
        msg = self._messages[channel_id].get(str(thread_ts))
        if msg is None:
            raise _Failure("thread_not_found")
        # A reply to a reply lands in the parent's thread, as in Slack.
        return self._messages[channel_id][str(msg.get("thread_ts") or msg["ts"])]

    def _attach_reply(self, parent: JSON, reply: JSON, broadcast: bool) -> None:
        reply["thread_ts"] = parent["ts"]
        reply["parent_user_id"] = parent.get("user", parent.get("bot_id", ""))
        if broadcast:
            reply["subtype"] = "thread_broadcast"
        author = reply.get("user") or reply.get("bot_id") or ""
        users = [*parent.get("reply_users", [])]
        if author and author not in users:
            users.append(author)
        parent.update(
            thread_ts=parent["ts"],
            reply_count=parent.get("reply_count", 0) + 1,
            reply_users=users,
            reply_users_count=len(users),
            latest_reply=reply["ts"],
        )

    def _bot_message(self, args: JSON) -> JSON:
        text = args.get("text") or ""
        blocks = self._blocks(args.get("blocks"), MAX_MESSAGE_BLOCKS, "invalid_blocks")
        attachments = args.get("attachments")
        if not text and not blocks and not attachments:
            raise _Failure("no_text")
        if len(text) > MAX_TEXT:
            raise _Failure("msg_too_long")
        msg: JSON = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": text,
            "bot_profile": {
                "id": BOT_ID,
                "app_id": APP_ID,
                "name": BOT_NAME,
                "team_id": TEAM_ID,
                "deleted": False,
            },
        }
        if blocks is not None:
            msg["blocks"] = blocks
        if attachments is not None:
            msg["attachments"] = attachments
        metadata = args.get("metadata")
        if metadata is not None:
            if not isinstance(metadata, dict) or not isinstance(metadata.get("event_type"), str):
                raise _Failure("invalid_metadata_format")
            msg["metadata"] = {
                "event_type": metadata["event_type"],
                "event_payload": metadata.get("event_payload", {}),
            }
        return msg

    @staticmethod
    def _blocks(blocks: Any, limit: int, error: str) -> list[JSON] | None:
        if blocks is None:
            return None
        if not isinstance(blocks, list) or len(blocks) > limit:
            raise _Failure(error)
        for block in blocks:
            if not isinstance(block, dict) or not block.get("type"):
                raise _Failure(error)
            text = block.get("text")
            if isinstance(text, dict) and len(str(text.get("text", ""))) > MAX_SECTION_TEXT:
                raise _Failure(error)
        return blocks

    def _store_post(self, channel: _Channel, msg: JSON, thread_ts: Any, broadcast: bool) -> JSON:
        parent = self._thread_parent(channel.id, thread_ts) if thread_ts else None
        msg["ts"] = self._mint_ts()
        if parent is not None:
            self._attach_reply(parent, msg, broadcast)
        self._messages[channel.id][msg["ts"]] = msg
        self._echo(channel.id, msg)
        return msg

    def _store_ephemeral(self, channel_id: str, user: str, msg: JSON, thread_ts: Any) -> JSON:
        # `user` is who sees it; the author is always the bot (`bot_id`).
        entry = {**msg, "channel": channel_id, "user": user, "ts": self._mint_ts(), "thread_ts": thread_ts}
        self._ephemerals.append(entry)
        return entry

    def _event_for(self, channel_id: str, msg: JSON) -> JSON:
        event = {k: copy.deepcopy(v) for k, v in msg.items() if k not in ("reply_count", "reply_users")}
        event.update(channel=channel_id, channel_type="channel", event_ts=msg["ts"])
        return event

    def _echo(self, channel_id: str, msg: JSON) -> None:
        callback = self.on_message
        if callback is None:
            return
        event = self._event_for(channel_id, msg)
        event.pop("metadata", None)

        def deliver() -> None:
            try:
                callback(event)
            except Exception:
                log.exception("slack emulator: on_message hook failed")

        threading.Thread(target=deliver, name="slack-emulator-echo", daemon=True).start()

    def _page(self, items: list[JSON], args: JSON, default_limit: int = 100) -> tuple[list[JSON], str]:
        cursor = args.get("cursor") or ""
        try:
            offset = int(base64.b64decode(cursor).decode().removeprefix("offset:")) if cursor else 0
            limit = int(args.get("limit") or default_limit)
        except ValueError as exc:
            raise _Failure("invalid_cursor" if cursor else "invalid_limit") from exc
        limit = max(1, min(limit, 999))
        page = items[offset : offset + limit]
        more = offset + limit < len(items)
        next_cursor = base64.b64encode(f"offset:{offset + limit}".encode()).decode() if more else ""
        return page, next_cursor

    @staticmethod
    def _public(msg: JSON, include_metadata: bool) -> JSON:
        out = copy.deepcopy(msg)
        if not include_metadata:
            out.pop("metadata", None)
        return out

    def _channel_obj(self, channel: _Channel) -> JSON:
        return {
            "id": channel.id,
            "name": channel.name,
            "name_normalized": channel.name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_private": False,
            "is_archived": channel.is_archived,
            "is_general": False,
            "is_member": BOT_USER_ID in channel.members,
            "created": channel.created,
            "creator": BOT_USER_ID,
            "num_members": len(channel.members),
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }

    def _use_trigger(self, trigger_id: Any) -> _Trigger:
        if not trigger_id:
            raise _Failure("invalid_arguments")
        trigger = self._triggers.get(str(trigger_id))
        if trigger is None:
            raise _Failure("invalid_trigger_id")
        if trigger.used:
            raise _Failure("exchanged_trigger_id")
        if self._clock() - trigger.minted_at > self._trigger_ttl:
            raise _Failure("expired_trigger_id")
        trigger.used = True
        return trigger

    def _valid_view(self, view: Any) -> JSON:
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            raise _Failure("invalid_arguments")
        self._blocks(view.get("blocks", []), MAX_VIEW_BLOCKS, "invalid_arguments")
        if view["type"] == "modal" and not view.get("title"):
            raise _Failure("invalid_arguments")
        if len(json.dumps(view)) > MAX_VIEW_BYTES:
            raise _Failure("view_too_large")
        return view

    def _store_view(self, view: JSON, view_id: str | None = None, previous: str | None = None) -> JSON:
        old = self._views.get(view_id or "")
        view_id = view_id or f"V{self._next_serial():010d}"
        root = (
            old["root_view_id"] if old else (self._views[previous]["root_view_id"] if previous else view_id)
        )
        stored = {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": view["type"],
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "previous_view_id": old["previous_view_id"] if old else previous,
            "root_view_id": root,
            "app_id": APP_ID,
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }
        self._views[view_id] = stored
        return stored

    # ---- Web API methods (called with the lock held) -------------------------------------------

    def _auth_test(self, args: JSON) -> JSON:
        return {
            "ok": True,
            "url": "https://sandbox.slack.com/",
            "team": TEAM_NAME,
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: JSON) -> JSON:
        channel = self._member_channel(args.get("channel"))
        if channel.is_archived:
            raise _Failure("is_archived")
        msg = self._bot_message(args)
        self._store_post(channel, msg, args.get("thread_ts"), _flag(args.get("reply_broadcast")))
        return {"ok": True, "channel": channel.id, "ts": msg["ts"], "message": copy.deepcopy(msg)}

    def _chat_update(self, args: JSON) -> JSON:
        channel = self._channel(args.get("channel"))
        msg = self._stored(channel.id, args.get("ts"))
        if msg.get("bot_id") != BOT_ID:
            raise _Failure("cant_update_message")
        # As in Slack, blocks and attachments that are not sent are kept.
        if "text" in args:
            msg["text"] = args.get("text") or ""
        if args.get("blocks") is not None:
            msg["blocks"] = self._blocks(args["blocks"], MAX_MESSAGE_BLOCKS, "invalid_blocks")
        if args.get("attachments") is not None:
            msg["attachments"] = args["attachments"]
        if isinstance(args.get("metadata"), dict):
            msg["metadata"] = args["metadata"]
        msg["edited"] = {"user": BOT_USER_ID, "ts": self._mint_ts()}
        return {
            "ok": True,
            "channel": channel.id,
            "ts": msg["ts"],
            "text": msg["text"],
            "message": copy.deepcopy(msg),
        }

    def _chat_delete(self, args: JSON) -> JSON:
        channel = self._channel(args.get("channel"))
        msg = self._stored(channel.id, args.get("ts"))
        if msg.get("bot_id") != BOT_ID:
            raise _Failure("cant_delete_message")
        del self._messages[channel.id][msg["ts"]]
        return {"ok": True, "channel": channel.id, "ts": msg["ts"]}

    def _chat_post_ephemeral(self, args: JSON) -> JSON:
        channel = self._member_channel(args.get("channel"))
        user = args.get("user")
        if user not in channel.members:
            raise _Failure("user_not_in_channel")
        entry = self._store_ephemeral(channel.id, str(user), self._bot_message(args), args.get("thread_ts"))
        return {"ok": True, "message_ts": entry["ts"]}

    def _chat_get_permalink(self, args: JSON) -> JSON:
        channel = self._channel(args.get("channel"))
        msg = self._stored(channel.id, args.get("message_ts"))
        link = f"https://sandbox.slack.com/archives/{channel.id}/p{msg['ts'].replace('.', '')}"
        return {"ok": True, "channel": channel.id, "permalink": link}

    def _conversations_history(self, args: JSON) -> JSON:
        channel = self._member_channel(args.get("channel"))
        inclusive = _flag(args.get("inclusive"))
        oldest = _ts_key(args.get("oldest") or "0", "invalid_ts_oldest")
        latest = _ts_key(args["latest"], "invalid_ts_latest") if args.get("latest") else None
        selected = []
        for msg in reversed(self._messages[channel.id].values()):
            key = Decimal(msg["ts"])
            if not self._is_top_level(msg):
                continue
            if key < oldest or (key == oldest and not inclusive):
                continue
            if latest is not None and (key > latest or (key == latest and not inclusive)):
                continue
            selected.append(msg)
        page, cursor = self._page(selected, args)
        metadata = _flag(args.get("include_all_metadata"))
        return {
            "ok": True,
            "messages": [self._public(m, metadata) for m in page],
            "has_more": bool(cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_replies(self, args: JSON) -> JSON:
        channel = self._member_channel(args.get("channel"))
        parent = self._thread_parent(channel.id, args.get("ts"))
        page, cursor = self._page(
            [parent, *self._replies(channel.id, parent["ts"])], args, default_limit=1000
        )
        metadata = _flag(args.get("include_all_metadata"))
        return {
            "ok": True,
            "messages": [self._public(m, metadata) for m in page],
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_info(self, args: JSON) -> JSON:
        return {"ok": True, "channel": self._channel_obj(self._channel(args.get("channel")))}

    def _conversations_list(self, args: JSON) -> JSON:
        skip_archived = _flag(args.get("exclude_archived"))
        channels = [
            self._channel_obj(c) for c in self._channels.values() if not (skip_archived and c.is_archived)
        ]
        page, cursor = self._page(channels, args)
        return {"ok": True, "channels": page, "response_metadata": {"next_cursor": cursor}}

    def _views_open(self, args: JSON) -> JSON:
        view = self._valid_view(args.get("view"))
        self._use_trigger(args.get("trigger_id"))
        return {"ok": True, "view": copy.deepcopy(self._store_view(view))}

    def _views_push(self, args: JSON) -> JSON:
        view = self._valid_view(args.get("view"))
        trigger = self._use_trigger(args.get("trigger_id"))
        previous = trigger.view_id if trigger.view_id in self._views else None
        return {"ok": True, "view": copy.deepcopy(self._store_view(view, previous=previous))}

    def _views_update(self, args: JSON) -> JSON:
        view = self._valid_view(args.get("view"))
        view_id = args.get("view_id")
        if not view_id and args.get("external_id"):
            view_id = next(
                (v["id"] for v in self._views.values() if v["external_id"] == args["external_id"]), None
            )
        if not view_id or view_id not in self._views:
            raise _Failure("not_found")
        if args.get("hash") and args["hash"] != self._views[view_id]["hash"]:
            raise _Failure("hash_conflict")
        return {"ok": True, "view": copy.deepcopy(self._store_view(view, view_id=view_id))}

    def _users_info(self, args: JSON) -> JSON:
        return {"ok": True, "user": copy.deepcopy(self._users[self._user_id(args)])}

    def _usergroups_list(self, args: JSON) -> JSON:
        with_users = _flag(args.get("include_users"))
        groups = []
        for group in self._usergroups.values():
            out = {k: copy.deepcopy(v) for k, v in group.items() if k != "users" or with_users}
            out["user_count"] = len(group["users"])
            groups.append(out)
        return {"ok": True, "usergroups": groups}

    def _usergroups_users_list(self, args: JSON) -> JSON:
        group = self._usergroups.get(str(args.get("usergroup")))
        if group is None:
            raise _Failure("no_such_subteam")
        return {"ok": True, "users": list(group["users"])}

    def _reactions_add(self, args: JSON) -> JSON:
        channel = self._channel(args.get("channel"))
        name = str(args.get("name") or "")
        if not name or ":" in name or " " in name:
            raise _Failure("invalid_name")
        msg = self._stored(channel.id, args.get("timestamp"))
        reactions: list[JSON] = msg.setdefault("reactions", [])
        reaction = next((r for r in reactions if r["name"] == name), None)
        if reaction is None:
            reaction = {"name": name, "users": [], "count": 0}
            reactions.append(reaction)
        if BOT_USER_ID in reaction["users"]:
            raise _Failure("already_reacted")
        reaction["users"].append(BOT_USER_ID)
        reaction["count"] += 1
        return {"ok": True}

    # ---- response_url ------------------------------------------------------------------------------

    def _apply_response(self, response_id: str, payload: JSON, parse_error: str | None) -> _Reply:
        fault = self._take_fault("response_url")
        if fault is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return _Reply(fault.status, {"ok": False, "error": fault.error}, headers)
        url = self._response_urls.get(response_id)
        if url is None:
            return _Reply(404, {"ok": False, "error": "no_such_url"})
        if url.uses >= RESPONSE_URL_USES or self._clock() - url.minted_at > RESPONSE_URL_TTL:
            return _Reply(404, {"ok": False, "error": "expired_url"})
        if parse_error:
            return _Reply(400, {"ok": False, "error": parse_error})
        url.uses += 1
        record = {"response_id": response_id, "channel": url.channel, "ts": url.ts, "user": url.user}
        self._responses.append({**copy.deepcopy(payload), **record})
        try:
            self._decode_json_args(payload)
            self._respond(url, payload)
        except _Failure as failure:
            return _Reply(400, {"ok": False, "error": failure.error})
        return _Reply(200, {"ok": True}, drop=self._take_drop("response_url"))

    def _respond(self, url: _ResponseUrl, payload: JSON) -> None:
        original = self._messages.get(url.channel or "", {}).get(url.ts or "")
        if _flag(payload.get("delete_original")):
            if original is not None:
                del self._messages[url.channel or ""][original["ts"]]
            return
        if _flag(payload.get("replace_original")) and original is not None:
            msg = self._bot_message(payload)
            for key in ("text", "blocks", "attachments"):
                if key in msg:
                    original[key] = msg[key]
            original["edited"] = {"user": BOT_USER_ID, "ts": self._mint_ts()}
            return
        if url.channel is None:
            raise _Failure("channel_not_found")
        channel = self._channels[url.channel]
        msg = self._bot_message(payload)
        if payload.get("response_type") == "in_channel":
            self._store_post(channel, msg, payload.get("thread_ts"), broadcast=False)
        else:
            self._store_ephemeral(channel.id, url.user or "", msg, payload.get("thread_ts"))
