"""A person's time zone, as Slack's `users.info` has it (cached briefly): "until tomorrow 09:00" is their
09:00."""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)


class TimeZones:
    def __init__(self, client: WebClient, ttl_s: float = 3600.0) -> None:
        self._client = client
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._offsets: dict[str, tuple[float, int]] = {}

    def offset(self, user_id: str) -> int:
        """Seconds east of UTC of `user_id`'s time zone; 0 (UTC) when Slack cannot say."""
        with self._lock:
            known = self._offsets.get(user_id)
            if known and time.monotonic() - known[0] < self._ttl:
                return known[1]
        try:
            user = self._client.users_info(user=user_id).get("user") or {}
            seconds = int(user.get("tz_offset") or 0)
        except (SlackApiError, ValueError, TypeError) as exc:
            log.info("users.info %s: %s; its time zone is taken as UTC", user_id, exc)
            seconds = 0
        with self._lock:
            self._offsets[user_id] = (time.monotonic(), seconds)
        return seconds
