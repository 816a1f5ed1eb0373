"""A stateful Slack workspace that speaks the Web API over loopback HTTP.

The real `slack_sdk.WebClient(token=..., base_url=emulator.api_url)` talks to it, so the bot's Slack
adapter, outbox and retry logic run unchanged in tests and in the offline demo. It holds channels,
users, user groups, messages and threads, ephemerals, reactions, views and uploaded files; records every
call; and injects faults (429 with Retry-After, 5xx, `ok:false` errors, latency, held and dropped
requests).

`SlackEmulator` composes the parts in bot/sandbox/slack/: the workspace's data (`Workspace`), the Web API
surface (`WebApi` and its methods by family), fault injection (`SlackFaults`) and what tests read back
(`Inspector`). Ids are `C…` channels, `U…` users, `S…` user groups, `V…` views; message timestamps are
unique `"<epoch>.<6 digits>"` strings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bot.sandbox.loopback import LoopbackServer
from bot.sandbox.slack.faults import SlackFaults
from bot.sandbox.slack.handler import WebApiHandler
from bot.sandbox.slack.identity import (
    APP_ID,
    BOT_ID,
    BOT_NAME,
    BOT_SCOPES,
    BOT_USER_ID,
    DEFAULT_CHANNELS,
    JSON,
    TEAM_ID,
    TEAM_NAME,
)
from bot.sandbox.slack.inspection import Call, Inspector
from bot.sandbox.slack.web_api import WebApi
from bot.sandbox.slack.workspace import Workspace

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_NAME",
    "BOT_SCOPES",
    "BOT_USER_ID",
    "DEFAULT_CHANNELS",
    "JSON",
    "TEAM_ID",
    "TEAM_NAME",
    "Call",
    "SlackEmulator",
]


class SlackEmulator(LoopbackServer):
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
        self.team_id, self.bot_user_id, self.bot_id, self.app_id = TEAM_ID, BOT_USER_ID, BOT_ID, APP_ID
        self.workspace = ws = Workspace(clock, trigger_ttl)
        self.faults = faults = SlackFaults(ws.cond, clock, strict_rate_limit)
        self.inspector = seen = Inspector(ws)
        self.web_api = WebApi(ws, faults, seen, bot_token)
        self.on_message = on_message
        # Called with each `Call` as it arrives, before it is applied and answered.
        self.on_request = self.web_api.on_request
        self._wanted_port = port

        # Setting the workspace up.
        self.add_channel = ws.add_channel
        self.add_user = ws.add_user
        self.add_usergroup = ws.add_usergroup
        self.join = ws.join
        self.leave = ws.leave
        self.archive = ws.archive
        self.add_message = ws.add_message
        self.message_event = ws.message_event
        self.channel_id = ws.channel_id
        self.channel_name = ws.channel_name
        self.user = ws.user
        self.mint_trigger_id = ws.mint_trigger_id
        self.app_home_opened = ws.app_home_opened
        # Fault injection: `method` may be "*" for every method; response_url posts are "response_url".
        self.fail_next = faults.fail_next
        self.fail_for = faults.fail_for
        self.error_next = faults.error_next
        self.latency = faults.latency
        self.hold = faults.hold
        self.release = faults.release
        self.drop_after_send = faults.drop_after_send
        self.clear_faults = faults.clear_faults
        # Recordings and copies for assertions.
        self.calls_to = seen.calls_to
        self.messages = seen.messages
        self.thread = seen.thread
        self.message = seen.message
        self.ephemerals = seen.ephemerals
        self.view = seen.view
        self.home = seen.home
        self.files = seen.files
        self.file_data = seen.file_data
        self.wait_for = seen.wait_for

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SlackEmulator:
        """Bind 127.0.0.1 and serve in a background thread."""
        if self._server is None:
            self.web_api.stopping.clear()
            self._serve(WebApiHandler, "slack-emulator", port=self._wanted_port)
            self.workspace.files.base_url = self.base_url  # where upload URLs point
        return self

    def stop(self) -> None:
        """Release held requests, stop serving and close the socket."""
        self.web_api.stopping.set()
        self.faults.release_all()
        self._shutdown()

    @property
    def port(self) -> int:
        return self._port("the Slack emulator")

    @property
    def base_url(self) -> str:
        return self._url("the Slack emulator")

    @property
    def api_url(self) -> str:
        # slack_sdk joins method names onto this with urljoin, which drops "/api" without the slash.
        return f"{self.base_url}/api/"

    def client(self, **kwargs: Any) -> Any:
        """A real `slack_sdk.WebClient` pointed at this workspace with the bot token."""
        from slack_sdk import WebClient

        return WebClient(token=self.bot_token, base_url=self.api_url, **kwargs)

    # ---- what the parts share --------------------------------------------------------------------

    @property
    def bot_token(self) -> str:
        return self.web_api.bot_token

    @property
    def on_message(self) -> Callable[[JSON], object] | None:
        """Called in its own thread with the `message` event Slack would deliver for each bot post."""
        return self.workspace.messages.on_message

    @on_message.setter
    def on_message(self, callback: Callable[[JSON], object] | None) -> None:
        self.workspace.messages.on_message = callback

    @property
    def connections_open(self) -> Callable[[str], JSON] | None:
        """Socket Mode: answers apps.connections.open for an app-level token (set by SocketModeServer)."""
        return self.web_api.connections_open

    @connections_open.setter
    def connections_open(self, answer: Callable[[str], JSON] | None) -> None:
        self.web_api.connections_open = answer

    def mint_response_url(
        self, channel: str | None = None, ts: str | None = None, user: str | None = None
    ) -> str:
        """A `response_url` on this server; with channel and ts, `replace_original` edits that message."""
        return f"{self.base_url}/response/{self.workspace.mint_response_id(channel, ts, user)}"

    @property
    def calls(self) -> list[Call]:
        return self.inspector.calls

    @property
    def views(self) -> list[JSON]:
        """Every modal opened or pushed, in order, as currently stored (Home tabs: `home(user)`)."""
        return self.inspector.views

    @property
    def responses(self) -> list[JSON]:
        """Every payload accepted at a response_url, with its `response_id`, channel, ts and user."""
        return self.inspector.responses
