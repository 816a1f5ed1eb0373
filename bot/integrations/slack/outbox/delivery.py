"""The delivery loop: claims due rows, holds back what Slack said to wait for, sends each row through
its sender, and hands what goes wrong to the error policy, row by row."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta

from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.core.clock import Clock
from bot.integrations.slack.channels import ChannelDirectory
from bot.integrations.slack.outbox.claims import claim
from bot.integrations.slack.outbox.outcomes import Outcomes
from bot.integrations.slack.outbox.pacing import Pacing, Tier
from bot.integrations.slack.outbox.queue import OutboxQueue
from bot.integrations.slack.outbox.sender import METHODS, method_of, send
from bot.metrics import Metrics
from bot.store.tables import OutboxMessage


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
        self._queue = OutboxQueue(engine, clock, lease)
        self._pacing = Pacing(rate_per_channel, burst, tiers, ticker)
        self._channels = ChannelDirectory(client)
        self._outcomes = Outcomes(self._queue, self._pacing, self._channels, metrics, admin_channel)
        self._client, self._clock, self._metrics = client, clock, metrics
        self._lock = threading.Lock()
        self._draining = threading.Event()
        self._untried: set[int] = set()  # rows of the batch in hand not started yet

    def stop_claiming(self) -> None:
        """Claim no more rows (the process shuts down); a batch in hand puts back what it has not started."""
        self._draining.set()

    def release(self) -> int:
        """Give back every row this process still holds, for another replica to deliver at once."""
        return self._queue.release(set(self._untried))

    def deliver_due(self, limit: int = 50) -> int:
        """Send what is due now; returns how many rows were delivered."""
        with self._lock:  # one delivery loop per process; replicas are kept apart by the row claims
            if self._draining.is_set():
                return 0
            now = self._clock.now()
            blocked = self._pacing.blocked_methods(now)
            claimed = claim(
                self._queue,
                limit,
                held_kinds=[kind for kind, method in METHODS.items() if method in blocked],
                full_channels=sorted(self._pacing.full_channels(now)),
                admit=lambda row, channel: self._pacing.admit(method_of(row), channel, self._clock.now()),
            )
            sent = 0
            self._untried = {row.id or 0 for row in claimed}
            for row in claimed:
                self._untried.discard(row.id or 0)
                if self._draining.is_set():
                    self._queue.unclaim(row)  # shutting down: another replica sends it
                    continue
                if self._pacing.held(method_of(row), self._queue.post_channel(row), self._clock.now()):
                    self._queue.unclaim(row)  # a 429 or an outage earlier in this batch: wait with the rest
                    continue
                if not self._queue.renew(row):
                    continue  # the batch took long enough for another process to take this row
                sent += self._deliver(row)
            return sent

    def deliver_while_due(self, rounds: int = 20) -> int:
        """`deliver_due` again while a round sent something: a message held back behind an earlier one of
        its incident (an escalation behind its Level 1 report) goes out in the same tick, not the next."""
        total = 0
        for _ in range(rounds):
            sent = self.deliver_due()
            total += sent
            if not sent:
                break
        return total

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
        except Exception as exc:  # every exception gets the error policy's verdict: see failures.py
            self._outcomes.failed(row, exc, started)
            return 0
        self._pacing.recovered(method_of(row))
        self._queue.finish(row, "sent", channel=channel, ts=ts, error=None)
        self._metrics.slack_messages.labels(kind=row.kind).inc()
        return 1
