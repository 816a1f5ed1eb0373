"""Who is in the coordinator / tech-lead / decider groups: Slack user groups resolved and cached briefly."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)


class GroupResolver:
    """Maps a handle ("@data-coordinator") or group id ("S…") to its member user ids, with a TTL cache."""

    def __init__(self, client: WebClient, ttl_s: float = 300.0) -> None:
        self._client = client
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._groups: tuple[float, dict[str, str]] | None = None  # handle → id
        self._members: dict[str, tuple[float, set[str]]] = {}

    def _handles(self) -> dict[str, str]:
        with self._lock:
            if self._groups and time.monotonic() - self._groups[0] < self._ttl:
                return self._groups[1]
        resp = self._client.usergroups_list()
        groups: list[dict[str, Any]] = resp.get("usergroups", [])
        mapping = {str(g["handle"]): str(g["id"]) for g in groups}
        with self._lock:
            self._groups = (time.monotonic(), mapping)
        return mapping

    def group_id(self, entry: str) -> str | None:
        """The user-group id for a handle or id entry (None for user ids or unknown handles)."""
        if entry.startswith("S"):
            return entry
        if entry.startswith("@"):
            try:
                return self._handles().get(entry[1:])
            except SlackApiError as exc:
                log.warning("usergroups.list failed: %s", exc.response.get("error"))
        return None

    def members(self, entry: str) -> set[str]:
        """Member ids of a group entry; a user id stands for itself; unknown groups have no members."""
        if entry[:1] in ("U", "W"):
            return {entry}
        gid = self.group_id(entry)
        if gid is None:
            return set()
        with self._lock:
            cached = self._members.get(gid)
            if cached and time.monotonic() - cached[0] < self._ttl:
                return cached[1]
        try:
            users: set[str] = set(self._client.usergroups_users_list(usergroup=gid).get("users", []))
        except SlackApiError as exc:
            log.warning("usergroups.users.list %s failed: %s", gid, exc.response.get("error"))
            return set()
        with self._lock:
            self._members[gid] = (time.monotonic(), users)
        return users

    def membership(self, entries: list[str]) -> dict[str, set[str]]:
        return {e: self.members(e) for e in entries}

    def mention(self, entry: str) -> str:
        """How to mention an entry in message text: <!subteam^S…> for groups, <@U…> for users."""
        if entry[:1] in ("U", "W"):
            return f"<@{entry}>"
        gid = self.group_id(entry)
        return f"<!subteam^{gid}>" if gid else entry
