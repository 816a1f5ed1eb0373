"""app.yaml's `retention` and `reports` sections: what is pruned and when, and the weekly digest of how
incidents ended against the protocol's targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from bot.config.durations import Duration, between
from bot.config.names import ChannelRef
from bot.config.section import Section
from bot.config.values import Count, int_range

_KEEP = between(timedelta(hours=1), timedelta(days=3650))


class RetentionSettings(Section):
    """How long each kind of bookkeeping row is kept after it stopped mattering. Incidents, their
    decisions and their timeline are the record: kept forever unless `incidents` is set."""

    enabled: bool = True
    interval: Annotated[Duration, between(timedelta(minutes=1), timedelta(days=7))] = timedelta(hours=1)
    batch: Annotated[Count, int_range(100, 100_000)] = 5_000  # rows deleted per statement
    # ids of Slack events and webhook deliveries already handled (a replay older than this is taken as new)
    processed_requests: Annotated[Duration, _KEEP] = timedelta(days=14)
    outbox: Annotated[Duration, _KEEP] = timedelta(days=30)  # Slack messages delivered (or given up)
    timers: Annotated[Duration, _KEEP] = timedelta(days=30)  # timers done, cancelled or failed
    alerts: Annotated[Duration, _KEEP] = timedelta(days=90)  # raw alert bodies, by when they arrived
    # resolved incidents with their decisions, findings and timeline, by when they were resolved; None keeps
    # them forever
    incidents: Annotated[Duration, _KEEP] | None = None


_SINCE = datetime(2024, 1, 1, tzinfo=UTC)  # a fixed start, so a check never depends on today; a leap year
_CRON_ERROR = "expected a crontab line like '0 9 * * 1' (minute hour day month weekday)"


def _cron(value: Any) -> Any:
    """A five-field crontab line (minute hour day month weekday; 0 or 7 is Sunday), checked by the
    scheduler that runs it."""
    if not isinstance(value, str):
        raise PydanticCustomError("cron", _CRON_ERROR)
    from bot.config.cron import trigger

    try:
        fires = trigger(value, "UTC").get_next_fire_time(None, _SINCE)
    except (ValueError, TypeError) as exc:
        raise PydanticCustomError("cron", _CRON_ERROR + ": {why}", {"why": str(exc)}) from None
    if fires is None:  # 30 February: a digest that would never be posted
        raise PydanticCustomError("cron", "never fires (no such date): " + _CRON_ERROR)
    return " ".join(value.split())


class DigestSettings(Section):
    enabled: bool = True
    cron: str = "0 9 * * 1"  # minute hour day month weekday; Monday 09:00
    timezone: str = "UTC"  # an IANA zone the cron line is read in, e.g. Europe/Berlin
    channel: ChannelRef | None = None  # None: slack.channels.tech_lead
    period: Annotated[Duration, between(timedelta(days=1), timedelta(days=90))] = timedelta(days=7)
    chart: bool = True  # a PNG of the level funnel against the targets and the weekly trend

    @field_validator("cron", mode="before")
    @classmethod
    def _crontab(cls, value: Any) -> Any:
        return _cron(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory (America), a long name
            raise PydanticCustomError("timezone", "not a time zone like 'UTC' or 'Europe/Berlin'") from None
        return value


class ReportsSettings(Section):
    digest: DigestSettings = Field(default_factory=DigestSettings)
