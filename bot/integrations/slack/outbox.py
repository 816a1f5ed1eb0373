"""Every write to Slack goes through the outbox: stored in the same transaction as the change that
caused it, then delivered in order per incident, paced per channel and per method tier, retried on 429
(honouring Retry-After), on 5xx and on connection errors with backoff, and never posted twice after an
ambiguous failure."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, and_, func, not_, or_, update
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
MAX_ATTEMPTS = 12  # for errors that are neither rate limits nor outages
MAX_AGE = timedelta(hours=6)  # rate limits and outages are waited out this long
MAX_HOLD_S = 30.0
UNSURE = "_unsure_since"  # payload key of older rows: wall time of a post attempt that may have reached Slack
INTERRUPTED = "interrupted mid-send by a restart; not sent again (it may have been shown)"
STALE_SEND_S = 600.0  # how far back to look for a post whose last attempt time is unknown
# The Web API method behind each outbox kind.
METHODS = {
    "post": "chat.postMessage",
    "update": "chat.update",
    "ephemeral": "chat.postEphemeral",
    "view": "views.open",
    "reaction": "reactions.add",
}
# Above config's ceiling for runtime.slack_rate_per_channel: the composition root turned pacing off.
UNPACED_RATE = 100.0


@dataclass(frozen=True)
class Tier:
    """A per-workspace budget for one Web API method: `per_minute` with bursts of `burst`."""

    per_minute: float
    burst: int


TIER_3 = Tier(50.0, 5)
TIER_4 = Tier(100.0, 10)
# chat.postMessage is paced per channel instead (Slack's "special" tier).
TIERS: dict[str, Tier] = {
    "chat.update": TIER_3,
    "reactions.add": TIER_3,
    "chat.postEphemeral": TIER_4,
    "views.open": TIER_4,
}


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


class TokenBucket:
    """One token bucket per key: `rate` tokens per second, holding at most `burst`."""

    def __init__(self, rate: float, burst: int, ticker: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst = rate, burst
        self._ticker = ticker
        self._tokens: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, last = self._tokens.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - last) * self.rate)

    def take(self, key: str = "") -> bool:
        """Spend one token for `key` if there is one."""
        with self._lock:
            now = self._ticker()
            tokens = self._level(key, now)
            ok = tokens >= 1.0
            self._tokens[key] = (tokens - 1.0 if ok else tokens, now)
            return ok

    def empty(self) -> set[str]:
        """The keys that have no token right now."""
        with self._lock:
            now = self._ticker()
            return {key for key in self._tokens if self._level(key, now) < 1.0}


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
        *,
        tiers: Mapping[str, Tier] | None = None,
        ticker: Callable[[], float] = time.monotonic,
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self._engine = engine
        self._lease = lease  # a row claimed by a process that died is taken up again after this
        self._client = client
        self._clock = clock
        self._metrics = metrics
        self._admin = admin_channel
        self._pacer = TokenBucket(rate_per_channel, burst, ticker)
        if tiers is None:
            tiers = TIERS if rate_per_channel <= UNPACED_RATE else {}
        self._tiers = {m: TokenBucket(t.per_minute / 60.0, t.burst, ticker) for m, t in tiers.items()}
        self._holds: dict[str, datetime] = {}  # method → no calls before (429 Retry-After, outage backoff)
        self._channel_holds: dict[str, datetime] = {}  # channel → no posts before (a post's 429)
        self._lock_holds = threading.Lock()
        self._failures: dict[str, int] = {}  # method → consecutive 5xx / connection failures
        self._channels = ChannelDirectory(client)
        self._owner = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()

    # -- claiming --------------------------------------------------------------------------------------
    def _held(self, now: datetime) -> set[str]:
        """Methods not to call now: after a 429 or during an outage."""
        return {method for method, until in self._holds.items() if until > now}

    def _claim(self, limit: int) -> list[OutboxMessage]:
        now = self._clock.now()
        spent = {method for method, bucket in self._tiers.items() if bucket.empty()}
        held_kinds = [kind for kind, method in METHODS.items() if method in self._held(now) | spent]
        full = sorted(self._pacer.empty() | self._held_channels(now))
        with session_scope(self._engine) as s:
            query = (
                select(OutboxMessage)
                .where(
                    col(OutboxMessage.status).in_(("pending", "sending")),
                    col(OutboxMessage.next_attempt_at) <= now,
                    or_(
                        col(OutboxMessage.status) == "pending",
                        col(OutboxMessage.claimed_until).is_(None),
                        col(OutboxMessage.claimed_until) <= now,
                    ),
                    col(OutboxMessage.kind).not_in(held_kinds),
                    # a paced channel must not hold back posts to other channels
                    not_(and_(col(OutboxMessage.kind) == "post", col(OutboxMessage.channel).in_(full))),
                )
                .order_by(col(OutboxMessage.id))
                .limit(max(limit * 4, 200))
            )
            if is_postgres(self._engine):
                query = query.with_for_update(skip_locked=True)
            rows = list(s.exec(query))
            first = self._first_undelivered(s, {r.incident_id for r in rows if r.incident_id is not None})
            waiting = self._undelivered(s, {ref for r in rows for ref in (r.thread_of, r.target_of) if ref})
            claimed: list[OutboxMessage] = []
            for row in rows:
                if len(claimed) >= limit:
                    break
                if row.incident_id is not None and first.get(row.incident_id) != row.id:
                    continue  # only the oldest undelivered row of an incident may go
                if row.thread_of in waiting or row.target_of in waiting:
                    continue  # a reply waits for its parent, an update for the message it rewrites
                if not self._pace(s, row):
                    continue
                wall = time.time()
                if row.status == "sending" and row.kind in ("ephemeral", "view"):
                    # its process died sending it: Slack may have shown it, and neither can be looked up
                    # (nor is a modal's trigger still valid), so it is not sent a second time
                    row.status, row.error, row.claimed_by, row.claimed_until = "dead", INTERRUPTED, None, None
                    s.add(row)
                    continue
                if row.status == "sending" and row.kind == "post":
                    # its last claim ran out mid-send (the process died, or hung): Slack may have it
                    since = row.tried_at if row.tried_at is not None else wall - STALE_SEND_S
                    row.unsure_since = min(row.unsure_since or since, since)
                row.tried_at = wall
                row.status, row.claimed_by = "sending", self._owner
                row.claimed_until = now + self._lease
                row.attempts += 1
                s.add(row)
                claimed.append(row)
            return claimed

    @staticmethod
    def _first_undelivered(s: Session, incidents: set[int]) -> dict[int, int]:
        if not incidents:
            return {}
        query = (
            select(OutboxMessage.incident_id, func.min(OutboxMessage.id))
            .where(
                col(OutboxMessage.status).in_(("pending", "sending")),
                col(OutboxMessage.incident_id).in_(incidents),
            )
            .group_by(col(OutboxMessage.incident_id))
        )
        return {int(incident or 0): int(first or 0) for incident, first in s.exec(query)}

    @staticmethod
    def _undelivered(s: Session, ids: set[int]) -> set[int]:
        if not ids:
            return set()
        query = select(OutboxMessage.id).where(
            col(OutboxMessage.id).in_(ids), col(OutboxMessage.status).in_(("pending", "sending"))
        )
        return {int(i or 0) for i in s.exec(query)}

    def _pace(self, s: Session, row: OutboxMessage) -> bool:
        """Spend a token for this row: its channel's for a post, its method's for the tiered methods."""
        if row.kind == "post":
            channel = self._post_channel(s, row)
            if channel and channel in self._held_channels(self._clock.now()):
                return False  # Slack said to wait (429) for this channel
            return not channel or self._pacer.take(channel)
        bucket = self._tiers.get(METHODS.get(row.kind, ""))
        return bucket is None or bucket.take()

    @staticmethod
    def _post_channel(s: Session, row: OutboxMessage) -> str | None:
        """The channel a post goes to: its own, or its parent's for a thread reply."""
        channel = row.channel
        if not channel and row.thread_of:
            parent = s.get(OutboxMessage, row.thread_of)
            channel = parent.channel or parent.result_channel if parent is not None else None
        return channel

    def _held_channels(self, now: datetime) -> set[str]:
        """Channels whose posts wait for a 429's Retry-After."""
        with self._lock_holds:
            return {channel for channel, until in self._channel_holds.items() if until > now}

    def deliver_due(self, limit: int = 50) -> int:
        """Send what is due now; returns how many rows were delivered."""
        with self._lock:  # one delivery loop per process; replicas are kept apart by the row claims
            sent = 0
            for row in self._claim(limit):
                now = self._clock.now()
                held = METHODS.get(row.kind, "") in self._held(now)
                if not held and row.kind == "post":
                    with Session(self._engine) as s:
                        channel = self._post_channel(s, row)
                    held = channel is not None and channel in self._held_channels(now)
                if held:
                    self._unclaim(row)  # a 429 or an outage earlier in this batch: wait with the rest
                    continue
                if not self._renew(row):
                    continue  # the batch took long enough for another process to take this row
                sent += self._deliver(row)
            return sent

    def pending(self) -> int:
        """How many rows are waiting to be delivered."""
        with Session(self._engine) as s:
            query = select(func.count()).where(col(OutboxMessage.status).in_(("pending", "sending")))
            return int(s.exec(query).one())

    def channel_id(self, ref: str) -> str:
        """The id of a channel given by id or #name, from the same cached directory the posts use."""
        return self._channels.resolve(ref)

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
        self, row: OutboxMessage, channel: str, thread_ts: str | None, since: float
    ) -> dict[str, Any] | None:
        """After an ambiguous failure: did Slack store our post anyway? (matched by the outbox id metadata)

        A failed look-up raises: posting without knowing could post twice."""
        cursor: str | None = None
        while True:
            if thread_ts:
                resp = self._client.conversations_replies(
                    channel=channel, ts=thread_ts, limit=200, cursor=cursor, include_all_metadata=True
                )
            else:
                # Slack's ts is wall-clock time; the margin covers clock skew between us and Slack.
                resp = self._client.conversations_history(
                    channel=channel,
                    oldest=f"{since - 600:.6f}",
                    limit=200,
                    cursor=cursor,
                    include_all_metadata=True,
                )
            messages: list[dict[str, Any]] = resp.get("messages", [])
            for msg in messages:
                meta = msg.get("metadata") or {}
                if (
                    meta.get("event_type") == METADATA_EVENT
                    and meta.get("event_payload", {}).get("outbox_id") == row.id
                ):
                    return dict(msg)
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None

    def _send(self, row: OutboxMessage) -> tuple[str | None, str | None]:
        channel, thread_ts, target_ts = self._resolve_refs(row)
        p = row.payload
        if row.kind == "post":
            if not channel:
                raise _Skip("no channel to post to")
            since = row.unsure_since if row.unsure_since is not None else p.get(UNSURE)
            if since is not None:  # it may be in Slack already: look before posting again
                earlier = self._find_earlier_post(row, channel, thread_ts, float(since))
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
        method = METHODS.get(row.kind, row.kind)
        started = time.time()  # wall time, comparable with the ts Slack gives messages
        try:
            channel, ts = self._send(row)
        except _Skip as exc:
            self._finish(row, "dead", error=str(exc))
            return 0
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "")) or f"http {status}"
            if status == 429:
                headers = exc.response.headers
                retry_after = _seconds(headers.get("Retry-After", headers.get("retry-after")))
                self._metrics.slack_retries.labels(reason="429").inc()
                if method in TIERS:  # a tier's budget is per workspace; a post's 429 is about its channel
                    self._holds[method] = now + timedelta(seconds=retry_after)
                elif row.kind == "post":
                    self._hold_channel(row, now + timedelta(seconds=retry_after))
                self._retry(
                    row, now + timedelta(seconds=retry_after), f"ratelimited, retry after {retry_after:g}s"
                )
            elif status >= 500:  # Slack may have acted before failing: a post is looked up before a retry
                self._metrics.slack_retries.labels(reason="5xx").inc()
                self._outage(row, method, now, f"http {status}", started)
            elif error in PERMANENT or row.kind in ("view", "ephemeral"):
                self._give_up(row, error)
            else:
                self._retry(row, now + self._backoff(row), error, transient=False)
            return 0
        except Exception as exc:  # connection reset, timeout: possibly delivered; checked before re-posting
            self._metrics.slack_retries.labels(reason="connection").inc()
            self._outage(row, method, now, f"{type(exc).__name__}: {exc}", started)
            return 0
        self._failures.pop(method, None)
        self._finish(row, "sent", channel=channel, ts=ts)
        self._metrics.slack_messages.labels(kind=row.kind).inc()
        return 1

    def _hold_channel(self, row: OutboxMessage, until: datetime) -> None:
        """Every post to this row's channel waits until `until` (by its name and by its id)."""
        with Session(self._engine) as s:
            names = {self._post_channel(s, row)}
        names |= {self._channels.resolve(n) for n in names if n}
        with self._lock_holds:
            for name in filter(None, names):
                self._channel_holds[name] = max(until, self._channel_holds.get(name, until))

    def _outage(self, row: OutboxMessage, method: str, now: datetime, error: str, started: float) -> None:
        """A 5xx or a lost connection: back off this row, and the whole method so an outage is probed
        by one call at a time instead of by every waiting row."""
        failures = self._failures.get(method, 0) + 1
        self._failures[method] = failures
        self._holds[method] = now + timedelta(seconds=min(MAX_HOLD_S, 0.5 * 2 ** (failures - 1)))
        unsure = None
        if row.kind == "post":
            unsure = min(row.unsure_since or started, started)
        self._retry(row, now + self._backoff(row), error, unsure_since=unsure)

    def _backoff(self, row: OutboxMessage) -> timedelta:
        return timedelta(seconds=min(60.0, 0.5 * 2 ** max(0, row.attempts - 1)))

    def _retry(
        self,
        row: OutboxMessage,
        at: datetime,
        error: str,
        *,
        transient: bool = True,
        unsure_since: float | None = None,
    ) -> None:
        log.warning("outbox %s (%s) will be retried: %s", row.id, row.kind, error)
        too_old = self._clock.now() - row.created_at > MAX_AGE
        if too_old or (not transient and row.attempts >= MAX_ATTEMPTS):
            self._give_up(row, error)
            return
        values: dict[str, Any] = {
            "status": "pending",
            "next_attempt_at": at,
            "error": error,
            "claimed_by": None,
            "claimed_until": None,
        }
        if unsure_since is not None:
            values["unsure_since"] = unsure_since
        with session_scope(self._engine) as s:
            s.execute(update(OutboxMessage).where(col(OutboxMessage.id) == row.id).values(**values))

    def _renew(self, row: OutboxMessage) -> bool:
        """Extend this process's claim on a row just before sending it; False when it is no longer ours."""
        with session_scope(self._engine) as s:
            result = s.execute(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.id) == row.id,
                    col(OutboxMessage.claimed_by) == self._owner,
                    col(OutboxMessage.status) == "sending",
                )
                .values(claimed_until=self._clock.now() + self._lease)
            )
            mine: bool = result.rowcount == 1  # type: ignore[attr-defined]
        return mine

    def _unclaim(self, row: OutboxMessage) -> None:
        """Put a claimed row back untried."""
        with session_scope(self._engine) as s:
            s.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == row.id)
                .values(status="pending", attempts=row.attempts - 1, claimed_by=None, claimed_until=None)
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


def _seconds(value: Any) -> float:
    """A Retry-After header in seconds (1 when it is missing or not a number)."""
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 1.0


class _Skip(Exception):
    pass
