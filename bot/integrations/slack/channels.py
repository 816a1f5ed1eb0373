"""Channel names from app.yaml ("#ml-alerts") → channel ids, which most Web API methods require."""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)


def is_channel_id(ref: str) -> bool:
    return ref[:1] in ("C", "G", "D") and ref.isalnum() and ref.upper() == ref


class ChannelDirectory:
    """Resolves names with conversations.list, cached; ids pass through unchanged."""

    def __init__(self, client: WebClient, ttl_s: float = 300.0) -> None:
        self._client = client
        self._ttl = ttl_s
        self._ids: dict[str, str] = {}
        self._loaded = 0.0
        self._min_refresh_s = 30.0  # an unknown name does not re-list the workspace on every attempt
        self._lock = threading.Lock()

    def resolve(self, ref: str) -> str:
        """The id for `ref`; an unknown name comes back unchanged (Slack then says channel_not_found)."""
        if is_channel_id(ref):
            return ref
        name = ref.lstrip("#")
        with self._lock:
            age = time.monotonic() - self._loaded
            known = name in self._ids
            if (known and age < self._ttl) or (not known and age < self._min_refresh_s):
                return self._ids.get(name, ref)
        self._refresh()
        with self._lock:
            return self._ids.get(name, ref)

    def _refresh(self) -> None:
        ids: dict[str, str] = {}
        cursor = None
        try:
            while True:
                page = self._client.conversations_list(
                    limit=200, cursor=cursor, exclude_archived=True, types="public_channel,private_channel"
                )
                listed: list[dict[str, str]] = page.get("channels", [])
                for channel in listed:
                    ids[str(channel["name"])] = str(channel["id"])
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        except SlackApiError as exc:
            log.warning("conversations.list failed: %s", exc.response.get("error"))
            return
        with self._lock:
            self._ids, self._loaded = ids, time.monotonic()
