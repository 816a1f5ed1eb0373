"""What `/escalation stats` says (templates/stats.txt.j2): each rate against its target with ✓ or ✗ and its
trend against the previous period, the times per level in words ("12m", "3h 5m"), and what escapes
Level 1. Lines stay short enough for a phone; no tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.core.models import Category
from bot.core.targets import TARGETS, RateTarget
from bot.render import render
from bot.services.stats import Escapes, LevelTimes, Report, period_name

NONE = "—"


def human(duration: timedelta | None) -> str:
    """A duration as people say it, to its two largest units: "45s", "12m", "3h 5m", "2d 4h"; "—" for none."""
    if duration is None:
        return NONE
    seconds = max(0, round(duration.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes}m"
    if days == 0:
        rest = minutes % 60
        return f"{hours}h {rest}m" if rest else f"{hours}h"
    rest = hours % 24
    return f"{days}d {rest}h" if rest else f"{days}d"


def category_label(name: str) -> str:
    try:
        return Category(name).label
    except ValueError:  # a category a newer release stored
        return name


def mark(met: bool | None) -> str:
    return {True: "✓", False: "✗", None: "–"}[met]


def trend(now: int | None, before: int | None, period: str) -> str:
    """ "▲ 5 points vs previous 7d" (or ▼, or "same as"); what is missing when either has nothing to measure
    (no incidents, or none that left Level 1 for the L2 rate)."""
    if now is None:
        return "nothing to measure yet"
    if before is None:
        return f"nothing to compare with in the previous {period}"
    change = now - before
    if change == 0:
        return f"same as previous {period} ({before}%)"
    arrow = "▲" if change > 0 else "▼"
    return f"{arrow} {abs(change)} point{'s' if abs(change) != 1 else ''} vs previous {period} ({before}%)"


@dataclass(frozen=True)
class RateLine:
    mark: str
    label: str
    rate: str  # "72%" or "—"
    of: str  # "30 of 42"
    target: str  # "target 70%"
    trend: str


def rate_lines(report: Report) -> list[RateLine]:
    now, before, name = report.current.counts, report.previous.counts, period_name(report.period)
    return [_rate_line(t, now, before, name) for t in TARGETS]


def _rate_line(t: RateTarget, now: dict[str, int], before: dict[str, int], name: str) -> RateLine:
    rate = t.rate(now)
    return RateLine(
        mark=mark(t.met(now)),
        label=t.label,
        rate=NONE if rate is None else f"{rate}%",
        of=f"{now.get(t.part, 0)} of {now.get(t.whole, 0)}",
        target=t.wording,
        trend=trend(rate, t.rate(before), name),
    )


def time_line(t: LevelTimes) -> str:
    """ "L2: ack 12m / 40m · resolve 3h 5m / 1d 2h · 12 reached" (p50 / p90)."""
    resolve = f"resolve {human(t.resolve_p50)} / {human(t.resolve_p90)}"
    if t.level == "L1":
        return f"L1 (the bot): {resolve} · {t.resolved} fixed of {t.reached}"
    ack = "decide" if t.level == "L4" else "ack"
    return f"{t.level}: {ack} {human(t.ack_p50)} / {human(t.ack_p90)} · {resolve} · {t.reached} reached"


def escapes_line(found: list[Escapes], label: Any = str) -> str:
    return " · ".join(f"{label(e.name)} {e.count}" for e in found) or NONE


def values(report: Report) -> dict[str, Any]:
    """The template's values for `report`."""
    cur = report.current
    return {
        "period": period_name(report.period),
        "start": f"{cur.start:%b %d}",
        "end": f"{cur.end:%b %d %H:%M} UTC",
        "counts": cur.counts,
        "rates": rate_lines(report),
        "times": [time_line(t) for t in cur.times],
        "categories": escapes_line(cur.categories, category_label),
        "pipelines": escapes_line(cur.pipelines),
    }


def text(report: Report) -> str:
    """The `/escalation stats` answer for `report`."""
    return render("stats", **values(report))
