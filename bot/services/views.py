"""Modals the bot opens, bound to the person it opened them for.

A modal carries only a random handle in `private_metadata`; what it is about (the incident, the level,
the decision, where to answer) stays in the database. A submission is accepted only for a handle the bot
issued, from the same person, for the same form, and only once, so neither a forged `private_metadata`
nor a replayed submission can act on anything."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import col, select

from bot.core.clock import Clock
from bot.core.errors import NotAllowed
from bot.integrations.slack.outbox import enqueue
from bot.store.db import session_scope
from bot.store.tables import SlackView

NOT_OURS = (
    "This form cannot be accepted: the bot did not open it for you, it was changed, or it was already "
    "submitted. Nothing was changed."
)


def private_metadata(key: str) -> str:
    """Exactly what a modal the bot opened carries in private_metadata (see blocks._modal)."""
    return json.dumps({"view": key})


def handle_of(view: dict[str, Any]) -> str:
    """The handle a submitted modal carries ('' when there is none)."""
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except (TypeError, ValueError, RecursionError):
        return ""
    value = data.get("view") if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


class Views:
    def __init__(self, engine: Engine, clock: Clock, kick: Callable[[], None]) -> None:
        self.engine = engine
        self.clock = clock
        self._kick = kick

    def open(
        self,
        trigger_id: str,
        user_id: str,
        build: Callable[[dict[str, Any]], dict[str, Any]],
        meta: dict[str, Any],
    ) -> None:
        """Open the modal `build(private_metadata)` for `user_id`, remembering `meta` for its submission."""
        key = secrets.token_urlsafe(24)
        view = build({"view": key})
        assert view.get("private_metadata") == private_metadata(key)
        now = self.clock.now()
        with session_scope(self.engine) as s:
            s.add(
                SlackView(
                    key=key,
                    user_id=user_id,
                    callback_id=str(view.get("callback_id", "")),
                    meta=meta,
                    opened_at=now,
                )
            )
            enqueue(s, now, "view", trigger_id=trigger_id, view=view)
        self._kick()

    def check(self, view: dict[str, Any], user_id: str) -> dict[str, Any]:
        """What the submitted modal is about; NotAllowed unless the bot opened it for `user_id` and it
        is still open. Changes nothing (a form with errors can be submitted again)."""
        row = self._find(view, user_id)
        return dict(row.meta)

    def take(self, view: dict[str, Any], user_id: str, request_id: int | None) -> dict[str, Any]:
        """Like `check`, and mark the modal submitted by the stored request `request_id`, so another
        submission is refused (the same stored request, handled again after a crash, is not)."""
        row = self._find(view, user_id, request_id)
        with session_scope(self.engine) as s:
            taken = s.execute(
                update(SlackView)
                .where(
                    col(SlackView.id) == row.id,
                    col(SlackView.submitted_at).is_(None)
                    | ((col(SlackView.request_id) == request_id) & (col(SlackView.request_id).is_not(None))),
                )
                .values(submitted_at=self.clock.now(), request_id=request_id)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                raise NotAllowed(NOT_OURS)
        return dict(row.meta)

    def _find(self, view: dict[str, Any], user_id: str, request_id: int | None = None) -> SlackView:
        key = handle_of(view)
        if not key:
            raise NotAllowed(NOT_OURS)
        with session_scope(self.engine) as s:
            row = s.exec(select(SlackView).where(SlackView.key == key[:64])).first()
        if (
            row is None
            or view.get("private_metadata") != private_metadata(row.key)  # tampered with
            or row.user_id != user_id
            or row.callback_id != view.get("callback_id")
            or (row.submitted_at is not None and (request_id is None or row.request_id != request_id))
        ):
            raise NotAllowed(NOT_OURS)
        return row
