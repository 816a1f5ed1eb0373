"""The daily token budget: tokens are counted per UTC day, and past the budget nothing more is sent.

Counted in this process only: a restart starts the day's count again, and each replica has its own.
"""

from __future__ import annotations

import threading
from datetime import date

from bot.core.clock import Clock


class DailyBudget:
    def __init__(self, tokens_per_day: int, clock: Clock) -> None:
        self._limit = tokens_per_day
        self._clock = clock
        self._day: date | None = None
        self._used = 0
        self._lock = threading.Lock()

    def _roll(self) -> None:
        today = self._clock.now().date()
        if today != self._day:
            self._day, self._used = today, 0

    def left(self) -> int:
        """Tokens still allowed today (0 when spent)."""
        with self._lock:
            self._roll()
            return max(0, self._limit - self._used)

    def spend(self, tokens: int) -> int:
        """Count `tokens` against today; returns the day's total so far."""
        with self._lock:
            self._roll()
            self._used += tokens
            return self._used
