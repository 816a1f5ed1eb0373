"""The outbox rows: added (or a waiting one rewritten) in the caller's transaction, and put back, renewed,
retried or finished by the process that claimed them (`claims.py`); where a row goes, with the ts of the
rows it depends on."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, func, update
from sqlmodel import Session, col, select

from bot.core.clock import Clock
from bot.store.db import session_scope
from bot.store.tables import OutboxMessage

ACTIVE = ("pending", "sending")
_UNCLAIMED: dict[str, Any] = {"claimed_by": None, "claimed_until": None}
# A send cut off by a shutdown is taken up this much later, so that the call already on its way has
# reached Slack (or been dropped) by the time the next process looks for it there.
CUT_OFF_SETTLE = timedelta(seconds=3)


def enqueue(
    session: Session,
    now: datetime,
    kind: str,
    *,
    incident_id: int | None = None,
    channel: str | None = None,
    thread_ts: str | None = None,
    thread_of: int | None = None,
    target_ts: str | None = None,
    target_of: int | None = None,
    **payload: Any,
) -> OutboxMessage:
    """Add a Slack write to the current transaction; it is delivered only if the transaction commits."""
    row = OutboxMessage(
        incident_id=incident_id,
        kind=kind,
        channel=channel,
        thread_ts=thread_ts,
        thread_of=thread_of,
        target_ts=target_ts,
        target_of=target_of,
        payload=payload,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def rewrite(session: Session, row_id: int, payload: dict[str, Any], due: datetime | None = None) -> bool:
    """Give a row nobody has claimed yet the newest `payload` (due no later than `due`, if given) instead of
    queuing another; False when it is being sent or was sent (a claim in flight read the old payload)."""
    values: dict[str, Any] = {"payload": payload}
    if due is not None:
        at = col(OutboxMessage.next_attempt_at)
        values["next_attempt_at"] = case((at > due, due), else_=at)  # never later than it was
    result = session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == row_id, col(OutboxMessage.status) == "pending")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


@dataclass(frozen=True)
class Target:
    """Where a row goes: its channel, the thread it replies in, the message it changes."""

    channel: str | None
    thread_ts: str | None
    target_ts: str | None


def post_channel(s: Session, row: OutboxMessage) -> str | None:
    """The channel a post goes to: its own, or its parent's for a thread reply (None for other kinds)."""
    if row.kind != "post":
        return None
    channel = row.channel
    if not channel and row.thread_of:
        parent = s.get(OutboxMessage, row.thread_of)
        channel = parent.channel or parent.result_channel if parent is not None else None
    return channel


class OutboxQueue:
    """The rows as one process sees them: it claims them under its own `owner` id for `lease`."""

    def __init__(self, engine: Engine, clock: Clock, lease: timedelta) -> None:
        self.engine, self.clock = engine, clock
        self.lease = lease  # a row claimed by a process that died is taken up again after this
        self.owner = uuid.uuid4().hex[:12]

    def post_channel(self, row: OutboxMessage) -> str | None:
        with Session(self.engine) as s:
            return post_channel(s, row)

    def target(self, row: OutboxMessage) -> Target:
        """The row's channel, thread and target message, with the ts of the rows it depends on filled in."""
        channel, thread_ts, target_ts = row.channel, row.thread_ts, row.target_ts
        with Session(self.engine) as s:
            if row.thread_of and not thread_ts:
                parent = s.get(OutboxMessage, row.thread_of)
                if parent is not None and parent.result_ts:
                    thread_ts, channel = parent.result_ts, parent.result_channel or channel
            if row.target_of and not target_ts:
                target = s.get(OutboxMessage, row.target_of)
                if target is not None and target.result_ts:
                    target_ts, channel = target.result_ts, target.result_channel or channel
        return Target(channel, thread_ts, target_ts)

    def renew(self, row: OutboxMessage) -> bool:
        """Extend this process's claim on a row just before sending it; False when it is no longer ours."""
        mine = col(OutboxMessage.claimed_by) == self.owner, col(OutboxMessage.status) == "sending"
        return self._set(row, *mine, claimed_until=self.clock.now() + self.lease) == 1

    def unclaim(self, row: OutboxMessage) -> None:
        """Put a claimed row back untried."""
        self._set(row, status="pending", attempts=row.attempts - 1, **_UNCLAIMED)

    def release(self, untried: Collection[int]) -> int:
        """Give back every row this process holds (at shutdown); how many. One never tried goes back as if
        it had not been claimed. One whose send was cut off stays "sending", unclaimed, so whoever takes it
        looks for it in Slack before posting it again (a modal or an ephemeral, which cannot be looked up,
        is given up then, as after a crash)."""
        mine = (col(OutboxMessage.claimed_by) == self.owner, col(OutboxMessage.status) == "sending")
        released = 0
        with session_scope(self.engine) as s:
            if untried:
                back = update(OutboxMessage).where(*mine, col(OutboxMessage.id).in_(sorted(untried)))
                values = {"status": "pending", "attempts": col(OutboxMessage.attempts) - 1, **_UNCLAIMED}
                released += int(s.execute(back.values(**values)).rowcount)  # type: ignore[attr-defined]
            later = self.clock.now() + CUT_OFF_SETTLE
            cut_off = update(OutboxMessage).where(*mine).values(claimed_by=None, claimed_until=later)
            released += int(s.execute(cut_off).rowcount)  # type: ignore[attr-defined]
        return released

    def retry(self, row: OutboxMessage, at: datetime, error: str, unsure_since: float | None) -> None:
        """Put a row back to be tried again at `at`."""
        values: dict[str, Any] = {"unsure_since": unsure_since} if unsure_since is not None else {}
        self._set(row, status="pending", next_attempt_at=at, error=error, **values, **_UNCLAIMED)

    def finish(
        self, row: OutboxMessage, status: str, *, channel: str | None, ts: str | None, error: str | None
    ) -> None:
        """Record a row sent (with where Slack put it) or given up (with why)."""
        now = self.clock.now()
        self._set(
            row, status=status, result_channel=channel, result_ts=ts, error=error, sent_at=now, **_UNCLAIMED
        )

    def _set(self, row: OutboxMessage, *where: Any, **values: Any) -> int:
        with session_scope(self.engine) as s:
            query = update(OutboxMessage).where(col(OutboxMessage.id) == row.id, *where).values(**values)
            changed: int = s.execute(query).rowcount  # type: ignore[attr-defined]
        return changed

    def pending(self) -> int:
        """How many rows are waiting to be delivered."""
        with Session(self.engine) as s:
            return int(s.exec(select(func.count()).where(col(OutboxMessage.status).in_(ACTIVE))).one())
