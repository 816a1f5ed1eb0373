"""What a driver needs from the workspace to send a realistic request: ids and names, stored messages and
views, trigger ids and response urls; with no workspace attached, stand-ins Slack could have sent."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

from bot.sandbox.slack.identity import JSON
from bot.sandbox.slack_emulator import SlackEmulator

# An address that refuses connections at once, for response urls when no emulator is attached.
_NOWHERE = "http://127.0.0.1:9/response/none"


class WorkspaceLookups:
    """Lookups in `emulator`, if any; an unknown id or name is sent as given, as Slack would send it."""

    def __init__(self, emulator: SlackEmulator | None, serial: Iterator[int]) -> None:
        self.emulator = emulator
        self._serial = serial  # shared with the driver's own made-up ids

    def channel_id(self, channel: str) -> str:
        if self.emulator is None:
            return channel
        try:
            return self.emulator.channel_id(channel)
        except LookupError:
            return channel  # let the bot see an unknown channel, as Slack would send it

    def channel_name(self, channel_id: str) -> str:
        if self.emulator is None:
            return channel_id
        try:
            return self.emulator.channel_name(channel_id)
        except LookupError:
            return channel_id

    def user_name(self, user_id: str) -> str:
        if self.emulator is None:
            return user_id
        try:
            return str(self.emulator.user(user_id)["name"])
        except LookupError:
            return user_id

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
        if self.emulator is not None:
            try:
                return self.emulator.message(channel, ts)
            except LookupError:
                pass
        return {"type": "message", "ts": ts, "text": "", "blocks": []}

    def view(self, view_id: str | None) -> JSON:
        if self.emulator is None or view_id is None:
            return {}
        try:
            return self.emulator.view(view_id)
        except LookupError:
            return {}
