"""Who and where in the workspace: channels with their members, users and user groups."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bot.sandbox.slack.conventions import Failure
from bot.sandbox.slack.identity import BOT_USER_ID, JSON, TEAM_ID


@dataclass
class Channel:
    id: str
    name: str
    members: set[str]
    created: int
    is_archived: bool = False


class Directory:
    """Channels by id and name, users and user groups; callers hold the workspace lock."""

    def __init__(self, next_serial: Callable[[], int]) -> None:
        self.channels: dict[str, Channel] = {}
        self.users: dict[str, JSON] = {}
        self.usergroups: dict[str, JSON] = {}
        self.ims: dict[str, str] = {}  # user id → the id of their direct-message channel with the app
        self._next_serial = next_serial

    def add_channel(self, name: str, id: str | None = None, members: Iterable[str] | None = None) -> Channel:
        """A new public channel; by default every known user is a member."""
        channel_id = id or f"C{self._next_serial():09d}"
        joined = set(members) if members is not None else set(self.users)
        channel = Channel(channel_id, name.removeprefix("#"), joined, int(time.time()))
        self.channels[channel_id] = channel
        return channel

    def add_user(
        self, id: str, name: str, real_name: str | None, is_bot: bool, email: str | None, join: bool
    ) -> None:
        """A user as `users.info` shows them; with `join` they become a member of every channel."""
        real = real_name or name
        self.users[id] = {
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
            for channel in self.channels.values():
                channel.members.add(id)

    def add_usergroup(self, id: str, handle: str, users: Iterable[str]) -> None:
        """A user group (`handle` with or without "@")."""
        handle = handle.removeprefix("@")
        self.usergroups[id] = {
            "id": id,
            "team_id": TEAM_ID,
            "is_usergroup": True,
            "handle": handle,
            "name": handle,
            "description": "",
            "date_delete": 0,
            "users": list(users),
        }

    def channel(self, ref: Any) -> Channel:
        """The channel given by id or name (with or without "#"); `channel_not_found` otherwise."""
        if not isinstance(ref, str) or not ref:
            raise Failure("channel_not_found")
        if ref in self.channels:
            return self.channels[ref]
        name = ref.removeprefix("#")
        for channel in self.channels.values():
            if channel.name == name:
                return channel
        raise Failure("channel_not_found")

    def member_channel(self, ref: Any) -> Channel:
        """The channel, which the bot must be a member of (`not_in_channel` otherwise)."""
        channel = self.channel(ref)
        if BOT_USER_ID not in channel.members:
            raise Failure("not_in_channel")
        return channel

    def user_id(self, ref: Any) -> str:
        """`ref` when it names a known user; `user_not_found` otherwise."""
        if not isinstance(ref, str) or ref not in self.users:
            raise Failure("user_not_found")
        return ref

    def im(self, user: str) -> str:
        """The id of `user`'s App Home direct-message channel (made the first time it is asked for)."""
        return self.ims.setdefault(self.user_id(user), f"D{self._next_serial():09d}")
