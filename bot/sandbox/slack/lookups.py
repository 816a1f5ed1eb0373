"""What a driver needs from the workspace to send a realistic request: ids and names, stored messages and
views, trigger ids and response urls; with no workspace attached, stand-ins Slack could have sent."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from bot.sandbox.slack.identity import JSON
from bot.sandbox.slack_emulator import SlackEmulator

# An address that refuses connections at once, for response urls when no emulator is attached.
_NOWHERE = "http://127.0.0.1:9/response/none"

T = TypeVar("T")


class WorkspaceLookups:
    """Lookups in `emulator`, if any; an unknown id or name is sent as given, as Slack would send it."""

    def __init__(self, emulator: SlackEmulator | None, serial: Iterator[int]) -> None:
        self.emulator = emulator
        self._serial = serial  # shared with the driver's own made-up ids

    def channel_id(self, channel: str) -> str:
        # An unknown channel goes to the bot as given, as Slack would send it.
        return self._ask(lambda e: e.channel_id(channel), channel)

    def channel_name(self, channel_id: str) -> str:
        return self._ask(lambda e: e.channel_name(channel_id), channel_id)

    def user_name(self, user_id: str) -> str:
        return self._ask(lambda e: str(e.user(user_id)["name"]), user_id)

    def trigger_id(self, user_id: str, view_id: str | None = None) -> str:
        if self.emulator is not None:
            return self.emulator.mint_trigger_id(user=user_id, view_id=view_id)
        return f"{next(self._serial)}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"

    def response_url(self, channel: str, ts: str | None, user_id: str) -> str:
        if self.emulator is None:
            return _NOWHERE
        try:
            return self.emulator.mint_response_url(channel=channel, ts=ts, user=user_id)
        except LookupError:
            return self.emulator.mint_response_url(user=user_id)

    def message(self, channel: str, ts: str) -> JSON:
        blank: JSON = {"type": "message", "ts": ts, "text": "", "blocks": []}
        return self._ask(lambda e: e.message(channel, ts), blank)

    def app_home_opened(self, user_id: str, tab: str) -> JSON:
        stand_in: JSON = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": f"D{next(self._serial):09d}",
            "tab": tab,
            "event_ts": f"{time.time():.6f}",
        }
        return self._ask(lambda e: e.app_home_opened(user_id, tab), stand_in)

    def view(self, view_id: str | None) -> JSON:
        return {} if view_id is None else self._ask(lambda e: e.view(view_id), {})

    def _ask(self, question: Callable[[SlackEmulator], T], otherwise: T) -> T:
        if self.emulator is None:
            return otherwise
        try:
            return question(self.emulator)
        except LookupError:
            return otherwise
