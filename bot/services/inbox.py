"""The Slack inbox: every event, command, click and form is stored before it is acknowledged.

A request whose key was seen before (Slack's retry of an event, or a replay of a signed request inside
Slack's five-minute window) is dropped. A request stored but never marked done (the process died between
the ack and the work) is handed to the listeners again after a restart. Bodies are redacted before they
are stored (by the Slack middleware, handlers.inbox)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, func, insert, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, col, select

from bot.core.clock import Clock
from bot.store.db import is_postgres, one_write, session_scope
from bot.store.tables import InboundRequest

log = logging.getLogger(__name__)

_TABLE = InboundRequest.__table__  # type: ignore[attr-defined]
_INSERT = insert(_TABLE).returning(_TABLE.c.id)  # built once: statements are costly to build per request
_DONE = (
    update(_TABLE)
    .where(_TABLE.c.id.in_(bindparam("ids", expanding=True)))
    .values(done_at=bindparam("at"), claimed_until=None)
)
MAX_REPLAYS = 3  # a request that failed to finish three times is left alone (and logged)


def request_key(body: dict[str, Any], raw: str | None = None) -> tuple[str, str] | None:
    """(kind, key) of a Slack request worth storing, or None (url_verification, ssl_check, …).

    Events are keyed by Slack's event id (its retries carry the same one); commands, clicks and forms by
    their trigger id, which Slack mints once per invocation, so only a replay of the same request repeats it.
    """
    kind = str(body.get("type") or ("command" if body.get("command") else ""))
    if kind == "event_callback":
        event_id = body.get("event_id")
        return (kind, f"event:{event_id}") if isinstance(event_id, str) and event_id else None
    if kind in ("url_verification", "") and not body.get("command"):
        return None
    trigger = body.get("trigger_id")
    if isinstance(trigger, str) and trigger:
        return kind, f"trigger:{trigger}"[:255]
    source = raw if raw is not None else json.dumps(body, sort_keys=True, default=str)
    return kind, "body:" + hashlib.sha256(source.encode("utf-8", "replace")).hexdigest()


class Inbox:
    def __init__(self, engine: Engine, clock: Clock, lease: timedelta = timedelta(seconds=30)) -> None:
        self.engine = engine
        self.clock = clock
        self.lease = lease
        self._later: set[int] = set()  # handled, but the database could not be told yet
        self._open: set[int] = set()  # taken by this process (stored or replayed) and not handled yet
        self._lock = threading.Lock()

    def accept(self, kind: str, key: str, body: dict[str, Any]) -> int | None:
        """Store a request whose body the Slack middleware has cleaned and redacted (`scrub`); its id, or
        None when the same key was stored before (a retry or a replay).

        One INSERT on the request path, without the ORM. Database errors propagate: the caller tells Slack
        (and the person) to try again."""
        row = {
            "key": key[:255],
            "kind": kind[:32],
            "body": body,
            "received_at": self.clock.now(),
            "attempts": 0,
        }
        try:
            with one_write(self.engine) as conn:  # Slack waits on this write
                inbox_id = int(conn.execute(_INSERT, row).scalar_one())
        except IntegrityError:
            return None
        with self._lock:
            self._open.add(inbox_id)
        return inbox_id

    def done(self, inbox_id: int | None) -> None:
        """Mark a request handled (whatever its outcome): it is not handled again. Never raises: when the
        database cannot take the mark now, it is remembered and written before the next replay."""
        if not inbox_id:
            return
        with self._lock:
            self._later.add(inbox_id)
            self._open.discard(inbox_id)
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            ids = sorted(self._later)
        if not ids:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(_DONE, {"ids": ids, "at": self.clock.now()})
        except DBAPIError as exc:
            log.warning("could not mark Slack requests %s done yet: %s", ids, exc.orig)
            return
        with self._lock:
            self._later.difference_update(ids)

    def unfinished(self, older_than: timedelta, limit: int = 20) -> list[InboundRequest]:
        """Claim requests stored more than `older_than` ago and never marked done (their process died), and
        those a process gave back when it shut down."""
        self._flush()
        now = self.clock.now()
        with session_scope(self.engine) as s:
            query = (
                select(InboundRequest)
                .where(
                    col(InboundRequest.done_at).is_(None),
                    # a claim that ran out or was given back at shutdown, or a request never claimed
                    (col(InboundRequest.claimed_until).is_not(None))
                    | (col(InboundRequest.received_at) <= now - older_than),
                    col(InboundRequest.attempts) < MAX_REPLAYS,
                    (col(InboundRequest.claimed_until).is_(None)) | (col(InboundRequest.claimed_until) < now),
                )
                .order_by(col(InboundRequest.id))
                .limit(limit)
            )
            if is_postgres(self.engine):
                query = query.with_for_update(skip_locked=True)
            rows = list(s.exec(query))
            for row in rows:
                row.attempts += 1
                row.claimed_until = now + self.lease
                s.add(row)
                if row.attempts == MAX_REPLAYS:
                    log.error("Slack request %s (%s) is tried a last time", row.id, row.kind)
        with self._lock:
            self._open.update(row.id or 0 for row in rows)
        return rows

    def release(self) -> int:
        """Give back the requests this process took and has not handled (at shutdown): another replica
        handles them at once instead of after the lease; how many."""
        self._flush()
        with self._lock:
            ids = sorted(self._open - self._later)
        if not ids:
            return 0
        given_back = (
            update(_TABLE)
            .where(_TABLE.c.id.in_(ids), _TABLE.c.done_at.is_(None))
            .values(claimed_until=self.clock.now())  # a claim that has run out: taken at once
        )
        with self.engine.begin() as conn:
            return int(conn.execute(given_back).rowcount)

    def pending(self) -> int:
        with Session(self.engine) as s:
            query = select(func.count()).where(col(InboundRequest.done_at).is_(None))
            return int(s.exec(query).one())
