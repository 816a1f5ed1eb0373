"""Work someone is waiting on goes first: while a webhook is being stored for its sender, background work
(applying stored deliveries, starting Level 1 runs) steps aside for a moment.

One Python process has one interpreter lock: a background thread applying a delivery takes CPU time from
the request whose sender waits for its answer. The background waits at most `at_most` each time it steps
aside, so a steady stream of requests slows it down but never stops it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

QUIET_S = 0.05  # no sender waited for this long: the burst is over


class Foreground:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._serving = 0
        self._quiet_since = 0.0  # when the last sender got its answer (monotonic)

    @contextmanager
    def serving(self) -> Iterator[None]:
        """While inside, someone waits for an answer."""
        with self._cond:
            self._serving += 1
        try:
            yield
        finally:
            with self._cond:
                self._serving -= 1
                if not self._serving:
                    self._quiet_since = time.monotonic()
                    self._cond.notify_all()

    def step_aside(self, at_most: float) -> bool:
        """Wait until no sender has waited for QUIET_S (the gaps between the requests of a burst do not
        count), or `at_most` seconds; whether it is quiet now."""
        deadline = time.monotonic() + at_most
        with self._cond:
            while True:
                now = time.monotonic()
                if not self._serving and now - self._quiet_since >= QUIET_S:
                    return True
                if now >= deadline:
                    return False
                wake = deadline if self._serving else min(deadline, self._quiet_since + QUIET_S)
                self._cond.wait(wake - now)
