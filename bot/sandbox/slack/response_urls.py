"""`response_url`s: minted for a command or a click, good for a few uses within half an hour, and what a
payload posted to one does (reply in channel or ephemerally, replace or delete the original)."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from bot.sandbox.slack.conventions import Failure, flag
from bot.sandbox.slack.identity import JSON
from bot.sandbox.slack.messages import MessageStore, bot_message

RESPONSE_URL_USES = 5
RESPONSE_URL_TTL = 30 * 60.0


@dataclass
class ResponseUrl:
    minted_at: float
    channel: str | None
    ts: str | None
    user: str | None
    uses: int = 0


class ResponseUrls:
    """The response urls minted so far and every payload they accepted; callers hold the workspace lock."""

    def __init__(self, messages: MessageStore, clock: Callable[[], float]) -> None:
        self.urls: dict[str, ResponseUrl] = {}
        self.responses: list[JSON] = []
        self._messages = messages
        self._clock = clock

    def mint(self, channel_id: str | None, ts: str | None, user: str | None) -> str:
        """A new response id; with channel and ts, `replace_original` edits that message."""
        response_id = secrets.token_hex(8)
        self.urls[response_id] = ResponseUrl(self._clock(), channel_id, ts, user)
        return response_id

    def live(self, response_id: str) -> ResponseUrl:
        """The url for `response_id`; `no_such_url`, or `expired_url` once used up or too old."""
        url = self.urls.get(response_id)
        if url is None:
            raise Failure("no_such_url")
        if url.uses >= RESPONSE_URL_USES or self._clock() - url.minted_at > RESPONSE_URL_TTL:
            raise Failure("expired_url")
        return url

    def accept(self, response_id: str, url: ResponseUrl, payload: JSON) -> None:
        """Count one use of `url` and record `payload` with where it was posted."""
        url.uses += 1
        record = {"response_id": response_id, "channel": url.channel, "ts": url.ts, "user": url.user}
        self.responses.append({**copy.deepcopy(payload), **record})

    def respond(self, url: ResponseUrl, payload: JSON) -> None:
        """Apply `payload` as Slack does: delete or replace the original, or post a new message."""
        messages = self._messages
        original = messages.by_channel.get(url.channel or "", {}).get(url.ts or "")
        if flag(payload.get("delete_original")):
            if original is not None:
                messages.delete(url.channel or "", original["ts"])
            return
        if flag(payload.get("replace_original")) and original is not None:
            msg = bot_message(payload)
            for key in ("text", "blocks", "attachments"):
                if key in msg:
                    original[key] = msg[key]
            messages.mark_edited(original)
            return
        if url.channel is None:
            raise Failure("channel_not_found")
        msg = bot_message(payload)
        if payload.get("response_type") == "in_channel":
            messages.post(url.channel, msg, payload.get("thread_ts"), broadcast=False)
        else:
            messages.add_ephemeral(url.channel, url.user or "", msg, payload.get("thread_ts"))
