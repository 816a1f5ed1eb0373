"""The outbox rows: added in the caller's transaction, claimed in order per incident by one process at a
time (SKIP LOCKED on PostgreSQL), renewed just before a send, and put back, retried or finished by the
process that holds them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, not_, or_, update
from sqlmodel import Session, col, select

from bot.core.clock import Clock
from bot.store.db import is_postgres, session_scope
from bot.store.tables import OutboxMessage

ACTIVE = ("pending", "sending")
INTERRUPTED = "interrupted mid-send by a restart; not sent again (it may have been shown)"
STALE_SEND_S = 600.0  # how far back to look for a post whose last attempt time is unknown
# Whether a claimed row may go now (it spends a token): the row, and the channel it posts to.
Admit = Callable[[OutboxMessage, str | None], bool]


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


@dataclass(frozen=True)
class Target:
    """Where a row goes: its channel, the thread it replies in, the message it changes."""

    channel: str | None
    thread_ts: str | None
    target_ts: str | None


class OutboxQueue:
    """The rows as one process sees them: it claims them under its own owner id for `lease`."""

    def __init__(self, engine: Engine, clock: Clock, lease: timedelta) -> None:
        self._engine, self._clock = engine, clock
        self._lease = lease  # a row claimed by a process that died is taken up again after this
        self.owner = uuid.uuid4().hex[:12]

    def claim(
        self, limit: int, *, held_kinds: list[str], full_channels: list[str], admit: Admit
    ) -> list[OutboxMessage]:
        """Due rows, oldest first: only an incident's oldest undelivered row, only after the row it replies
        to or rewrites, and only what `admit` lets go now."""
        now = self._clock.now()
        with session_scope(self._engine) as s:
            rows = list(s.exec(self._due(now, held_kinds, full_channels, max(limit * 4, 200))))
            first = _first_undelivered(s, {r.incident_id for r in rows if r.incident_id is not None})
            waiting = _undelivered(s, {ref for r in rows for ref in (r.thread_of, r.target_of) if ref})
            claimed: list[OutboxMessage] = []
            for row in rows:
                if len(claimed) >= limit:
                    break
                if row.incident_id is not None and first.get(row.incident_id) != row.id:
                    continue  # only the oldest undelivered row of an incident may go
                if row.thread_of in waiting or row.target_of in waiting:
                    continue  # a reply waits for its parent, an update for the message it rewrites
                if not admit(row, _post_channel(s, row) if row.kind == "post" else None):
                    continue
                if self._take(row, now):
                    claimed.append(row)
                s.add(row)
            return claimed

    def _due(self, now: datetime, held_kinds: list[str], full_channels: list[str], limit: int) -> Any:
        query = (
            select(OutboxMessage)
            .where(
                col(OutboxMessage.status).in_(ACTIVE),
                col(OutboxMessage.next_attempt_at) <= now,
                or_(
                    col(OutboxMessage.status) == "pending",
                    col(OutboxMessage.claimed_until).is_(None),
                    col(OutboxMessage.claimed_until) <= now,
                ),
                col(OutboxMessage.kind).not_in(held_kinds),
                # a paced channel must not hold back posts to other channels
                not_(and_(col(OutboxMessage.kind) == "post", col(OutboxMessage.channel).in_(full_channels))),
            )
            .order_by(col(OutboxMessage.id))
            .limit(limit)
        )
        return query.with_for_update(skip_locked=True) if is_postgres(self._engine) else query

    def _take(self, row: OutboxMessage, now: datetime) -> bool:
        """Claim one row (False when it is given up instead, as a modal or ephemeral cut off mid-send)."""
        wall = time.time()
        if row.status == "sending" and row.kind in ("ephemeral", "view"):
            # its process died sending it: Slack may have shown it, and neither can be looked up
            # (nor is a modal's trigger still valid), so it is not sent a second time
            row.status, row.error, row.claimed_by, row.claimed_until = "dead", INTERRUPTED, None, None
            return False
        if row.status == "sending" and row.kind == "post":
            # its last claim ran out mid-send (the process died, or hung): Slack may have it
            since = row.tried_at if row.tried_at is not None else wall - STALE_SEND_S
            row.unsure_since = min(row.unsure_since or since, since)
        row.tried_at = wall
        row.status, row.claimed_by = "sending", self.owner
        row.claimed_until = now + self._lease
        row.attempts += 1
        return True

    def post_channel(self, row: OutboxMessage) -> str | None:
        """The channel a post goes to: its own, or its parent's for a thread reply."""
        with Session(self._engine) as s:
            return _post_channel(s, row)

    def target(self, row: OutboxMessage) -> Target:
        """The row's channel, thread and target message, with the ts of the rows it depends on filled in."""
        channel, thread_ts, target_ts = row.channel, row.thread_ts, row.target_ts
        with Session(self._engine) as s:
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
        return self._set(row, *mine, claimed_until=self._clock.now() + self._lease) == 1

    def unclaim(self, row: OutboxMessage) -> None:
        """Put a claimed row back untried."""
        self._set(row, status="pending", attempts=row.attempts - 1, claimed_by=None, claimed_until=None)

    def retry(self, row: OutboxMessage, at: datetime, error: str, unsure_since: float | None) -> None:
        """Put a row back to be tried again at `at`."""
        values: dict[str, Any] = {"unsure_since": unsure_since} if unsure_since is not None else {}
        self._set(row, status="pending", next_attempt_at=at, error=error, **values, **_UNCLAIMED)

    def finish(
        self, row: OutboxMessage, status: str, *, channel: str | None, ts: str | None, error: str | None
    ) -> None:
        """Record a row sent (with where Slack put it) or given up (with why)."""
        now = self._clock.now()
        self._set(
            row, status=status, result_channel=channel, result_ts=ts, error=error, sent_at=now, **_UNCLAIMED
        )

    def _set(self, row: OutboxMessage, *where: Any, **values: Any) -> int:
        with session_scope(self._engine) as s:
            query = update(OutboxMessage).where(col(OutboxMessage.id) == row.id, *where).values(**values)
            changed: int = s.execute(query).rowcount  # type: ignore[attr-defined]
        return changed

    def pending(self) -> int:
        """How many rows are waiting to be delivered."""
        with Session(self._engine) as s:
            return int(s.exec(select(func.count()).where(col(OutboxMessage.status).in_(ACTIVE))).one())


_UNCLAIMED: dict[str, Any] = {"claimed_by": None, "claimed_until": None}


def _post_channel(s: Session, row: OutboxMessage) -> str | None:
    channel = row.channel
    if not channel and row.thread_of:
        parent = s.get(OutboxMessage, row.thread_of)
        channel = parent.channel or parent.result_channel if parent is not None else None
    return channel


def _first_undelivered(s: Session, incidents: set[int]) -> dict[int, int]:
    if not incidents:
        return {}
    query = (
        select(OutboxMessage.incident_id, func.min(OutboxMessage.id))
        .where(col(OutboxMessage.status).in_(ACTIVE), col(OutboxMessage.incident_id).in_(incidents))
        .group_by(col(OutboxMessage.incident_id))
    )
    return {int(incident or 0): int(first or 0) for incident, first in s.exec(query)}


def _undelivered(s: Session, ids: set[int]) -> set[int]:
    if not ids:
        return set()
    query = select(OutboxMessage.id).where(
        col(OutboxMessage.id).in_(ids), col(OutboxMessage.status).in_(ACTIVE)
    )
    return {int(i or 0) for i in s.exec(query)}
