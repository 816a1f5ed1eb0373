"""After an ambiguous failure (an answer lost, a process that died mid-send): did Slack store our post
anyway? Every post carries its outbox id in Slack's message metadata, so it can be found again."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient

METADATA_EVENT = "escalation_bot_outbox"
PAGE = 200
CLOCK_SKEW_S = 600  # Slack's ts is wall-clock time; this margin covers skew between us and Slack


def metadata(outbox_id: int | None) -> dict[str, Any]:
    """The message metadata a post is sent with."""
    return {"event_type": METADATA_EVENT, "event_payload": {"outbox_id": outbox_id}}


def find_earlier_post(
    client: WebClient, outbox_id: int | None, channel: str, thread_ts: str | None, since: float
) -> dict[str, Any] | None:
    """The message Slack stored for this outbox row, looked for in its thread or its channel since `since`.

    A failed look-up raises: posting without knowing could post twice."""
    cursor: str | None = None
    while True:
        if thread_ts:
            resp = client.conversations_replies(
                channel=channel, ts=thread_ts, limit=PAGE, cursor=cursor, include_all_metadata=True
            )
        else:
            resp = client.conversations_history(
                channel=channel,
                oldest=f"{since - CLOCK_SKEW_S:.6f}",
                limit=PAGE,
                cursor=cursor,
                include_all_metadata=True,
            )
        messages: list[dict[str, Any]] = resp.get("messages", [])
        for msg in messages:
            meta = msg.get("metadata") or {}
            if (
                meta.get("event_type") == METADATA_EVENT
                and meta.get("event_payload", {}).get("outbox_id") == outbox_id
            ):
                return dict(msg)
        cursor = (resp.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return None
