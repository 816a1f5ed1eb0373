"""How incidents ended against the protocol's targets, per period: the rates, the time to acknowledge and to
resolve per level, what escapes Level 1, and the trend against the period before. Computed in SQL
(bot.services.stats_sql): aggregate queries only, never every incident loaded.

API:
    PERIODS: {"7d": 7 days, "30d": 30 days, "90d": 90 days}; parse_period("30d") -> timedelta | None
    report(engine, end, period) -> Report(current, previous)   # previous: the same length just before
    period_counts(engine, start, end) -> dict[str, int]         # the counts alone (App Home, gauges)
    PeriodStats(start, end, counts, times, categories, pipelines, weekly)
        .level(name) -> LevelTimes; .rate(target) -> int | None
    LevelTimes(level, reached, acknowledged, resolved, ack_p50, ack_p90, resolve_p50, resolve_p90)
    Escapes(name, count)

Definitions (all on the incident's latest opening: a reopened incident starts again at L1, its opened_at
moved to the reopening, and counts in the period of that reopening):
- an incident belongs to the period [start, end) when it was opened within it (start included);
- counts (the keys bot.core.targets.TARGETS read): `total` opened; `resolved` / `open` by status;
  `resolved_l1` resolved while at L1 (fixed at Level 1); `beyond_l1` left L1 (its level is L2, L3 or L4,
  resolved or not); `resolved_l2` resolved while at L2; `reached_l4` reached L4 (a level never goes back
  down within an opening, so its level is L4). Rates: resolved_l1 / total, resolved_l2 / beyond_l1 ("of
  the rest"), reached_l4 / total. Incidents still open count in the wholes.
- an incident reaches L1 when it opens, and L2, L3 or L4 at its first Escalation row of that level;
- time to acknowledge at L2 or L3 = its first `acknowledged` timeline event at that level minus its
  reaching the level; at L4, its `decided` event (a decision taken) minus its reaching L4. Level 1 is the
  bot's: it has no acknowledgement (always None);
- time to resolve at a level = its resolution minus its reaching that level, for incidents resolved at
  that level (so at L2 it is the time spent at L2, not since the alert);
- p50 and p90 by nearest rank: with n samples in ascending order, the p-th percentile is the sample at
  rank ceil(p·n/100) (1-based); durations in whole seconds; None when there are no samples;
- categories and pipelines escaping L1: the five with the most incidents that left L1 (most first, ties by
  name); a pipeline is the `pipeline` label, else the workflow's, else the Job's name (learning.pipeline_of);
- weekly: ISO weeks (Monday 00:00 UTC) overlapping the period, each with its incidents' counts, the first
  and last cut at the period's bounds; a week is keyed by its Monday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from bot.core.models import Level
from bot.core.targets import RateTarget
from bot.services import stats_sql

PERIODS: dict[str, timedelta] = {
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
TOP = 5  # categories and pipelines escaping Level 1


def parse_period(text: str) -> timedelta | None:
    """The period `text` names ("7d", "30d" or "90d", any case), or None."""
    return PERIODS.get(text.strip().lower())


def period_name(period: timedelta) -> str:
    """ "7d" for seven days, and so on (a period outside PERIODS by its days)."""
    return next((name for name, p in PERIODS.items() if p == period), f"{period.days}d")


@dataclass(frozen=True)
class LevelTimes:
    level: str
    reached: int  # incidents that reached the level
    acknowledged: int  # of them, acknowledged at the level (samples behind ack_p50 / ack_p90)
    resolved: int  # of them, resolved at the level (samples behind resolve_p50 / resolve_p90)
    ack_p50: timedelta | None
    ack_p90: timedelta | None
    resolve_p50: timedelta | None
    resolve_p90: timedelta | None


@dataclass(frozen=True)
class Escapes:
    """A category (its stored value) or a pipeline, and how many of its incidents left Level 1."""

    name: str
    count: int


@dataclass(frozen=True)
class PeriodStats:
    start: datetime
    end: datetime
    counts: dict[str, int]  # stats_sql.COUNT_KEYS
    times: list[LevelTimes]  # L1, L2, L3, L4
    categories: list[Escapes]
    pipelines: list[Escapes]
    weekly: list[tuple[date, dict[str, int]]]  # (Monday, counts), oldest first, every week in the period

    def level(self, name: str) -> LevelTimes:
        return next(t for t in self.times if t.level == name)

    def rate(self, target: RateTarget) -> int | None:
        return target.rate(self.counts)


@dataclass(frozen=True)
class Report:
    current: PeriodStats
    previous: PeriodStats  # the period of the same length that ends where `current` starts

    @property
    def period(self) -> timedelta:
        return self.current.end - self.current.start


def utc(at: datetime) -> datetime:
    """`at` as an aware UTC time (a naive one is taken as UTC, as the database stores it)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def report(engine: Engine, end: datetime, period: timedelta) -> Report:
    """The stats of the incidents opened in [end - period, end), and of the period before."""
    end = utc(end)
    start = end - period
    return Report(
        current=period_stats(engine, start, end), previous=period_stats(engine, start - period, start)
    )


