"""The daily token budget: tokens are counted per UTC day, and past the budget nothing more is sent.

This process counts what it spends as it goes (every step of a request). Given `recorded`, the tokens
every process recorded since the start of the UTC day (the `llm_usage` table), the day's use is the
larger of the two: replicas on one database share one budget, and a restart does not start the day
again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time

from bot.core.clock import Clock

Recorded = Callable[[datetime], int]  # tokens recorded since the given time, by every process


class DailyBudget:
    def __init__(self, tokens_per_day: int, clock: Clock, recorded: Recorded | None = None) -> None:
        self._limit = tokens_per_day
        self._clock = clock
        self._recorded = recorded
        self._day: date | None = None
        self._used = 0
        self._lock = threading.Lock()

    def _roll(self) -> None:
        today = self._clock.now().astimezone(UTC).date()
        if today != self._day:
            self._day, self._used = today, 0

    def _day_start(self) -> datetime:
        assert self._day is not None
        return datetime.combine(self._day, time.min, tzinfo=UTC)

    def used(self) -> int:
        """Tokens counted against today so far."""
        with self._lock:
            self._roll()
            own = self._used
            start = self._day_start()
        return max(own, self._recorded(start)) if self._recorded is not None else own

    def left(self) -> int:
        """Tokens still allowed today (0 when spent)."""
        return max(0, self._limit - self.used())

    def spend(self, tokens: int) -> int:
        """Count `tokens` against today; returns this process's total for the day so far."""
        with self._lock:
            self._roll()
            self._used += tokens
            return self._used
