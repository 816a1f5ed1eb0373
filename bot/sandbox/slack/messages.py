"""Messages, threads and ephemerals: unique timestamps, replies counted on their parent, and the `message`
event Slack delivers for each post."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.sandbox.slack.conventions import Failure, valid_blocks
from bot.sandbox.slack.identity import APP_ID, BOT_ID, BOT_NAME, BOT_USER_ID, JSON, TEAM_ID

log = logging.getLogger(__name__)

MAX_TEXT = 40_000
MAX_MESSAGE_BLOCKS = 50


def is_top_level(msg: JSON) -> bool:
    """A message shown in the channel itself: not in a thread, a thread's parent, or broadcast from one."""
    return msg.get("thread_ts") in (None, msg["ts"]) or msg.get("subtype") == "thread_broadcast"


def authored(text: str) -> JSON:
    """A message with `text` as the bot posts it: its user, bot and app ids and its bot profile."""
    return {
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "app_id": APP_ID,
        "team": TEAM_ID,
        "text": text,
        "bot_profile": {
            "id": BOT_ID,
            "app_id": APP_ID,
            "name": BOT_NAME,
            "team_id": TEAM_ID,
            "deleted": False,
        },
    }


def bot_message(args: JSON) -> JSON:
    """The message the bot posts with `args` (text, blocks, attachments, metadata), checked as Slack does."""
    text = args.get("text") or ""
    blocks = valid_blocks(args.get("blocks"), MAX_MESSAGE_BLOCKS, "invalid_blocks")
    attachments = args.get("attachments")
    if not text and not blocks and not attachments:
        raise Failure("no_text")
    if len(text) > MAX_TEXT:
        raise Failure("msg_too_long")
    msg = authored(text)
    if blocks is not None:
        msg["blocks"] = blocks
    if attachments is not None:
        msg["attachments"] = attachments
    metadata = args.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or not isinstance(metadata.get("event_type"), str):
            raise Failure("invalid_metadata_format")
        msg["metadata"] = {
            "event_type": metadata["event_type"],
            "event_payload": metadata.get("event_payload", {}),
        }
    return msg


class MessageStore:
    """Every channel's messages by timestamp, and the ephemerals shown to one user; callers hold the
    workspace lock."""

    def __init__(self) -> None:
        self.by_channel: dict[str, dict[str, JSON]] = {}
        self.ephemerals: list[JSON] = []
        # Called in its own thread with the `message` event Slack would deliver for each bot post.
        self.on_message: Callable[[JSON], object] | None = None
        self._last_ts_us = 0

    def mint_ts(self) -> str:
        """A timestamp later than every one minted before, `"<epoch>.<6 digits>"`."""
        self._last_ts_us = max(int(time.time() * 1_000_000), self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    def open_channel(self, channel_id: str) -> None:
        self.by_channel.setdefault(channel_id, {})

    def top_level(self, channel_id: str) -> list[JSON]:
        return [m for m in self.by_channel[channel_id].values() if is_top_level(m)]

    def replies(self, channel_id: str, parent_ts: str) -> list[JSON]:
        """The thread under `parent_ts`, oldest first, without the parent."""
        return [
            m
            for m in self.by_channel[channel_id].values()
            if m.get("thread_ts") == parent_ts and m["ts"] != parent_ts
        ]

    def stored(self, channel_id: str, ts: Any) -> JSON:
        """The message at (channel, ts); `message_not_found` otherwise."""
        msg = self.by_channel[channel_id].get(str(ts))
        if msg is None:
            raise Failure("message_not_found")
        return msg

    def thread_parent(self, channel_id: str, thread_ts: Any) -> JSON:
        """The parent of the thread `thread_ts` names; `thread_not_found` otherwise."""
        msg = self.by_channel[channel_id].get(str(thread_ts))
        if msg is None:
            raise Failure("thread_not_found")
        # A reply to a reply lands in the parent's thread, as in Slack.
        return self.by_channel[channel_id][str(msg.get("thread_ts") or msg["ts"])]

    def add(self, channel_id: str, msg: JSON, thread_ts: Any, broadcast: bool = False) -> JSON:
        """Store `msg` under a new timestamp, in the thread `thread_ts` when given."""
        parent = self.thread_parent(channel_id, thread_ts) if thread_ts else None
        msg["ts"] = self.mint_ts()
        if parent is not None:
            _attach_reply(parent, msg, broadcast)
        self.by_channel[channel_id][msg["ts"]] = msg
        return msg

    def post(self, channel_id: str, msg: JSON, thread_ts: Any, broadcast: bool) -> JSON:
        """Store a bot post and deliver its `message` event to `on_message`."""
        self.add(channel_id, msg, thread_ts, broadcast)
        self._echo(channel_id, msg)
        return msg

    def mark_edited(self, msg: JSON) -> None:
        msg["edited"] = {"user": BOT_USER_ID, "ts": self.mint_ts()}

    def delete(self, channel_id: str, ts: str) -> None:
        del self.by_channel[channel_id][ts]

    def add_ephemeral(self, channel_id: str, user: str, msg: JSON, thread_ts: Any) -> JSON:
        """Keep an ephemeral shown to `user`; its author is always the bot (`bot_id`)."""
        entry = {**msg, "channel": channel_id, "user": user, "ts": self.mint_ts(), "thread_ts": thread_ts}
        self.ephemerals.append(entry)
        return entry

    @staticmethod
    def event_for(channel_id: str, msg: JSON) -> JSON:
        """The Events API `message` event for `msg`."""
        event = {k: copy.deepcopy(v) for k, v in msg.items() if k not in ("reply_count", "reply_users")}
        event.update(channel=channel_id, channel_type="channel", event_ts=msg["ts"])
        return event

    def _echo(self, channel_id: str, msg: JSON) -> None:
        callback = self.on_message
        if callback is None:
            return
        event = self.event_for(channel_id, msg)
        event.pop("metadata", None)

        def deliver() -> None:
            try:
                callback(event)
            except Exception:
                log.exception("slack emulator: on_message hook failed")

        threading.Thread(target=deliver, name="slack-emulator-echo", daemon=True).start()


def _attach_reply(parent: JSON, reply: JSON, broadcast: bool) -> None:
    reply["thread_ts"] = parent["ts"]
    reply["parent_user_id"] = parent.get("user", parent.get("bot_id", ""))
    if broadcast:
        reply["subtype"] = "thread_broadcast"
    author = reply.get("user") or reply.get("bot_id") or ""
    users = [*parent.get("reply_users", [])]
    if author and author not in users:
        users.append(author)
    parent.update(
        thread_ts=parent["ts"],
        reply_count=parent.get("reply_count", 0) + 1,
        reply_users=users,
        reply_users_count=len(users),
        latest_reply=reply["ts"],
    )
