"""Claiming due outbox rows for one process: answers to a person first, then oldest first, only an
incident's oldest undelivered row, a reply after its parent and an update after the message it rewrites,
and only what the pacing admits.
SKIP LOCKED on PostgreSQL keeps replicas apart; a claim runs out after the queue's lease."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, not_, or_
from sqlmodel import Session, col, select

from bot.integrations.slack.outbox.queue import ACTIVE, OutboxQueue, post_channel
from bot.store.db import is_postgres, session_scope
from bot.store.tables import OutboxMessage

INTERRUPTED = "interrupted mid-send by a restart; not sent again (it may have been shown)"
PERSONAL = ("ephemeral", "view", "home")  # shown to the one person who acted or looks, who waits for it
STALE_SEND_S = 600.0  # how far back to look for a post whose last attempt time is unknown
# Whether a row may go now (it spends a token): the row, and the channel it posts to (None but for posts).
Admit = Callable[[OutboxMessage, str | None], bool]


def claim(
    queue: OutboxQueue, limit: int, *, held_kinds: list[str], full_channels: list[str], admit: Admit
) -> list[OutboxMessage]:
    """Up to `limit` due rows, claimed for this process."""
    now = queue.clock.now()
    with session_scope(queue.engine) as s:
        rows = list(s.exec(_due(queue, now, held_kinds, full_channels, max(limit * 4, 200))))
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
            if not admit(row, post_channel(s, row)):
                continue
            if _take(queue, row, now):
                claimed.append(row)
            s.add(row)
        return claimed


def _due(
    queue: OutboxQueue, now: datetime, held_kinds: list[str], full_channels: list[str], limit: int
) -> Any:
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
        # a person waiting on an answer goes before the channel backlog (a modal's trigger lasts 3 s)
        .order_by(case((col(OutboxMessage.kind).in_(PERSONAL), 0), else_=1), col(OutboxMessage.id))
        .limit(limit)
    )
    return query.with_for_update(skip_locked=True) if is_postgres(queue.engine) else query


def _take(queue: OutboxQueue, row: OutboxMessage, now: datetime) -> bool:
    """Claim one row (False when it is given up instead: a modal or an ephemeral cut off mid-send)."""
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
    row.status, row.claimed_by = "sending", queue.owner
    row.claimed_until = now + queue.lease
    row.attempts += 1
    return True


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
