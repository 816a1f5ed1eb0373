"""What becomes of a row whose send failed, by the error policy's verdict (`failures.py`): retried after
a rate limit or an outage with its channel or method held, retried a few times after another Slack
error, given up on a final one, failed loudly on an error in the bot; the admin channel is told."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.core.clock import Clock
from bot.integrations.slack.channels import ChannelDirectory
from bot.integrations.slack.outbox.failures import MAX_AGE, MAX_ATTEMPTS, Failure, Verdict, backoff, classify
from bot.integrations.slack.outbox.pacing import Pacing
from bot.integrations.slack.outbox.queue import OutboxQueue, enqueue
from bot.integrations.slack.outbox.sender import method_of
from bot.metrics import Metrics
from bot.store.db import session_scope
from bot.store.tables import OutboxMessage

log = logging.getLogger(__name__)


class Outcomes:
    def __init__(
        self,
        queue: OutboxQueue,
        pacing: Pacing,
        channels: ChannelDirectory,
        metrics: Metrics,
        admin_channel: str | None,
    ) -> None:
        self._queue, self._pacing, self._channels = queue, pacing, channels
        self._clock: Clock = queue.clock
        self._metrics, self._admin = metrics, admin_channel
        self._by_verdict: dict[Verdict, Callable[[OutboxMessage, Failure, Exception, float], None]] = {
            Verdict.RATE_LIMITED: self._rate_limited,
            Verdict.OUTAGE: self._outage,
            Verdict.REFUSED: self._refused,
            Verdict.FINAL: lambda row, failure, _exc, _started: self._give_up(row, failure.error),
            Verdict.SKIPPED: lambda row, failure, _exc, _started: self._dead(row, failure.error),
            Verdict.BUG: self._bug,
        }

    def failed(self, row: OutboxMessage, exc: Exception, started: float) -> None:
        """Apply the verdict on `exc`, raised by a send that started at wall time `started`."""
        failure = classify(exc, row.kind)
        self._by_verdict[failure.verdict](row, failure, exc, started)

    def _rate_limited(self, row: OutboxMessage, failure: Failure, _exc: Exception, _started: float) -> None:
        until = self._clock.now() + timedelta(seconds=failure.retry_after)
        self._metrics.slack_retries.labels(reason=failure.reason).inc()
        channel = self._queue.post_channel(row)
        names = {channel, self._channels.resolve(channel)} if channel else set()  # by its name and by its id
        self._pacing.rate_limited(method_of(row), names, until)
        self._retry(row, until, failure.error)

    def _outage(self, row: OutboxMessage, failure: Failure, _exc: Exception, started: float) -> None:
        """Back off this row, and the whole method so an outage is probed by one call at a time instead of
        by every waiting row; a post may have reached Slack, so it is looked up before it is sent again."""
        now = self._clock.now()
        self._metrics.slack_retries.labels(reason=failure.reason).inc()
        self._pacing.outage(method_of(row), now)
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
        self._dead(row, f"error in the bot: {failure.error}")
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
        self._dead(row, error)
        if row.kind in ("post", "update"):
            self._notify(
                row,
                f":warning: Could not deliver a {row.kind} for INC-{row.incident_id} to "
                f"{row.channel}: {error}. Invite the bot to the channel or fix app.yaml.",
            )

    def _dead(self, row: OutboxMessage, error: str) -> None:
        self._queue.finish(row, "dead", channel=None, ts=None, error=error)

    def _notify(self, row: OutboxMessage, text: str) -> None:
        """Tell the admin channel, through the outbox; never about a row addressed to it, so a notice that
        fails cannot beget another."""
        if self._admin and row.channel != self._admin:
            with session_scope(self._queue.engine) as s:
                enqueue(s, self._clock.now(), "post", channel=self._admin, text=text)
