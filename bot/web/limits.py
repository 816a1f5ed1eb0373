"""Each alert source's rate limit: a token bucket per source, one token per request; over the limit,
a 429 with Retry-After before the body is read."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from starlette.responses import JSONResponse, Response

from bot.core.token_bucket import TokenBucket
from bot.services.container import Services


class RateLimiter:
    """The limits of app.yaml's `intake.rate_limits`, by source; a source without one is not limited."""

    def __init__(self, limits: Mapping[str, Any], monotonic: Callable[[], float] = time.monotonic) -> None:
        self._buckets = {
            k: TokenBucket(float(v.per_second), float(v.burst), monotonic) for k, v in limits.items()
        }

    def retry_after(self, source: str) -> int | None:
        """Take a token for `source`: None when the request may go on, else whole seconds to wait (≥ 1)."""
        bucket = self._buckets.get(source)
        if bucket is None:
            return None
        wait = bucket.wait(source)
        return None if wait == 0.0 else max(1, math.ceil(wait))


def refuse_if_limited(services: Services, limiter: RateLimiter, source: str) -> Response | None:
    """The 429 for a source over its rate limit; None when it may go on."""
    wait = limiter.retry_after(source)
    if wait is None:
        return None
    services.metrics.alerts_rejected.labels(source=source, reason="rate_limited").inc()
    limit = services.config.intake.rate_limits[source]  # type: ignore[index]
    return JSONResponse(
        {
            "error": f"rate limited: {source} may send {limit.per_second:g} requests/s "
            f"(burst {limit.burst}); retry after {wait} s",
            "retry_after": wait,
        },
        status_code=429,
        headers={"Retry-After": str(wait)},
    )