def period_counts(engine: Engine, start: datetime, end: datetime) -> dict[str, int]:
    """The counts of the incidents opened in [start, end)."""
    with engine.connect() as conn:
        row = conn.execute(stats_sql.counts(utc(start), utc(end))).one()
    return _counts(row._mapping)


def period_stats(engine: Engine, start: datetime, end: datetime) -> PeriodStats:
    start, end = utc(start), utc(end)
    mondays = _mondays(start, end)
    with engine.connect() as conn:
        counts = _counts(conn.execute(stats_sql.counts(start, end)).one()._mapping)
        weeks = {
            int(r.week): _counts(r._mapping)
            for r in conn.execute(stats_sql.weekly_counts(start, end, mondays))
        }
        times = conn.execute(stats_sql.level_times(start, end)).all()
        categories = conn.execute(stats_sql.escapes(start, end, "category", TOP)).all()
        pipelines = conn.execute(stats_sql.escapes(start, end, "pipeline", TOP)).all()
    first = (start - timedelta(days=start.weekday())).date()
    week_starts = [first, *(m.date() for m in mondays)]
    empty = dict.fromkeys(stats_sql.COUNT_KEYS, 0)
    return PeriodStats(
        start=start,
        end=end,
        counts=counts,
        times=_times(times),
        categories=[Escapes(str(name), int(n)) for name, n in categories],
        pipelines=[Escapes(str(name), int(n)) for name, n in pipelines],
        weekly=[(monday, weeks.get(i, dict(empty))) for i, monday in enumerate(week_starts)],
    )


def _counts(row: Any) -> dict[str, int]:
    return {key: int(row[key] or 0) for key in stats_sql.COUNT_KEYS}


def _mondays(start: datetime, end: datetime) -> list[datetime]:
    """Every Monday 00:00 UTC after `start` and before `end`: where the period's weeks begin."""
    day = datetime(start.year, start.month, start.day, tzinfo=UTC)
    monday = day + timedelta(days=(7 - day.weekday()) % 7 or 7)
    found = []
    while monday < end:
        if monday > start:
            found.append(monday)
        monday += timedelta(days=7)
    return found


def _times(rows: Any) -> list[LevelTimes]:
    got = {(str(r.measure), str(r.level)): r for r in rows}

    def n(measure: str, level: str) -> int:
        row = got.get((measure, level))
        return int(row.n) if row is not None else 0

    def at(measure: str, level: str, p: int) -> timedelta | None:
        row = got.get((measure, level))
        value = getattr(row, f"p{p}") if row is not None else None
        return None if value is None else timedelta(seconds=int(value))

    return [
        LevelTimes(
            level=lvl.value,
            reached=n("reached", lvl.value),
            acknowledged=n("ack", lvl.value),
            resolved=n("resolve", lvl.value),
            ack_p50=at("ack", lvl.value, 50),
            ack_p90=at("ack", lvl.value, 90),
            resolve_p50=at("resolve", lvl.value, 50),
            resolve_p90=at("resolve", lvl.value, 90),
        )
        for lvl in Level
    ]
