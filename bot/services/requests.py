"""The record of inbound deliveries already handled (keyed by the sender's delivery id), so a retry or a
duplicate is answered without being applied twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.core.clock import Clock
from bot.store.db import session_scope
from bot.store.tables import ProcessedRequest

KEY_MAX = 255


class ProcessedRequests:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def release(self, key: str) -> None:
        """Forget a key whose delivery was not stored after all, so the sender's retry is taken."""
        with session_scope(self.engine) as s:
            s.execute(delete(ProcessedRequest).where(col(ProcessedRequest.key) == key[:KEY_MAX]))

    def claim(self, key: str) -> bool:
        """Record a delivery key; False when it was recorded before (a retry or a duplicate)."""
        try:
            with session_scope(self.engine) as s:
                s.add(ProcessedRequest(key=key[:KEY_MAX], at=self.clock.now()))
        except IntegrityError:
            return False
        return True


def record_once(s: Session, key: str, now: datetime) -> bool:
    """Record `key` in the caller's transaction, with what it does once (an answer, a question taken);
    False when it was recorded before. Two transactions racing on a key: the second to commit fails on
    the unique constraint and rolls back whatever came with it."""
    key = key[:KEY_MAX]
    if s.exec(select(ProcessedRequest.id).where(ProcessedRequest.key == key)).first() is not None:
        return False
    s.add(ProcessedRequest(key=key, at=now))
    return True
