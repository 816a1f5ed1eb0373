"""When the digest is due: the slots of `reports.digest.cron` read in its time zone, and which slot a late
run stands for.

The line is read as cron reads it (bot.config.cron: 0 or 7 is Sunday).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.config.cron import cron_weekdays, trigger

__all__ = ["cron_weekdays", "latest_slot", "next_slot", "trigger"]

_STEP = timedelta(microseconds=1)
# how far back a slot is looked for; a yearly line has one within the last
_WINDOWS = tuple(timedelta(days=d) for d in (1 / 24, 1, 8, 32, 400))


def next_slot(cron: str, timezone: str, after: datetime) -> datetime:
    """The first slot strictly after `after`, in UTC."""
    fire: datetime | None = trigger(cron, timezone).get_next_fire_time(None, after + _STEP)
    if fire is None:  # a five-field line always fires again
        raise ValueError(f"cron line {cron!r} never fires")
    return fire.astimezone(UTC)


def latest_slot(cron: str, timezone: str, at: datetime) -> datetime | None:
    """The last slot at or before `at`, in UTC (None when there was none within a year and a month)."""
    for window in _WINDOWS:  # the nearest window back that holds a slot, so a frequent line stays cheap
        slot = next_slot(cron, timezone, at - window)
        if slot <= at:
            break
    else:
        return None
    while (following := next_slot(cron, timezone, slot)) <= at:
        slot = following
    return slot
