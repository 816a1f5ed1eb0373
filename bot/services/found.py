"""What a poller finds: one failure, when it happened by the source's clock, and the alert for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.core.models import AlertIn


@dataclass(frozen=True)
class Found:
    """One failure a poll found: when it happened (by the source's clock) and the alert for it."""

    at: datetime
    alert: AlertIn
