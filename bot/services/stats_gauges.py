"""The protocol's rates as Prometheus gauges: `escalation_rate_resolved_l1`, `escalation_rate_resolved_l2`
and `escalation_rate_reached_l4` (0..1) for `window` 7d, 30d and 90d, with `escalation_target{rate=…}`
beside them. Read when /metrics is scraped, at most once a minute: three aggregate queries
(bot.services.stats.period_counts), whatever the number of scrapers or replicas."""

from __future__ import annotations

import math
import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine

from bot.core.clock import Clock
from bot.core.targets import TARGETS
from bot.metrics import Metrics
from bot.services.stats import PERIODS, period_counts

REFRESH_EVERY = timedelta(seconds=60)


class RateGauges:
    """Sets the rate gauges from the database, at most once every `every`; the targets once, at creation."""

    def __init__(
        self, engine: Engine, clock: Clock, metrics: Metrics, every: timedelta = REFRESH_EVERY
    ) -> None:
        self.engine, self.clock, self.every = engine, clock, every
        self.gauges = {
            "resolved_l1": metrics.rate_resolved_l1,
            "resolved_l2": metrics.rate_resolved_l2,
            "reached_l4": metrics.rate_reached_l4,
        }
        self._lock = threading.Lock()
        self._read_at: datetime | None = None
        for target in TARGETS:
            metrics.target.labels(rate=target.part).set(target.percent / 100)

    def refresh(self) -> bool:
        """Read the rates again unless they were read less than `every` ago; whether they were read."""
        now = self.clock.now()
        with self._lock:  # two scrapes at once read once
            if self._read_at is not None and now - self._read_at < self.every:
                return False
            for window, length in PERIODS.items():
                counts = period_counts(self.engine, now - length, now)
                for target in TARGETS:
                    self.gauges[target.part].labels(window=window).set(_or_nan(target.fraction(counts)))
            self._read_at = now
            return True


def _or_nan(value: float | None) -> float:
    """A gauge's value: NaN when there is nothing to measure (Prometheus's way of saying so)."""
    return math.nan if value is None else value
