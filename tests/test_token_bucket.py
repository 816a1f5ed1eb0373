"""The one token bucket the outbox's pacing and the webhooks' rate limits share."""

from __future__ import annotations

import pytest

from bot.core.token_bucket import TokenBucket


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("rate", "burst", "calls", "waits"),
    [
        (1.0, 3, 4, [0.0, 0.0, 0.0, 1.0]),  # a burst, then a second for the next token
        (2.0, 1, 3, [0.0, 0.5, 0.5]),  # a refused call spends nothing
        (50 / 60, 5, 6, [0.0] * 5 + [1.2]),  # Slack's Tier 3: about 50 a minute in bursts of 5
    ],
)
def test_a_bucket_lets_a_burst_through_then_says_how_long_to_wait(
    rate: float, burst: int, calls: int, waits: list[float]
) -> None:
    bucket = TokenBucket(rate, burst, Ticker())
    assert [round(bucket.wait("k"), 6) for _ in range(calls)] == waits


def test_a_bucket_refills_at_its_rate_up_to_its_burst_and_keeps_keys_apart() -> None:
    ticker = Ticker()
    bucket = TokenBucket(1.0, 2, ticker)
    assert [bucket.take("a"), bucket.take("a"), bucket.take("a")] == [True, True, False]
    assert bucket.empty() == {"a"}
    assert bucket.take("b")  # another key has its own tokens
    ticker.now += 10.0  # refilled, but never above the burst
    assert [bucket.take("a"), bucket.take("a"), bucket.take("a")] == [True, True, False]
    ticker.now += 0.5
    assert bucket.wait("a") == pytest.approx(0.5)
