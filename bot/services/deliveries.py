"""Webhook deliveries: stored with one write before the sender is answered, then applied in the order they
arrived, each exactly once.

A small delivery (the usual Alertmanager notification) is applied while its sender waits, so the answer
says what became of it; a large one, or one queued behind others, is answered 202 as soon as it is
stored and applied in the background, so any delivery the bot accepts is answered well inside the
sender's timeout (Alertmanager gives up after 10 s and sends everything again). Whoever applies a
delivery (the request, the background job, another replica) locks it and marks it done in the
transaction that applies it, so a crash halfway leaves it pending, never half-applied or applied twice."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from bot.core.clock import Clock
from bot.core.models import AlertIn
from bot.core.untrusted import admit
from bot.metrics import Metrics
from bot.services.foreground import Foreground
from bot.services.intake import IntakeService
from bot.store.db import one_write, session_scope, unavailable
from bot.store.tables import Delivery

log = logging.getLogger(__name__)

_TABLE = Delivery.__table__  # type: ignore[attr-defined]
_INSERT = insert(_TABLE).returning(_TABLE.c.id)  # built once, no ORM: the sender waits on this write

INLINE_MAX = 50  # a delivery with at most this many alerts is applied before its sender is answered
CHUNK = 25  # alerts applied per transaction: on SQLite the write lock is let go this often
INLINE_WAIT_S = 3.0  # how long a sender waits for its delivery to be applied before it is told "queued"
MAX_TRIES = 3  # a delivery that fails this often (a bug, not an outage) is set aside and logged
STEP_ASIDE_S = 0.25  # in the background, at most this long before each chunk while senders wait


def to_json(alert: AlertIn) -> dict[str, Any]:
    data = {f.name: getattr(alert, f.name) for f in fields(alert)}  # shallow: its values are JSON already
    data["starts_at"] = alert.starts_at.isoformat() if alert.starts_at else None
    return data


def from_json(data: dict[str, Any]) -> AlertIn:
    starts = data.get("starts_at")
    return AlertIn(**{**data, "starts_at": datetime.fromisoformat(starts) if starts else None})


class DeliveryQueue:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        intake: IntakeService,
        metrics: Metrics,
        kick: Callable[[], None],
        foreground: Foreground,
    ) -> None:
        self.engine = engine
        self.foreground = foreground
        self.clock = clock
        self.intake = intake
        self.metrics = metrics
        self._kick = kick

    def accept(self, source: str, alerts: list[AlertIn], truncated: int = 0) -> dict[str, Any]:
        """Store a delivery (committed before this returns) and say what became of it: its result when it
        was applied while the sender waited, else {"accepted": n, "queued": true}."""
        alerts = [admit(a) for a in alerts]
        row = Delivery(
            source=source,
            alerts=[to_json(a) for a in alerts],
            count=len(alerts),
            truncated=truncated,
            received_at=self.clock.now(),
        ).model_dump(exclude={"id"})  # the model's defaults, written without the ORM's unit of work
        with one_write(self.engine) as conn:  # the sender waits on this write, not on applying
            delivery_id = int(conn.execute(_INSERT, row).scalar_one())
        if len(alerts) <= INLINE_MAX:
            try:
                self.drain(up_to=delivery_id, wait_s=INLINE_WAIT_S)
            except DBAPIError as exc:  # stored: the background job applies it once the database is back
                if not unavailable(exc):
                    raise
                log.warning("delivery %s stored, not applied yet: %s", delivery_id, exc.orig)
            with Session(self.engine) as s:
                done = s.get(Delivery, delivery_id)
                if done is not None and done.status == "done":
                    return dict(done.result)
        self._kick()
        return {"accepted": len(alerts), "queued": True}

    def drain(self, up_to: int | None = None, wait_s: float | None = None) -> int:
        """Apply pending deliveries in order (up to and including `up_to`); how many were applied.

        Without `up_to` (the background job) it steps aside for senders waiting on their answer."""
        deadline = time.monotonic() + wait_s if wait_s is not None else None
        applied = 0
        while deadline is None or time.monotonic() < deadline:
            head = self._oldest_pending()
            if head is None or (up_to is not None and head > up_to):
                break
            applied += self._apply(head, background=up_to is None)
        return applied

    def pending(self) -> int:
        with Session(self.engine) as s:
            return int(s.exec(select(func.count()).where(col(Delivery.status) == "pending")).one())

    def _oldest_pending(self) -> int | None:
        with Session(self.engine) as s:
            first = s.exec(select(func.min(Delivery.id)).where(col(Delivery.status) == "pending")).one()
            return int(first) if first is not None else None

    def _apply(self, delivery_id: int, background: bool) -> int:
        """Apply what is left of a delivery, a chunk per transaction; 1 when this call finished it."""
        with Session(self.engine) as s:
            row = s.get(Delivery, delivery_id)
            if row is None or row.status != "pending":
                return 0
            alerts, truncated = [from_json(a) for a in row.alerts], row.truncated
            offset, total = row.applied, row.count
        while True:
            if background:
                self.foreground.step_aside(STEP_ASIDE_S)
            chunk = alerts[offset : offset + CHUNK]
            try:
                result = self.intake.apply_delivery(delivery_id, offset, chunk, truncated)
            except DBAPIError as exc:
                if unavailable(exc):
                    raise
                self._failed(delivery_id, exc)
                return 0
            except Exception as exc:  # a bug must not hold up every delivery behind this one forever
                self._failed(delivery_id, exc)
                return 0
            if result is None:
                return 0  # another process is applying it
            offset += len(chunk)
            if offset >= total:
                return 1

    def _failed(self, delivery_id: int, exc: BaseException) -> None:
        log.exception("delivery %s could not be applied", delivery_id, exc_info=exc)
        with session_scope(self.engine) as s:
            row = s.get(Delivery, delivery_id)
            if row is None:
                return
            row.attempts += 1
            row.error = f"{type(exc).__name__}: {exc}"[:2000]
            if row.attempts >= MAX_TRIES:
                row.status = "failed"
                self.metrics.alerts_rejected.labels(source=row.source, reason="failed").inc(row.count)
            s.add(row)
