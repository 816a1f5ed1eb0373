"""Slack's budgets as the outbox keeps them: posts paced per channel (Slack's "special" tier, about one
a second), the tiered methods per workspace; and holds: a channel or a method Slack said to wait for (a
429's Retry-After), and a method during an outage, probed by one call at a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.core.token_bucket import TokenBucket

POST = "chat.postMessage"  # paced per channel instead of per workspace
MAX_HOLD_S = 30.0  # the longest an outage holds a method between two probes
# Above config's ceiling for runtime.slack_rate_per_channel: the composition root turned pacing off.
UNPACED_RATE = 100.0


@dataclass(frozen=True)
class Tier:
    """A per-workspace budget for one Web API method: `per_minute` with bursts of `burst`."""

    per_minute: float
    burst: int


TIER_3 = Tier(50.0, 5)
TIER_4 = Tier(100.0, 10)
TIERS: dict[str, Tier] = {
    "chat.update": TIER_3,
    "reactions.add": TIER_3,
    "chat.postEphemeral": TIER_4,
    "views.open": TIER_4,
    "views.publish": TIER_4,
}


class Pacing:
    """The token buckets and holds of one process."""

    def __init__(
        self,
        rate_per_channel: float,
        burst: int,
        tiers: Mapping[str, Tier] | None = None,
        ticker: Callable[[], float] = time.monotonic,
    ) -> None:
        self._channels = TokenBucket(rate_per_channel, burst, ticker)
        if tiers is None:
            tiers = TIERS if rate_per_channel <= UNPACED_RATE else {}
        self._methods = {m: TokenBucket(t.per_minute / 60.0, t.burst, ticker) for m, t in tiers.items()}
        self._holds: dict[str, datetime] = {}  # method → no calls before (429 Retry-After, outage backoff)
        self._channel_holds: dict[str, datetime] = {}  # channel → no posts before (a post's 429)
        self._failures: dict[str, int] = {}  # method → consecutive 5xx / connection failures
        self._lock = threading.Lock()

    def blocked_methods(self, now: datetime) -> set[str]:
        """Methods not to call now: held, or out of tokens."""
        spent = {method for method, bucket in self._methods.items() if bucket.empty()}
        return spent | {method for method, until in self._holds.items() if until > now}

    def full_channels(self, now: datetime) -> set[str]:
        """Channels not to post to now: out of tokens, or held."""
        return self._channels.empty() | self.held_channels(now)

    def held(self, method: str, channel: str | None, now: datetime) -> bool:
        """Whether a 429 or an outage says to wait before calling `method` (for a post: to `channel`)."""
        if self._holds.get(method, now) > now:
            return True
        return method == POST and channel is not None and channel in self.held_channels(now)

    def held_channels(self, now: datetime) -> set[str]:
        with self._lock:
            return {channel for channel, until in self._channel_holds.items() if until > now}

    def admit(self, method: str, channel: str | None, now: datetime) -> bool:
        """Spend a token for one call: the channel's for a post, the method's for the tiered methods."""
        if method == POST:
            if channel and channel in self.held_channels(now):
                return False  # Slack said to wait (429) for this channel
            return not channel or self._channels.take(channel)
        bucket = self._methods.get(method)
        return bucket is None or bucket.take()

    def rate_limited(self, method: str, channels: Iterable[str | None], until: datetime) -> None:
        """A 429: a tier's budget is per workspace, so the method waits; a post's is about its channel."""
        if method in TIERS:
            self._holds[method] = until
        elif method == POST:
            with self._lock:
                for name in filter(None, channels):
                    self._channel_holds[name] = max(until, self._channel_holds.get(name, until))

    def outage(self, method: str, now: datetime) -> None:
        """A 5xx or a lost connection: hold the method, longer after each failure in a row."""
        failures = self._failures.get(method, 0) + 1
        self._failures[method] = failures
        self._holds[method] = now + timedelta(seconds=min(MAX_HOLD_S, 0.5 * 2 ** (failures - 1)))

    def recovered(self, method: str) -> None:
        self._failures.pop(method, None)
