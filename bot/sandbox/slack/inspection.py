"""What a test reads back: the calls the workspace received and copies of what it holds now."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from bot.sandbox.slack.identity import JSON
from bot.sandbox.slack.workspace import Workspace


@dataclass
class Call:
    """One request the emulator received; `status` is 0 while it is in flight or if it was dropped."""

    method: str
    args: JSON
    at: float
    status: int = 0
    error: str | None = None


class Inspector:
    """Recorded calls and read-only copies of the workspace, each read under the workspace lock."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._calls: list[Call] = []

    def record(self, call: Call) -> None:
        """Keep `call` (the caller holds the lock)."""
        self._calls.append(call)

    @property
    def calls(self) -> list[Call]:
        with self._ws.cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        """Every recorded call to `method`, in arrival order."""
        with self._ws.cond:
            return [c for c in self._calls if c.method == method]

    def messages(self, channel: str) -> list[JSON]:
        """Top-level messages of a channel (id or name), oldest first."""
        with self._ws.cond:
            channel_id = self._ws.directory.channel(channel).id
            return [copy.deepcopy(m) for m in self._ws.messages.top_level(channel_id)]

    def thread(self, channel: str, ts: str) -> list[JSON]:
        """Replies in the thread under `ts`, oldest first, without the parent."""
        with self._ws.cond:
            channel_id = self._ws.directory.channel(channel).id
            return [copy.deepcopy(m) for m in self._ws.messages.replies(channel_id, ts)]

    def message(self, channel: str, ts: str) -> JSON:
        """The stored message at (channel, ts); KeyError if there is none."""
        with self._ws.cond:
            channel_id = self._ws.directory.channel(channel).id
            return copy.deepcopy(self._ws.messages.by_channel[channel_id][ts])

    def ephemerals(self, channel: str | None = None, user: str | None = None) -> list[JSON]:
        """Ephemeral messages, optionally only those in `channel` and/or shown to `user`."""
        with self._ws.cond:
            channel_id = self._ws.directory.channel(channel).id if channel else None
            return [
                copy.deepcopy(e)
                for e in self._ws.messages.ephemerals
                if (channel_id is None or e["channel"] == channel_id) and (user is None or e["user"] == user)
            ]

    @property
    def views(self) -> list[JSON]:
        """Every modal opened or pushed, in order, as currently stored."""
        with self._ws.cond:
            return [copy.deepcopy(v) for v in self._ws.views.views.values() if v["type"] == "modal"]

    def home(self, user: str) -> JSON:
        """The Home tab published for `user`, as currently stored; KeyError if none was."""
        with self._ws.cond:
            return copy.deepcopy(self._ws.views.views[self._ws.views.homes[user]])

    def view(self, view_id: str) -> JSON:
        """The stored view with this id; KeyError if unknown."""
        with self._ws.cond:
            return copy.deepcopy(self._ws.views.views[view_id])

    def files(self) -> list[JSON]:
        """Every file uploaded and completed, as Slack shows it (id, name, title, size, channels…)."""
        with self._ws.cond:
            return self._ws.files.shown()

    def file_data(self, file_id: str) -> bytes:
        """The bytes uploaded for `file_id`; KeyError if none arrived."""
        with self._ws.cond:
            return self._ws.files.data(file_id)

    @property
    def responses(self) -> list[JSON]:
        """Every payload accepted at a response_url, with its `response_id`, channel, ts and user."""
        with self._ws.cond:
            return copy.deepcopy(self._ws.response_urls.responses)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until `predicate()` holds; it is re-checked whenever a call arrives or completes."""
        with self._ws.cond:
            return self._ws.cond.wait_for(predicate, timeout)
