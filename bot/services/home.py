"""The bot's App Home tab: published through the outbox (`views.publish`) when someone opens it, and again
when what it shows them changes, at most once per `slack.home_refresh` each, only for people who opened
it (in the last ACTIVE_FOR)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from bot.core.clock import Clock
from bot.integrations.slack.home_view import home_view
from bot.integrations.slack.outbox import enqueue, rewrite
from bot.services.home_board import Snapshot, read_snapshot
from bot.services.queries import IncidentQueries
from bot.store.db import session_scope
from bot.store.home_tabs import HomeTab

# someone who has not opened Home for this long is no longer kept current; opening it again publishes it
ACTIVE_FOR = timedelta(days=30)
Membership = Callable[[list[str]], dict[str, set[str]]]


class HomeService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        queries: IncidentQueries,
        membership: Membership,
        every: Callable[[], timedelta],
        kick: Callable[[], None],
        wake: Callable[[], None],
    ) -> None:
        self.engine, self.clock, self.queries = engine, clock, queries
        self._membership = membership
        self._every = every  # slack.home_refresh
        self._kick = kick  # deliver the outbox now
        self._wake = wake  # run `refresh` soon

    def opened(self, user_id: str) -> None:
        """`user_id` opened the Home tab: publish it for them now, and keep it current from now on."""
        now = self.clock.now()
        try:
            with session_scope(self.engine) as s:
                s.add(HomeTab(user_id=user_id, opened_at=now))
        except IntegrityError:
            pass  # opened before: the publish below records this opening
        view, digest = self._view(user_id, self._snapshot(now))
        self._publish(user_id, view, digest, now, opened=True)
        self._kick()

    def refresh(self) -> int:
        """Publish again the Home of everyone who opened it and was not published within the debounce,
        where what it shows changed; returns how many were queued."""
        now = self.clock.now()
        with Session(self.engine) as s:
            query = select(HomeTab).where(
                col(HomeTab.opened_at) >= now - ACTIVE_FOR,
                or_(col(HomeTab.published_at).is_(None), col(HomeTab.published_at) <= now - self._every()),
            )
            tabs = list(s.exec(query))
        if not tabs:
            return 0
        snapshot = self._snapshot(now)
        queued = 0
        for tab in tabs:
            view, digest = self._view(tab.user_id, snapshot)
            if digest != tab.digest:
                queued += self._publish(tab.user_id, view, digest, now, seen=tab.published_at)
        if queued:
            self._kick()
        return queued

    def changed(self, _incident_id: int | None = None) -> None:
        """An incident changed (an IncidentChanges observer): refresh the Home tabs soon."""
        self._wake()

    def _snapshot(self, now: datetime) -> tuple[Snapshot, dict[str, set[str]]]:
        snapshot = read_snapshot(self.engine, self.queries, now)
        return snapshot, self._membership(snapshot.actors())

    def _view(self, user_id: str, read: tuple[Snapshot, dict[str, set[str]]]) -> tuple[dict[str, Any], str]:
        snapshot, members = read
        view = home_view(snapshot.board_for(user_id, members))
        return view, hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()

    def _publish(
        self,
        user_id: str,
        view: dict[str, Any],
        digest: str,
        now: datetime,
        *,
        opened: bool = False,
        seen: datetime | None = None,
    ) -> int:
        """Queue `view` for `user_id`'s Home, or rewrite the one queued that has not gone yet. A refresh
        gives way (0) when another process published since it read the tab (`seen`)."""
        payload: dict[str, Any] = {"user_id": user_id, "view": view}
        with session_scope(self.engine) as s:
            tab = s.exec(select(HomeTab).where(HomeTab.user_id == user_id).with_for_update()).one()
            if not opened and tab.published_at != seen:
                return 0
            if not (tab.outbox_id and rewrite(s, tab.outbox_id, payload)):
                tab.outbox_id = enqueue(s, now, "home", **payload).id
            tab.published_at, tab.digest = now, digest
            if opened:
                tab.opened_at = now
            s.add(tab)
        return 1
