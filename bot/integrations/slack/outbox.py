"""Every write to Slack goes through the outbox: stored in the same transaction as the change that
caused it, then delivered in order per incident, paced per channel, retried on 429 (honouring
Retry-After) and on 5xx, and never posted twice after an ambiguous failure."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, or_, update
from sqlmodel import Session, col, select

from bot.core.clock import Clock
from bot.integrations.slack.channels import ChannelDirectory
from bot.metrics import Metrics
from bot.store.db import is_postgres, session_scope
from bot.store.tables import OutboxMessage

log = logging.getLogger(__name__)

METADATA_EVENT = "escalation_bot_outbox"
# Slack errors that no retry will fix: the row is given up and reported once.
PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_blocks",
    "msg_too_long",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "cant_update_message",
    "message_not_found",
    "user_not_in_channel",
    "no_text",
    "invalid_arguments",
    "expired_trigger_id",
    "exchanged_trigger_id",
    "edit_window_closed",
    "already_reacted",
    "restricted_action",
}
MAX_ATTEMPTS = 12
MAX_AGE = timedelta(hours=6)


def enqueue(
    session: Session,
    now: datetime,
    kind: str,
    *,
    incident_id: int | None = None,
    channel: str | None = None,
    thread_ts: str | None = None,
    thread_of: int | None = None,
    target_ts: str | None = None,
    target_of: int | None = None,
    **payload: Any,
) -> OutboxMessage:
    """Add a Slack write to the current transaction; it is delivered only if the transaction commits."""
    row = OutboxMessage(
        incident_id=incident_id,
        kind=kind,
        channel=channel,
        thread_ts=thread_ts,
        thread_of=thread_of,
        target_ts=target_ts,
        target_of=target_of,
        payload=payload,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


class _Pacer:
    """A token bucket per channel: about `rate` posts per second with a small burst."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._tokens: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, channel: str) -> bool:
        with self._lock:
            now = time.monotonic()
            tokens, last = self._tokens.get(channel, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._tokens[channel] = (tokens, now)
                return False
            self._tokens[channel] = (tokens - 1.0, now)
            return True


class OutboxDelivery:
    """Claims due outbox rows and sends them with the Web API client."""

    def __init__(
        self,
        engine: Engine,
        client: WebClient,
        clock: Clock,
        metrics: Metrics,
        admin_channel: str | None = None,
        rate_per_channel: float = 1.0,
        burst: int = 3,
    ) -> None:
        self._engine = engine
        self._client = client
        self._clock = clock
        self._metrics = metrics
        self._admin = admin_channel
        self._pacer = _Pacer(rate_per_channel, burst)
        self._channels = ChannelDirectory(client)
        self._owner = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()

    # -- claiming --------------------------------------------------------------------------------------
    def _claim(self, limit: int) -> list[OutboxMessage]:
        now = self._clock.now()
        with session_scope(self._engine) as s:
            query = (
                select(OutboxMessage)
                .where(OutboxMessage.status.in_(("pending", "sending")))  # type: ignore[attr-defined]
                .order_by(OutboxMessage.id)  # type: ignore[arg-type]
                .limit(limit * 4)
            )
            if is_postgres(self._engine):
                query = query.with_for_update(skip_locked=True)
            rows = list(s.exec(query))
            blocked: set[int] = set()  # incidents with an earlier undelivered row
            claimed: list[OutboxMessage] = []
            for row in rows:
                key = row.incident_id
                busy = row.status == "sending" and row.claimed_until and row.claimed_until > now
                due = row.next_attempt_at <= now and not busy
                if key is not None and key in blocked:
                    continue
                if key is not None:
                    blocked.add(key)  # only the oldest undelivered row of an incident may go
                if not due or len(claimed) >= limit:
                    continue
                channel = row.channel or ""
                if row.kind == "post" and channel and not self._pacer.take(channel):
                    continue
                row.status, row.claimed_by = "sending", self._owner
                row.claimed_until = now + timedelta(seconds=60)
                row.attempts += 1
                s.add(row)
                claimed.append(row)
            return claimed

    def deliver_due(self, limit: int = 50) -> int:
        """Send what is due now; returns how many rows were delivered."""
        with self._lock:  # one delivery loop per process; replicas are kept apart by the row claims
            sent = 0
            for row in self._claim(limit):
                sent += self._deliver(row)
            return sent

    def pending(self) -> int:
        with Session(self._engine) as s:
            return len(
                list(
                    s.exec(
                        select(OutboxMessage.id).where(
                            or_(
                                col(OutboxMessage.status) == "pending", col(OutboxMessage.status) == "sending"
                            )
                        )
                    )
                )
            )

    # -- sending ---------------------------------------------------------------------------------------
    def _resolve_refs(self, row: OutboxMessage) -> tuple[str | None, str | None, str | None]:
        """(channel, thread_ts, target_ts), filling in the ts of rows this one depends on."""
        channel, thread_ts, target_ts = row.channel, row.thread_ts, row.target_ts
        with Session(self._engine) as s:
            if row.thread_of and not thread_ts:
                parent = s.get(OutboxMessage, row.thread_of)
                if parent is not None and parent.result_ts:
                    thread_ts, channel = parent.result_ts, parent.result_channel or channel
            if row.target_of and not target_ts:
                target = s.get(OutboxMessage, row.target_of)
                if target is not None and target.result_ts:
                    target_ts, channel = target.result_ts, target.result_channel or channel
        if channel:
            channel = self._channels.resolve(channel)
        return channel, thread_ts, target_ts

    def _find_earlier_post(
        self, row: OutboxMessage, channel: str, thread_ts: str | None
    ) -> dict[str, Any] | None:
        """After an ambiguous failure: did Slack store our post anyway? (matched by the outbox id metadata)"""
        try:
            if thread_ts:
                resp = self._client.conversations_replies(
                    channel=channel, ts=thread_ts, limit=200, include_all_metadata=True
                )
            else:
                resp = self._client.conversations_history(
                    channel=channel, limit=50, include_all_metadata=True
                )
        except SlackApiError:
            return None
        messages: list[dict[str, Any]] = resp.get("messages", [])
        for msg in messages:
            meta = msg.get("metadata") or {}
            if (
                meta.get("event_type") == METADATA_EVENT
                and meta.get("event_payload", {}).get("outbox_id") == row.id
            ):
                return dict(msg)
        return None

    def _send(self, row: OutboxMessage) -> tuple[str | None, str | None]:
        channel, thread_ts, target_ts = self._resolve_refs(row)
        p = row.payload
        if row.kind == "post":
            if not channel:
                raise _Skip("no channel to post to")
            if row.attempts > 1:
                earlier = self._find_earlier_post(row, channel, thread_ts)
                if earlier:
                    return channel, earlier["ts"]
            resp = self._client.chat_postMessage(
                channel=channel,
                text=p.get("text", ""),
                blocks=p.get("blocks"),
                thread_ts=thread_ts,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"outbox_id": row.id}},
                unfurl_links=False,
                unfurl_media=False,
            )
            return resp.get("channel"), resp.get("ts")
        if row.kind == "update":
            if not target_ts or not channel:
                raise _Skip("the message to update was never delivered")
            resp = self._client.chat_update(
                channel=channel, ts=target_ts, text=p.get("text", ""), blocks=p.get("blocks", [])
            )
            return resp.get("channel"), resp.get("ts")
        if row.kind == "ephemeral":
            self._client.chat_postEphemeral(
                channel=channel or "",
                user=p["user"],
                text=p.get("text", ""),
                blocks=p.get("blocks"),
                thread_ts=thread_ts,
            )
            return channel, None
        if row.kind == "view":
            self._client.views_open(trigger_id=p["trigger_id"], view=p["view"])
            return None, None
        if row.kind == "reaction":
            self._client.reactions_add(channel=channel or "", timestamp=target_ts or "", name=p["name"])
            return channel, target_ts
        raise _Skip(f"unknown outbox kind {row.kind}")

    def _deliver(self, row: OutboxMessage) -> int:
        now = self._clock.now()
        try:
            channel, ts = self._send(row)
        except _Skip as exc:
            self._finish(row, "dead", error=str(exc))
            return 0
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "")) or f"http {status}"
            if status == 429:
                retry_after = float(
                    exc.response.headers.get("Retry-After", exc.response.headers.get("retry-after", 1))
                )
                self._metrics.slack_retries.labels(reason="429").inc()
                self._retry(
                    row, now + timedelta(seconds=retry_after), f"ratelimited, retry after {retry_after:g}s"
                )
            elif status >= 500:
                self._metrics.slack_retries.labels(reason="5xx").inc()
                self._retry(row, now + self._backoff(row), f"http {status}")
            elif error in PERMANENT or row.kind in ("view", "ephemeral"):
                self._give_up(row, error)
            else:
                self._retry(row, now + self._backoff(row), error)
            return 0
        except Exception as exc:  # connection reset, timeout: possibly delivered; checked before re-posting
            self._metrics.slack_retries.labels(reason="connection").inc()
            self._retry(row, now + self._backoff(row), f"{type(exc).__name__}: {exc}")
            return 0
        self._finish(row, "sent", channel=channel, ts=ts)
        self._metrics.slack_messages.labels(kind=row.kind).inc()
        return 1

    def _backoff(self, row: OutboxMessage) -> timedelta:
        return timedelta(seconds=min(60.0, 0.5 * 2 ** max(0, row.attempts - 1)))

    def _retry(self, row: OutboxMessage, at: datetime, error: str) -> None:
        log.warning("outbox %s (%s) will be retried: %s", row.id, row.kind, error)
        if row.attempts >= MAX_ATTEMPTS or self._clock.now() - row.created_at > MAX_AGE:
            self._give_up(row, error)
            return
        with session_scope(self._engine) as s:
            s.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == row.id)
                .values(
                    status="pending", next_attempt_at=at, error=error, claimed_by=None, claimed_until=None
                )
            )

    def _finish(
        self,
        row: OutboxMessage,
        status: str,
        *,
        channel: str | None = None,
        ts: str | None = None,
        error: str | None = None,
    ) -> None:
        with session_scope(self._engine) as s:
            s.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == row.id)
                .values(
                    status=status,
                    result_channel=channel,
                    result_ts=ts,
                    error=error,
                    sent_at=self._clock.now(),
                    claimed_by=None,
                    claimed_until=None,
                )
            )

    def _give_up(self, row: OutboxMessage, error: str) -> None:
        log.error("outbox %s (%s to %s) undeliverable: %s", row.id, row.kind, row.channel, error)
        self._metrics.slack_undeliverable.labels(error=error[:40]).inc()
        self._finish(row, "dead", error=error)
        if self._admin and row.kind in ("post", "update") and row.channel != self._admin:
            with session_scope(self._engine) as s:
                enqueue(
                    s,
                    self._clock.now(),
                    "post",
                    channel=self._admin,
                    text=f":warning: Could not deliver a {row.kind} for INC-{row.incident_id} to "
                    f"{row.channel}: {error}. Invite the bot to the channel or fix app.yaml.",
                )


class _Skip(Exception):
    pass
