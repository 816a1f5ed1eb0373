"""Faults the workspace can be told to inject: 429s with Retry-After, 5xx outages, `ok:false` errors,
latency, requests held until released, answers dropped after the call was applied, and Slack's
per-channel posting limit.

A fault's `method` may be "*" for every method; posts to a response_url are the method "response_url".
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Fault:
    status: int
    error: str
    retry_after: int | None
    count: int = 1
    until: float | None = None  # a time window instead of a count


def _status_error(status: int) -> str:
    return "ratelimited" if status == 429 else "internal_error"


class SlackFaults:
    """The faults in force, behind the workspace lock; the Web API surface takes them call by call."""

    def __init__(
        self, lock: threading.Condition, clock: Callable[[], float], strict_rate_limit: bool = False
    ) -> None:
        self._lock = lock
        self._clock = clock
        self._strict_rate_limit = strict_rate_limit
        self._faults: dict[str, list[Fault]] = {}
        self._errors: dict[str, list[str]] = {}
        self._drops: dict[str, int] = {}
        self._latency: dict[str, float] = {}
        self._holds: dict[str, threading.Event] = {}
        self._last_post: dict[str, float] = {}

    # ---- what a test asks for ------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = 2,
        error: str | None = None,
        count: int = 1,
    ) -> None:
        """Answer the next `count` calls with `status` (429 → ratelimited, else internal_error)."""
        with self._lock:
            fault = Fault(status, error or _status_error(status), retry_after, count)
            self._faults.setdefault(method, []).append(fault)

    def fail_for(self, method: str, seconds: float, status: int, retry_after: int | None = None) -> None:
        """Answer every call to `method` with `status` for the next `seconds`."""
        with self._lock:
            until = self._clock() + seconds
            retry = retry_after if retry_after is not None or status != 429 else max(1, round(seconds))
            fault = Fault(status, _status_error(status), retry, count=0, until=until)
            self._faults.setdefault(method, []).append(fault)

    def error_next(self, method: str, error: str, count: int = 1) -> None:
        """Answer the next `count` calls with HTTP 200 `{"ok": false, "error": error}`."""
        with self._lock:
            self._errors.setdefault(method, []).extend([error] * count)

    def latency(self, method: str, seconds: float) -> None:
        """Delay every later call to `method` by `seconds` (0 removes the delay)."""
        with self._lock:
            self._latency[method] = seconds

    def hold(self, method: str) -> None:
        """Block calls to `method` (after recording them as received) until `release(method)`."""
        with self._lock:
            self._holds.setdefault(method, threading.Event())

    def release(self, method: str) -> None:
        """Let the calls held for `method` proceed, and stop holding new ones."""
        with self._lock:
            event = self._holds.pop(method, None)
        if event is not None:
            event.set()

    def drop_after_send(self, method: str, count: int = 1) -> None:
        """Apply the next `count` calls but close the connection without answering."""
        with self._lock:
            self._drops[method] = self._drops.get(method, 0) + count

    def clear_faults(self) -> None:
        """Remove every injected fault, error, latency, drop and hold."""
        with self._lock:
            self._faults.clear()
            self._errors.clear()
            self._latency.clear()
            self._drops.clear()
        self.release_all()

    def release_all(self) -> None:
        """Let every held call proceed and hold no more."""
        with self._lock:
            held, self._holds = self._holds, {}
        for event in held.values():
            event.set()

    # ---- what a call meets (the caller holds the lock) -----------------------------------------------

    def held(self, method: str) -> threading.Event | None:
        """The event a call to `method` must wait for, if it is held."""
        return self._holds.get(method) or self._holds.get("*")

    def delay(self, method: str) -> float:
        return self._latency.get(method, self._latency.get("*", 0.0))

    def take_fault(self, method: str) -> Fault | None:
        """The HTTP failure this call gets, if any, spending one of a counted fault."""
        now = self._clock()
        for key in (method, "*"):
            queue = self._faults.get(key, [])
            queue[:] = [f for f in queue if (f.until is None and f.count > 0) or (f.until or 0) > now]
            if queue:
                fault = queue[0]
                if fault.until is None:
                    fault.count -= 1
                return fault
        return None

    def take_error(self, method: str) -> str | None:
        """The `ok:false` error this call gets, if any."""
        for key in (method, "*"):
            if self._errors.get(key):
                return self._errors[key].pop(0)
        return None

    def take_drop(self, method: str) -> bool:
        """Whether this call's answer is dropped."""
        for key in (method, "*"):
            if self._drops.get(key, 0) > 0:
                self._drops[key] -= 1
                return True
        return False

    def rate_limited(self, method: str, channel_id: Callable[[], str]) -> bool:
        """Strict mode: Slack's ~1 message per second per channel for chat.postMessage."""
        if not self._strict_rate_limit or method != "chat.postMessage":
            return False
        channel = channel_id()
        now = self._clock()
        if now - self._last_post.get(channel, float("-inf")) < 1.0:
            return True
        self._last_post[channel] = now
        return False
