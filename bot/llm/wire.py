"""What happens to each HTTP attempt the SDK makes for one request: it gets only the time left before the
request's deadline, it is counted by status, and a retry that could not finish in time is not waited for.

The SDK retries 408, 409, 429 and 5xx (529 overloaded included) and honours `retry-after`, however long;
this guard gives up at once when the wait it asks for runs past the deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anthropic import APIConnectionError, APIRequest, APIResponse, APITimeoutError, Middleware

from bot.metrics import Metrics

RETRIED = frozenset({408, 409, 429}) | frozenset(range(500, 600))


class OutOfTime(Exception):
    """The request's deadline came before an attempt could start or a retry could be waited for."""


def retry_after(headers: Any) -> float | None:
    """The wait a response asks for, in seconds (`retry-after-ms` first, as the SDK reads it)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) * scale
        except ValueError:
            return None  # an HTTP date: left to the SDK
    return None


class AttemptGuard(Middleware):
    def __init__(
        self, deadline: float, max_retries: int, metrics: Metrics, monotonic: Callable[[], float]
    ) -> None:
        self._deadline = deadline
        self._max_retries = max_retries
        self._metrics = metrics
        self._monotonic = monotonic

    def handle(self, request: APIRequest, call_next: Callable[[APIRequest], APIResponse[Any]]) -> Any:
        left = self._deadline - self._monotonic()
        if left <= 0:
            raise OutOfTime(f"no time left for attempt {request.retries_taken + 1}")
        timeout = request.timeout
        if isinstance(timeout, int | float) and timeout > left:
            request = request.copy(timeout=left)
        try:
            response = call_next(request)
        except APIConnectionError as exc:
            self._count("timeout" if isinstance(exc, APITimeoutError) else "connection")
            raise
        self._count(str(response.status_code))
        retried = response.status_code in RETRIED and response.headers.get("x-should-retry") != "false"
        if retried and request.retries_taken < self._max_retries:
            wait = retry_after(response.headers)
            if wait is not None and wait >= self._deadline - self._monotonic():
                raise OutOfTime(f"the API asked to retry after {wait:g}s, past the request's deadline")
        return response

    def _count(self, status: str) -> None:
        self._metrics.llm_api_attempts.labels(status=status).inc()
