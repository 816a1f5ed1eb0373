"""Shutting down without losing or doubling work.

On SIGTERM a process stops taking work (`Draining`, which every background job checks), lets the work in
hand finish for a while, then gives back every claim it still holds (its timers here, its outbox rows and
Slack requests in their own modules), so another replica takes that work up at once instead of after the
claim's lease runs out. Giving a claim back does early what the lease running out would do: work cut off
halfway is done again by whoever takes it, which every kind of claimed work allows (a timer checks what
already happened, a remediation that was being applied is never applied again, a post that may have
reached Slack is looked up before it is sent again). The process exits right after giving its claims back,
so nothing it abandoned can still commit."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from sqlalchemy import Engine, case, update
from sqlmodel import col

from bot.store.db import session_scope
from bot.store.tables import Timer

# A timer cut off mid-run is taken up this much later, so that a call it had on its way (a chart uploaded
# to Slack, say) has landed, or been dropped, by the time the next process checks what already happened.
CUT_OFF_SETTLE = timedelta(seconds=3)


class Draining:
    """Set once the process shuts down; counts the background jobs still running."""

    def __init__(self) -> None:
        self._flag = threading.Event()
        self._idle = threading.Condition()
        self._running = 0

    def set(self) -> None:
        self._flag.set()

    def is_set(self) -> bool:
        return self._flag.is_set()

    def job(self, work: Callable[[], object]) -> Callable[[], None]:
        """`work` as a background job: skipped once draining, counted while it runs."""

        def run() -> None:
            if self._flag.is_set():
                return
            with self._idle:
                self._running += 1
            try:
                work()
            finally:
                with self._idle:
                    self._running -= 1
                    self._idle.notify_all()

        return run

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job runs, for at most `timeout` seconds; whether none does."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, max(0.0, timeout))


def release_timers(
    engine: Engine, owner: str, untried: Collection[int], everything: bool, now: datetime
) -> int:
    """Give back timers `owner` holds: the `untried` ones (never started) as if they had not been claimed,
    and with `everything` the rest too (cut off while running: pending again, the attempt counted, due no
    sooner than CUT_OFF_SETTLE from `now`)."""
    held = (col(Timer.claimed_by) == owner, col(Timer.status) == "running")
    back = {"status": "pending", "claimed_by": None, "claimed_until": None}
    released = 0
    with session_scope(engine) as s:
        if untried:
            statement = (
                update(Timer)
                .where(*held, col(Timer.id).in_(sorted(untried)))
                .values(attempts=col(Timer.attempts) - 1, **back)
            )
            released += int(s.execute(statement).rowcount)  # type: ignore[attr-defined]
        if everything:
            settled = now + CUT_OFF_SETTLE
            later = case((col(Timer.due_at) < settled, settled), else_=col(Timer.due_at))
            everyone = update(Timer).where(*held).values(due_at=later, **back)
            released += int(s.execute(everyone).rowcount)  # type: ignore[attr-defined]
    return released
