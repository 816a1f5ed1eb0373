"""Messages that belong to no transition: an ephemeral answer to one person, a plain post (help in reply
to a mention). Both through the outbox, so they survive a Slack outage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from bot.core.clock import Clock
from bot.integrations.slack.blocks import notice_modal
from bot.integrations.slack.outbox import enqueue
from bot.services.messages import Composer
from bot.store.db import session_scope


class Replies:
    def __init__(self, engine: Engine, clock: Clock, composer: Composer, kick: Callable[[], None]) -> None:
        self.engine = engine
        self.clock = clock
        self.composer = composer
        self._kick = kick

    def _enqueue(self, kind: str, **values: Any) -> None:
        with session_scope(self.engine) as s:
            enqueue(s, self.clock.now(), kind, **values)
        self._kick()

    def reply(self, channel: str | None, user_id: str, text: str) -> None:
        """Tell one person something, ephemerally."""
        if channel:
            self._enqueue("ephemeral", channel=channel, user=user_id, text=text)

    def notice(self, trigger_id: str, title: str, text: str) -> None:
        """Tell the person who clicked in a view (App Home, where no channel holds an ephemeral) in a
        modal that only says `text`, opened with the click's trigger id."""
        self._enqueue("view", trigger_id=trigger_id, view=notice_modal(title, text))

    def post(self, channel: str, text: str, thread_ts: str | None = None) -> None:
        self._enqueue("post", channel=channel, thread_ts=thread_ts, **self.composer.plain(text))
