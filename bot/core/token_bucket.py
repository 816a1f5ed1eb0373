"""The token bucket both rate limits use: Slack's budgets kept by the outbox, and each alert source's
budget kept by the web layer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """One bucket per key: `rate` tokens a second, holding at most `burst`; a call spends one token."""

    def __init__(self, rate: float, burst: float, ticker: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst = float(rate), float(burst)
        self._ticker = ticker
        self._tokens: dict[str, tuple[float, float]] = {}  # key → (tokens, when they were counted)
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, last = self._tokens.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def wait(self, key: str = "") -> float:
        """Spend a token for `key`: 0 when there was one, else the seconds until there is one."""
        with self._lock:
            now = self._ticker()
            tokens = self._level(key, now)
            if tokens >= 1.0:
                self._tokens[key] = (tokens - 1.0, now)
                return 0.0
            self._tokens[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def take(self, key: str = "") -> bool:
        """Spend a token for `key` if there is one."""
        return self.wait(key) == 0.0

    def empty(self) -> set[str]:
        """The keys that have no token right now."""
        with self._lock:
            now = self._ticker()
            return {key for key in self._tokens if self._level(key, now) < 1.0}
