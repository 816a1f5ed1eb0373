"""The delivery loop: claims due rows, holds back what Slack said to wait for, sends each row through its
sender and applies the error policy (`failures.py`) to what goes wrong, row by row."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.core.clock import Clock
from bot.integrations.slack.channels import ChannelDirectory
from bot.integrations.slack.outbox.failures import MAX_AGE, MAX_ATTEMPTS, Failure, Verdict, backoff, classify
from bot.integrations.slack.outbox.pacing import Pacing, Tier
from bot.integrations.slack.outbox.queue import OutboxQueue, enqueue
from bot.integrations.slack.outbox.sender import METHODS, send
from bot.metrics import Metrics
from bot.store.db import session_scope
from bot.store.tables import OutboxMessage

log = logging.getLogger(__name__)
OnFailure = Callable[[OutboxMessage, Failure, Exception, float], None]


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
        self._queue = OutboxQueue(engine, clock, lease)
        self._pacing = Pacing(rate_per_channel, burst, tiers, ticker)
        self._client = client
        self._clock = clock
        self._metrics = metrics
        self._admin = admin_channel
        self._channels = ChannelDirectory(client)
        self._lock = threading.Lock()
        self._on_failure: dict[Verdict, OnFailure] = {
            Verdict.RATE_LIMITED: self._rate_limited,
            Verdict.OUTAGE: self._outage,
            Verdict.REFUSED: self._refused,
            Verdict.FINAL: lambda row, failure, _exc, _started: self._give_up(row, failure.error),
            Verdict.SKIPPED: lambda row, failure, _exc, _started: self._finish_dead(row, failure.error),
            Verdict.BUG: self._bug,
        }

    def deliver_due(self, limit: int = 50) -> int:
        """Send what is due now; returns how many rows were delivered."""
        with self._lock:  # one delivery loop per process; replicas are kept apart by the row claims
            now = self._clock.now()
            blocked = self._pacing.blocked_methods(now)
            claimed = self._queue.claim(
                limit,
                held_kinds=[kind for kind, method in METHODS.items() if method in blocked],
                full_channels=sorted(self._pacing.full_channels(now)),
                admit=lambda row, channel: self._pacing.admit(_method(row), channel, self._clock.now()),
            )
            sent = 0
            for row in claimed:
                channel = self._queue.post_channel(row) if row.kind == "post" else None
                if self._pacing.held(_method(row), channel, self._clock.now()):
                    self._queue.unclaim(row)  # a 429 or an outage earlier in this batch: wait with the rest
                    continue
                if not self._queue.renew(row):
                    continue  # the batch took long enough for another process to take this row
                sent += self._deliver(row)
            return sent

    def pending(self) -> int:
        """How many rows are waiting to be delivered."""
        return self._queue.pending()

    def channel_id(self, ref: str) -> str:
        """The id of a channel given by id or #name, from the same cached directory the posts use."""
        return self._channels.resolve(ref)

    def _deliver(self, row: OutboxMessage) -> int:
        started = time.time()  # wall time, comparable with the ts Slack gives messages
        to = self._queue.target(row)
        try:
            if to.channel:
                to = replace(to, channel=self._channels.resolve(to.channel))
            channel, ts = send(self._client, row, to)
        except Exception as exc:  # every exception gets a verdict: see failures.py
            failure = classify(exc, row.kind)
            self._on_failure[failure.verdict](row, failure, exc, started)
            return 0
        self._pacing.recovered(_method(row))
        self._queue.finish(row, "sent", channel=channel, ts=ts, error=None)
        self._metrics.slack_messages.labels(kind=row.kind).inc()
        return 1

    # -- the error policy's verdicts ----------------------------------------------------------------------
    def _rate_limited(self, row: OutboxMessage, failure: Failure, _exc: Exception, _started: float) -> None:
        until = self._clock.now() + timedelta(seconds=failure.retry_after)
        self._metrics.slack_retries.labels(reason=failure.reason).inc()
        channel = self._queue.post_channel(row) if row.kind == "post" else None
        names = {channel, self._channels.resolve(channel)} if channel else set()  # by its name and by its id
        self._pacing.rate_limited(_method(row), names, until)
        self._retry(row, until, failure.error)

    def _outage(self, row: OutboxMessage, failure: Failure, _exc: Exception, started: float) -> None:
        """Back off this row, and the whole method so an outage is probed by one call at a time instead of
        by every waiting row."""
        now = self._clock.now()
        self._metrics.slack_retries.labels(reason=failure.reason).inc()
        self._pacing.outage(_method(row), now)
        unsure = min(row.unsure_since or started, started) if row.kind == "post" else None
        self._retry(row, now + backoff(row.attempts), failure.error, unsure_since=unsure)

    def _refused(self, row: OutboxMessage, failure: Failure, _exc: Exception, _started: float) -> None:
        self._retry(row, self._clock.now() + backoff(row.attempts), failure.error, transient=False)

    def _bug(self, row: OutboxMessage, failure: Failure, exc: Exception, _started: float) -> None:
        """An error in the bot itself: this row fails loudly, nothing else is held."""
        log.error(
            "outbox %s (%s to %s) failed by an error in the bot", row.id, row.kind, row.channel, exc_info=exc
        )
        self._metrics.outbox_errors.labels(kind=row.kind, exception=type(exc).__name__).inc()
        self._finish_dead(row, f"error in the bot: {failure.error}")
        about = f" for INC-{row.incident_id}" if row.incident_id is not None else ""
        self._notify(
            row,
            f":warning: Could not deliver a {row.kind}{about} to {row.channel or 'Slack'}: an error in the "
            f"bot ({type(exc).__name__}, outbox row {row.id}). It is not retried; the log has the details.",
        )

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
        self._queue.retry(row, at, error, unsure_since)

    def _give_up(self, row: OutboxMessage, error: str) -> None:
        log.error("outbox %s (%s to %s) undeliverable: %s", row.id, row.kind, row.channel, error)
        self._metrics.slack_undeliverable.labels(error=error[:40]).inc()
        self._finish_dead(row, error)
        if row.kind in ("post", "update"):
            self._notify(
                row,
                f":warning: Could not deliver a {row.kind} for INC-{row.incident_id} to "
                f"{row.channel}: {error}. Invite the bot to the channel or fix app.yaml.",
            )

    def _finish_dead(self, row: OutboxMessage, error: str) -> None:
        self._queue.finish(row, "dead", channel=None, ts=None, error=error)

    def _notify(self, row: OutboxMessage, text: str) -> None:
        """Tell the admin channel, through the outbox; never about a row addressed to it, so a notice that
        fails cannot beget another."""
        if self._admin and row.channel != self._admin:
            with session_scope(self._engine) as s:
                enqueue(s, self._clock.now(), "post", channel=self._admin, text=text)


def _method(row: OutboxMessage) -> str:
    return METHODS.get(row.kind, row.kind)
