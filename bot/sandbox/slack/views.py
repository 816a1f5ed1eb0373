"""Modals and App Home views, and the short-lived trigger ids that open or push them."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.sandbox.slack.conventions import Failure, valid_blocks
from bot.sandbox.slack.identity import APP_ID, BOT_ID, JSON, TEAM_ID

MAX_VIEW_BLOCKS = 100
MAX_VIEW_BYTES = 250_000


@dataclass
class Trigger:
    minted_at: float
    user: str | None
    view_id: str | None
    used: bool = False


def valid_view(view: Any) -> JSON:
    """`view` when it is a modal or home view Slack would accept."""
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        raise Failure("invalid_arguments")
    valid_blocks(view.get("blocks", []), MAX_VIEW_BLOCKS, "invalid_arguments")
    if view["type"] == "modal" and not view.get("title"):
        raise Failure("invalid_arguments")
    if len(json.dumps(view)) > MAX_VIEW_BYTES:
        raise Failure("view_too_large")
    return view


class ViewStore:
    """Views by id, in the order they were opened, the trigger ids minted for them, and each user's
    published Home tab; callers hold the workspace lock."""

    def __init__(
        self, next_serial: Callable[[], int], clock: Callable[[], float], trigger_ttl: float
    ) -> None:
        self.views: dict[str, JSON] = {}
        self.triggers: dict[str, Trigger] = {}
        self.homes: dict[str, str] = {}  # user id → the id of the Home view published for them
        self._next_serial = next_serial
        self._clock = clock
        self._trigger_ttl = trigger_ttl

    def mint_trigger(self, user: str | None, view_id: str | None) -> str:
        """A trigger id that can be used once within the trigger TTL."""
        trigger_id = f"{self._next_serial()}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"
        self.triggers[trigger_id] = Trigger(self._clock(), user, view_id)
        return trigger_id

    def use_trigger(self, trigger_id: Any) -> Trigger:
        """Spend a trigger id; Slack's error when it is unknown, used or expired."""
        if not trigger_id:
            raise Failure("invalid_arguments")
        trigger = self.triggers.get(str(trigger_id))
        if trigger is None:
            raise Failure("invalid_trigger_id")
        if trigger.used:
            raise Failure("exchanged_trigger_id")
        if self._clock() - trigger.minted_at > self._trigger_ttl:
            raise Failure("expired_trigger_id")
        trigger.used = True
        return trigger

    def find(self, view_id: Any, external_id: Any) -> str:
        """The id of the stored view named by `view_id`, or else by `external_id`; `not_found` otherwise."""
        if not view_id and external_id:
            view_id = next((v["id"] for v in self.views.values() if v["external_id"] == external_id), None)
        if not view_id or view_id not in self.views:
            raise Failure("not_found")
        return str(view_id)

    def publish(self, user: str, view: JSON, expected_hash: Any) -> JSON:
        """Make `view` `user`'s Home tab, in place of the one published before (same id, new hash);
        `hash_conflict` when `expected_hash` is given and is not the current view's."""
        current = self.homes.get(user)
        if expected_hash and current is not None and expected_hash != self.views[current]["hash"]:
            raise Failure("hash_conflict")
        stored = self.store(view, view_id=current)
        self.homes[user] = stored["id"]
        return stored

    def store(self, view: JSON, view_id: str | None = None, previous: str | None = None) -> JSON:
        """Store `view` as a new view (pushed over `previous`, if given) or in place of `view_id`."""
        old = self.views.get(view_id or "")
        view_id = view_id or f"V{self._next_serial():010d}"
        root = old["root_view_id"] if old else (self.views[previous]["root_view_id"] if previous else view_id)
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
        self.views[view_id] = stored
        return stored
