"""Crontab lines as cron reads them, for APScheduler.

A crontab line counts weekdays from Sunday (0 or 7 = Sunday, 1 = Monday); APScheduler 3's `from_crontab`
counts them from Monday, so "0 9 * * 1" would fire on Tuesdays. The weekday field is translated to day
names first, so the line means what it means to cron.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _day(token: str) -> int:
    """A weekday as cron numbers it (0-7, or a name), 0 and 7 both Sunday."""
    name = token.strip().lower()[:3]
    if name in _DAYS:
        return _DAYS.index(name)
    number = int(token)
    if not 0 <= number <= 7:
        raise ValueError(f"weekday {token} is not 0-7")
    return number


def cron_weekdays(field: str) -> str:
    """A crontab weekday field ("1", "1-5", "0,6", "*/2", "mon-fri") as APScheduler's day names."""
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            low, high = 0, 6
        elif "-" in base:
            first, last = base.split("-", 1)
            low, high = _day(first), _day(last)
        else:
            low = _day(base)
            high = 7 if step_text else low
        if step < 1 or low > high:
            raise ValueError(f"weekday field {field!r} is not a cron weekday list")
        days.update(d % 7 for d in range(low, high + 1, step))
    return ",".join(_DAYS[d] for d in sorted(days))


def trigger(cron: str, timezone: str) -> CronTrigger:
    """The trigger for a five-field crontab line read in `timezone`."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"has {len(fields)} fields, not 5")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=cron_weekdays(weekday),
        timezone=ZoneInfo(timezone),
    )
