"""The workspace's data behind one lock: its directory, messages, views, response urls and files, and the
set-up calls a test or the demo makes before the bot talks to it."""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable, Iterable
from typing import Any

from bot.sandbox.slack.directory import Directory
from bot.sandbox.slack.files import FileStore
from bot.sandbox.slack.identity import BOT_NAME, BOT_USER_ID, DEFAULT_CHANNELS, JSON
from bot.sandbox.slack.messages import MessageStore
from bot.sandbox.slack.response_urls import ResponseUrls
from bot.sandbox.slack.views import ViewStore


class Workspace:
    """A workspace with the bot and the default channels; `cond` guards every part and is notified when
    a message arrives or a call completes."""

    def __init__(self, clock: Callable[[], float], trigger_ttl: float) -> None:
        self.cond = threading.Condition(threading.RLock())
        self.clock = clock
        self._serial = itertools.count(1)
        self.directory = Directory(self.next_serial)
        self.messages = MessageStore()
        self.views = ViewStore(self.next_serial, clock, trigger_ttl)
        self.response_urls = ResponseUrls(self.messages, clock)
        self.files = FileStore(self.next_serial)
        self.add_user(BOT_USER_ID, BOT_NAME, real_name="Escalation Bot", is_bot=True)
        for name in DEFAULT_CHANNELS:
            self.add_channel(name)

    def next_serial(self) -> int:
        """The next number of the one sequence channel, view and trigger ids are made from."""
        return next(self._serial)

    def add_channel(self, name: str, id: str | None = None, members: Iterable[str] | None = None) -> str:
        """Create a public channel; by default the bot and every known user are members."""
        with self.cond:
            channel = self.directory.add_channel(name, id, members)
            self.messages.open_channel(channel.id)
            return channel.id

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
        with self.cond:
            self.directory.add_user(id, name, real_name, is_bot, email, join)

    def add_usergroup(self, id: str, handle: str, users: Iterable[str]) -> str:
        """Add a user group (`handle` without "@")."""
        with self.cond:
            self.directory.add_usergroup(id, handle, users)
            return id

    def join(self, channel: str, user: str) -> None:
        """Make `user` a member of `channel`."""
        with self.cond:
            self.directory.channel(channel).members.add(user)

    def leave(self, channel: str, user: str) -> None:
        """Remove `user` (the bot too) from `channel`."""
        with self.cond:
            self.directory.channel(channel).members.discard(user)

    def archive(self, channel: str) -> None:
        """Archive `channel`; posting to it then fails with `is_archived`."""
        with self.cond:
            self.directory.channel(channel).is_archived = True

    def add_message(
        self, channel: str, text: str = "", *, thread_ts: str | None = None, **fields: Any
    ) -> JSON:
        """Store a message someone else posted (a person, Alertmanager, another bot) and return it."""
        with self.cond:
            channel_id = self.directory.channel(channel).id
            msg = self.messages.add(channel_id, {"type": "message", "text": text, **fields}, thread_ts)
            self.cond.notify_all()
            return copy.deepcopy(msg)

    def message_event(self, channel: str, ts: str) -> JSON:
        """The Events API `message` event Slack would deliver for the stored message at (channel, ts)."""
        with self.cond:
            channel_id = self.directory.channel(channel).id
            return self.messages.event_for(channel_id, self.messages.by_channel[channel_id][ts])

    def channel_id(self, channel: str) -> str:
        """The id of a channel given by id or name (with or without "#"); LookupError if unknown."""
        with self.cond:
            return self.directory.channel(channel).id

    def channel_name(self, channel: str) -> str:
        """The name (without "#") of a channel given by id or name."""
        with self.cond:
            return self.directory.channel(channel).name

    def user(self, user_id: str) -> JSON:
        """The stored user object; KeyError if unknown."""
        with self.cond:
            return copy.deepcopy(self.directory.users[user_id])

    def app_home_opened(self, user: str, tab: str = "home") -> JSON:
        """The `app_home_opened` event Slack delivers when `user` opens the app's `tab` ("home" or
        "messages"); opening Home carries the view published there, once there is one."""
        with self.cond:
            event: JSON = {
                "type": "app_home_opened",
                "user": self.directory.user_id(user),
                "channel": self.directory.im(user),
                "tab": tab,
                "event_ts": self.messages.mint_ts(),
            }
            home = self.views.homes.get(user)
            if tab == "home" and home is not None:
                event["view"] = copy.deepcopy(self.views.views[home])
            return event

    def mint_trigger_id(self, user: str | None = None, view_id: str | None = None) -> str:
        """A trigger id that `views.open`/`views.push` accept once within the trigger TTL."""
        with self.cond:
            return self.views.mint_trigger(user, view_id)

    def mint_response_id(self, channel: str | None, ts: str | None, user: str | None) -> str:
        """The id of a new response url; with channel and ts, `replace_original` edits that message."""
        with self.cond:
            channel_id = self.directory.channel(channel).id if channel else None
            return self.response_urls.mint(channel_id, ts, user)
