"""The protocol's targets, measured: a 90-day history (and the 90 days before it) written straight into the
tables, 47 incidents listed one by one below, and every figure of `report()` for 7d, 30d and 90d checked
against numbers worked out by hand from that list, on SQLite and on PostgreSQL. Then `/escalation stats`
through the Slack emulator, and the rate gauges on /metrics (linted by promtool where it is installed)."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from sqlmodel import Session

from bot.core.clock import FakeClock
from bot.core.targets import TARGETS
from bot.sandbox.world import COORDINATOR, SandboxWorld, http
from bot.services.stats import LevelTimes, PeriodStats, report
from bot.services.stats_text import human
from bot.store.db import make_engine, migrate
from bot.store.tables import Escalation, Incident, TimelineEvent

END = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # a Thursday; FakeClock's default "now"
M = 1  # minutes
H = 60 * M
D = 24 * H


@dataclass(frozen=True)
class Case:
    """One incident: opened at `opened`; `steps` are (level, minutes after reaching the level before,
    minutes from reaching it to its acknowledgement or decision, or None); resolved `resolved` minutes
    after reaching its last level (None: still open)."""

    name: str
    opened: datetime
    category: str
    steps: tuple[tuple[str, int, int | None], ...] = ()
    resolved: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    target: dict[str, str] = field(default_factory=dict)
    reopened: bool = False  # an earlier opening reached L2 the day before (its rows must not count)
    escalated_twice: bool = False  # a second Escalation row at its last level, 45 minutes after the first


def at(month: int, day: int, hour: int = 10, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def l1(name: str, opened: datetime, category: str, resolved: int | None, **kw: Any) -> Case:
    return Case(name, opened, category, (), resolved, **kw)


TC, FS, PS, VI = "training_crash", "feature_store_issue", "pipeline_step_failed", "version_incompatibility"
OT, MR, TD, UN = "orchestration_timeout", "model_registration_failed", "tracking_disconnected", "unclassified"
NT, FSY, ETL = {"pipeline": "nightly-train"}, {"pipeline": "features-sync"}, {"pipeline": "etl-daily"}

CASES = [
    # A: the last 7 days, [Nov 19 09:00, Nov 26 09:00)
    l1("A1", at(11, 19, 9), TC, 4 * M, labels=NT),  # exactly at the 7d start: counts in it
    l1("A2", at(11, 20), TC, 6 * M, labels=NT),
    l1("A3", at(11, 21, 11), FS, 10 * M, labels=FSY),
    l1("A4", at(11, 22, 12), PS, 2 * M),
    l1("A12", at(11, 21, 15), TC, 8 * M, reopened=True),
    Case("A5", at(11, 23, 8), TC, (("L2", 5 * M, 12 * M),), 2 * H, labels=NT),
    Case("A6", at(11, 23, 13), FS, (("L2", 5 * M, 30 * M),), 3 * H + 5 * M, labels=FSY, escalated_twice=True),
    Case(
        "A7",
        at(11, 24, 9),
        TC,
        (("L2", 5 * M, None), ("L3", 30 * M, 20 * M)),
        5 * H,
        labels=ETL,
        target={"job": "etl-job-1"},  # the pipeline label wins over the Job's name
    ),
    Case(
        "A8",
        at(11, 25, 7),
        VI,
        (("L2", 5 * M, 8 * M), ("L3", 1 * H, 45 * M), ("L4", 2 * H, 26 * H)),
        27 * H,
        labels=ETL,
    ),
    Case("A9", at(11, 25, 20), TC, (("L2", 5 * M, None),), None),
    l1("A10", at(11, 26, 8), TD, None),  # Level 1 still running
    l1("A11", END, TC, 1 * M),  # opened at the end: in no period
    # B: the 7 days before, [Nov 12 09:00, Nov 19 09:00)
    l1("B1", at(11, 12, 9), TC, 3 * M),
    l1("B2", at(11, 13), FS, 5 * M),
    l1("B3", at(11, 14), PS, 7 * M),
    l1("B4", at(11, 15), PS, 9 * M),
    Case("B5", at(11, 16), MR, (("L2", 5 * M, 10 * M),), 1 * H, labels={"pipeline": "registry-push"}),
    l1("B6", at(11, 19, 8, 59, 59), TC, 1 * M),  # a second before the 7d start
    # C: the rest of the last 30 days, [Oct 27 09:00, Nov 12 09:00)
    l1("C1", at(10, 27, 9), TC, 20 * M, labels=NT),
    l1("C2", at(10, 28), FS, 30 * M),
    l1("C3", at(11, 2), OT, 15 * M),
    l1("C4", at(11, 5), TC, 12 * M),
    Case("C5", at(11, 10), OT, (("L2", 5 * M, 2 * H),), 6 * H, labels=ETL),
    Case("C6", at(11, 11), OT, (("L2", 5 * M, 5 * M), ("L3", 30 * M, 1 * H)), 2 * D, labels=ETL),
    # D: the 30 days before, [Sep 27 09:00, Oct 27 09:00)
    l1("D1", at(9, 27, 9), TC, 10 * M),
    l1("D2", at(10, 1), TC, 10 * M),
    l1("D3", at(10, 5), TC, 10 * M),
    l1("D4", at(10, 10), TC, 10 * M),
    l1("D5", at(10, 15), TC, 10 * M),
    l1("D6", at(10, 20), TC, 10 * M),
    l1("D7", at(10, 22), TC, 10 * M),
    Case("D8", at(10, 26), FS, (("L2", 5 * M, 15 * M),), 45 * M, labels=FSY),
    Case("D9", at(10, 26, 12), FS, (("L2", 5 * M, 15 * M),), 45 * M, labels=FSY),
    Case(
        "D10",
        at(10, 27, 8),
        TC,
        (("L2", 5 * M, 5 * M), ("L3", 20 * M, 30 * M)),
        None,
        target={"job": "train-job-7"},
    ),
    # E: the rest of the last 90 days, [Aug 28 09:00, Sep 27 09:00)
    l1("E1", at(8, 28, 9), UN, 10 * M),
    l1("E2", at(9, 1), TC, 10 * M),
    l1("E3", at(9, 3), TC, 10 * M),
    l1("E4", at(9, 8), TC, 10 * M),
    l1("E5", at(9, 10), TC, 10 * M),
    l1("E6", at(9, 15), TC, 10 * M),
    l1("E7", at(9, 17), TC, 10 * M),
    l1("E8", at(9, 22), TC, 10 * M),
    l1("E9", at(9, 23), TC, 10 * M),
    l1("E10", at(9, 24), TC, 10 * M),
    l1("E11", at(9, 25), TC, 10 * M),
    Case("E12", at(9, 26), UN, (("L2", 5 * M, 1 * H),), 1 * H, labels={"workflow": "adhoc"}),
    Case("E13", at(9, 27, 8), TD, (("L2", 5 * M, 1 * H),), 1 * H, target={"workflow": "adhoc"}),
    # F: before the last 90 days: one in the previous 90d, one older than both
    l1("F1", at(8, 28, 8, 59, 59), TC, 10 * M),
    Case("F2", at(5, 1), TC, (("L2", 5 * M, 5 * M),), 1 * H),
]


def seed(engine: Engine, cases: list[Case]) -> None:
    """Write each case as the engine would have: the incident, its Escalation rows and its timeline."""
    with Session(engine) as s:
        for n, case in enumerate(cases):
            level, reached, events = "L1", case.opened, [("opened", case.opened, "L1")]
            escalations = []
            if case.reopened:  # the first opening escalated; the reopening moved opened_at
                earlier = case.opened - timedelta(days=1)
                escalations.append(("L2", earlier))
                events += [
                    ("acknowledged", earlier + timedelta(minutes=3), "L2"),
                    ("reopened", case.opened, "L1"),
                ]
            for step_level, after, ack in case.steps:
                reached = reached + timedelta(minutes=after)
                level = step_level
                escalations.append((level, reached))
                kind = "decision_requested" if level == "L4" else "escalated"
                events.append((kind, reached, level))
                if ack is not None:
                    events.append(
                        (
                            "decided" if level == "L4" else "acknowledged",
                            reached + timedelta(minutes=ack),
                            level,
                        )
                    )
            if case.escalated_twice:
                escalations.append((level, reached + timedelta(minutes=45)))
            resolved_at = None if case.resolved is None else reached + timedelta(minutes=case.resolved)
            if resolved_at is not None:
                events.append(("resolved", resolved_at, level))
            status = "resolved" if resolved_at else ("l1_running" if level == "L1" else "open")
            inc = Incident(
                fingerprint=f"fp-{case.name}",
                source="alertmanager",
                title=f"{case.name} failed",
                category=case.category,
                level=level,
                status=status,
                labels=case.labels,
                target=case.target,
                opened_at=case.opened,
                updated_at=resolved_at or reached,
                resolved_at=resolved_at,
                resolved_level=level if resolved_at else None,
                target_key=f"key-{n}",
            )
            s.add(inc)
            s.flush()
            for esc_level, esc_at in escalations:
                s.add(Escalation(incident_id=inc.id or 0, level=esc_level, channel="#c", at=esc_at))
            for kind, event_at, event_level in events:
                s.add(
                    TimelineEvent(
                        incident_id=inc.id or 0, at=event_at, kind=kind, detail={"level": event_level}
                    )
                )
        s.commit()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else f"sqlite:///{tmp_path}/s.db"
    eng = make_engine(url)
    migrate(eng)
    seed(eng, CASES)
    yield eng
    eng.dispose()


def counts(total: int, resolved: int, l1: int, beyond: int, l2: int, l4: int) -> dict[str, int]:
    return {
        "total": total,
        "resolved": resolved,
        "open": total - resolved,
        "resolved_l1": l1,
        "beyond_l1": beyond,
        "resolved_l2": l2,
        "reached_l4": l4,
    }


def mins(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(minutes=value)


def times(
    level: str, reached: int, acked: int, resolved: int, ack: tuple[Any, Any], res: tuple[Any, Any]
) -> LevelTimes:
    return LevelTimes(level, reached, acked, resolved, mins(ack[0]), mins(ack[1]), mins(res[0]), mins(res[1]))


NO = (None, None)
A8_AT_L4 = times("L4", 1, 1, 1, (26 * H, 26 * H), (27 * H, 27 * H))  # decided after 1d 2h, closed 1d 3h


def names(found: list[Any]) -> list[tuple[str, int]]:
    return [(e.name, e.count) for e in found]


def rates(p: PeriodStats) -> list[tuple[int | None, bool | None]]:
    return [(t.rate(p.counts), t.met(p.counts)) for t in TARGETS]


def weekly_totals(p: PeriodStats) -> list[tuple[date, int]]:
    return [(monday, c["total"]) for monday, c in p.weekly]


def test_the_last_7_days_and_the_7_before(engine: Engine) -> None:
    r = report(engine, END, timedelta(days=7))
    cur, prev = r.current, r.previous
    assert (cur.start, cur.end, prev.start, prev.end) == (at(11, 19, 9), END, at(11, 12, 9), at(11, 19, 9))
    # A1..A10 and A12 (A11 opened at the end); resolved: all but A9 and A10; at L1: A1-A4, A12;
    # left L1: A5-A9; resolved at L2: A5, A6; reached L4: A8
    assert cur.counts == counts(total=11, resolved=9, l1=5, beyond=5, l2=2, l4=1)
    assert rates(cur) == [(45, False), (40, False), (9, False)]  # 5/11, 2/5, 1/11
    assert cur.times == [
        times("L1", 11, 0, 5, NO, (6, 10)),  # fixed in 2, 4, 6, 8, 10 m: rank 3 and 5
        times("L2", 5, 3, 2, (12, 30), (120, 185)),  # acks 8, 12, 30 (rank 2, 3); resolves 2h, 3h5m
        times("L3", 2, 2, 1, (20, 45), (300, 300)),
        A8_AT_L4,
    ]
    assert names(cur.categories) == [(TC, 3), (FS, 1), (VI, 1)]
    assert names(cur.pipelines) == [("etl-daily", 2), ("features-sync", 1), ("nightly-train", 1)]
    assert cur.weekly == [
        (date(2026, 11, 16), counts(total=5, resolved=5, l1=5, beyond=0, l2=0, l4=0)),
        (date(2026, 11, 23), counts(total=6, resolved=4, l1=0, beyond=5, l2=2, l4=1)),
    ]
    # B1..B6: all resolved, B5 at L2
    assert prev.counts == counts(total=6, resolved=6, l1=5, beyond=1, l2=1, l4=0)
    assert rates(prev) == [(83, True), (100, True), (0, True)]
    assert prev.times == [
        times("L1", 6, 0, 5, NO, (5, 9)),  # 1, 3, 5, 7, 9 m
        times("L2", 1, 1, 1, (10, 10), (60, 60)),
        times("L3", 0, 0, 0, NO, NO),
        times("L4", 0, 0, 0, NO, NO),
    ]
    assert names(prev.categories) == [(MR, 1)] and names(prev.pipelines) == [("registry-push", 1)]
    assert weekly_totals(prev) == [(date(2026, 11, 9), 4), (date(2026, 11, 16), 2)]


def test_a_week_from_monday_to_monday_is_one_bucket(engine: Engine) -> None:
    monday = datetime(2026, 11, 23, tzinfo=UTC)
    cur = report(engine, monday, timedelta(days=7)).current
    # B5, B6, A1-A4, A12: all resolved, B5 at L2
    assert cur.counts == counts(total=7, resolved=7, l1=6, beyond=1, l2=1, l4=0)
    assert cur.weekly == [(date(2026, 11, 16), cur.counts)]


def test_the_last_30_days_and_the_30_before(engine: Engine) -> None:
    r = report(engine, END, timedelta(days=30))
    cur, prev = r.current, r.previous
    assert (cur.start, prev.start) == (at(10, 27, 9), at(9, 27, 9))
    # A (11) + B (6) + C (6); open: A9, A10; at L1: 5 + 5 + 4; left L1: 5 + 1 + 2; at L2: 2 + 1 + 1 (C5)
    assert cur.counts == counts(total=23, resolved=21, l1=14, beyond=8, l2=4, l4=1)
    assert rates(cur) == [(61, False), (50, False), (4, False)]
    assert cur.times == [
        # fixed in 1..10, 12, 15, 20, 30 m (14): rank 7 and 13
        times("L1", 23, 0, 14, NO, (7, 20)),
        # acks 5, 8, 10, 12, 30, 120 (rank 3 and 6); resolves 60, 120, 185, 360 (rank 2 and 4)
        times("L2", 8, 6, 4, (10, 120), (120, 360)),
        times("L3", 3, 3, 2, (45, 60), (300, 2 * D)),  # acks 20, 45, 60; resolves 5h, 2d
        A8_AT_L4,
    ]
    assert names(cur.categories) == [(TC, 3), (OT, 2), (FS, 1), (MR, 1), (VI, 1)]
    assert names(cur.pipelines) == [
        ("etl-daily", 4),
        ("features-sync", 1),
        ("nightly-train", 1),
        ("registry-push", 1),
    ]
    assert cur.weekly == [
        (date(2026, 10, 26), counts(total=2, resolved=2, l1=2, beyond=0, l2=0, l4=0)),
        (date(2026, 11, 2), counts(total=2, resolved=2, l1=2, beyond=0, l2=0, l4=0)),
        (date(2026, 11, 9), counts(total=6, resolved=6, l1=4, beyond=2, l2=1, l4=0)),
        (date(2026, 11, 16), counts(total=7, resolved=7, l1=6, beyond=1, l2=1, l4=0)),
        (date(2026, 11, 23), counts(total=6, resolved=4, l1=0, beyond=5, l2=2, l4=1)),
    ]
    # D1..D10: D10 open at L3
    assert prev.counts == counts(total=10, resolved=9, l1=7, beyond=3, l2=2, l4=0)
    assert rates(prev) == [(70, True), (67, False), (0, True)]  # 70% exactly meets its target
    assert prev.times == [
        times("L1", 10, 0, 7, NO, (10, 10)),
        times("L2", 3, 3, 2, (15, 15), (45, 45)),  # acks 5, 15, 15
        times("L3", 1, 1, 0, (30, 30), NO),
        times("L4", 0, 0, 0, NO, NO),
    ]
    assert names(prev.categories) == [(FS, 2), (TC, 1)]
    assert names(prev.pipelines) == [("features-sync", 2), ("train-job-7", 1)]  # D10 by its Job's name


def test_the_last_90_days_and_the_90_before(engine: Engine) -> None:
    r = report(engine, END, timedelta(days=90))
    cur, prev = r.current, r.previous
    assert (cur.start, prev.start) == (at(8, 28, 9), at(5, 30, 9))
    # A-E: 46; open: A9, A10, D10; at L1: 14 + 7 + 11; left L1: 8 + 3 + 2; at L2: 4 + 2 + 2
    assert cur.counts == counts(total=46, resolved=43, l1=32, beyond=13, l2=8, l4=1)
    # 32/46 = 69.6% shows as 70% yet misses 70%; 1/46 = 2.2% shows as 2% yet is not under 2%
    assert rates(cur) == [(70, False), (62, False), (2, False)]
    assert cur.times == [
        # 1..9, then nineteen 10s (ranks 10-28), 12, 15, 20, 30: rank 16 and 29
        times("L1", 46, 0, 32, NO, (10, 12)),
        # acks 5, 5, 8, 10, 12, 15, 15, 30, 60, 60, 120 (rank 6 and 10);
        # resolves 45, 45, 60, 60, 60, 120, 185, 360 (rank 4 and 8)
        times("L2", 13, 11, 8, (15, 60), (60, 360)),
        times("L3", 4, 4, 2, (30, 60), (300, 2 * D)),  # acks 20, 30, 45, 60
        A8_AT_L4,
    ]
    # ties of one by name, cut at five
    assert names(cur.categories) == [(TC, 4), (FS, 3), (OT, 2), (MR, 1), (TD, 1)]
    assert names(cur.pipelines) == [
        ("etl-daily", 4),
        ("features-sync", 3),
        ("adhoc", 2),  # E12 by its workflow label, E13 by its target's workflow
        ("nightly-train", 1),
        ("registry-push", 1),
    ]
    assert weekly_totals(cur) == [
        (date(2026, 8, 24), 1),
        (date(2026, 8, 31), 2),
        (date(2026, 9, 7), 2),
        (date(2026, 9, 14), 2),
        (date(2026, 9, 21), 7),
        (date(2026, 9, 28), 1),
        (date(2026, 10, 5), 2),
        (date(2026, 10, 12), 1),
        (date(2026, 10, 19), 2),
        (date(2026, 10, 26), 5),
        (date(2026, 11, 2), 2),
        (date(2026, 11, 9), 6),
        (date(2026, 11, 16), 7),
        (date(2026, 11, 23), 6),
    ]
    # F1 only (F2 is older than both periods)
    assert prev.counts == counts(total=1, resolved=1, l1=1, beyond=0, l2=0, l4=0)
    assert rates(prev) == [(100, True), (None, None), (0, True)]
    assert prev.times[0] == times("L1", 1, 0, 1, NO, (10, 10))
    assert names(prev.categories) == [] and names(prev.pipelines) == []
    assert len(prev.weekly) == 14 and sum(c["total"] for _, c in prev.weekly) == 1


def test_durations_read_as_people_say_them() -> None:
    cases = {None: "—", 0: "0s", 45: "45s", 12 * 60: "12m", 3 * 3600: "3h", 3 * 3600 + 5 * 60: "3h 5m"}
    cases |= {26 * 3600: "1d 2h", 2 * 86400: "2d"}
    assert {k: human(None if k is None else timedelta(seconds=k)) for k in cases} == cases


# ---------------------------------------------------------------- in Slack and on /metrics


def ask(world: SandboxWorld, text: str) -> str:
    """The command's answer: the text of its acknowledgement, which Slack shows only to who asked."""
    assert world.driver is not None
    answer = world.driver.slash_command("/escalation", text, COORDINATOR, "#ml-alerts")
    assert answer.status == 200 and answer.headers.get("content-type", "").startswith("text/plain")
    return answer.text


def test_the_stats_command_shows_30_days_against_the_targets_and_the_30_before(
    timed_world: SandboxWorld,
) -> None:
    assert timed_world.bot is not None
    seed(timed_world.bot.services.engine, CASES)  # its clock stands at END
    assert ask(timed_world, "stats 30d").splitlines() == [
        "*Escalation stats, last 30d* (Oct 27 – Nov 26 09:00 UTC)",
        "23 incidents opened: 21 resolved, 2 open · 8 left Level 1 · 1 reached L4",
        "✗ Resolved at L1: *61%* (14 of 23; target 70%) · ▼ 9 points vs previous 30d (70%)",
        "✗ Of the rest, resolved at L2: *50%* (4 of 8; target 80%) · ▼ 17 points vs previous 30d (67%)",
        "✗ Reached L4: *4%* (1 of 23; target under 2%) · ▲ 4 points vs previous 30d (0%)",
        "",
        "*Time to acknowledge · to resolve* (p50 / p90, from reaching the level)",
        "• L1 (the bot): resolve 7m / 20m · 14 fixed of 23",
        "• L2: ack 10m / 2h · resolve 2h / 6h · 8 reached",
        "• L3: ack 45m / 1h · resolve 5h / 2d · 3 reached",
        "• L4: decide 1d 2h / 1d 2h · resolve 1d 3h / 1d 3h · 1 reached",
        "",
        "*Escaping Level 1* (incidents that left it)",
        "• Categories: training crash 3 · orchestration timeout 2 · feature store issue 1 · "
        "model registration failed 1 · version incompatibility 1",
        "• Pipelines: etl-daily 4 · features-sync 1 · nightly-train 1 · registry-push 1",
    ]
    seven = ask(timed_world, "stats")  # 7d when no period is given
    assert seven.startswith("*Escalation stats, last 7d* (Nov 19 – Nov 26 09:00 UTC)\n11 incidents opened")
    assert "✓" not in seven and "▼ 38 points vs previous 7d (83%)" in seven


def test_a_period_the_stats_do_not_know_is_refused_with_the_ones_they_do(timed_world: SandboxWorld) -> None:
    assert ask(timed_world, "stats 1y") == (
        "`1y` is not a period the stats know. Use one of `7d`, `30d`, `90d`: e.g. `/escalation stats 30d` "
        "(7d when none is given)."
    )
    # one period only, and whatever is typed is shown short and harmless
    assert ask(timed_world, "stats 7d 30d").startswith("`7d 30d` is not a period the stats know.")
    assert ask(timed_world, "stats -1d").startswith("`-1d` is not a period the stats know.")
    assert ask(timed_world, "stats <!channel>\x00`x`").startswith(
        "`&lt;!channel&gt;\\x00'x'` is not a period the stats know."  # NUL shown as text
    )
    assert ask(timed_world, "stats " + "9" * 100_000).startswith(f"`{'9' * 20}` is not a period")
    # an unknown subcommand is shown back the same way: it can neither mention nor link
    unknown = ask(timed_world, "<!channel><http://evil.example|x> 1")
    assert unknown.startswith("Unknown subcommand `&lt;!channel&gt;&lt;http://evil.example|x&gt;`.\n")
    assert "<!channel>" not in unknown and "<http" not in unknown


def gauges(world: SandboxWorld) -> tuple[str, dict[tuple[str, str], float]]:
    body = http("GET", world.url + "/metrics").text
    found = {
        (s.name, s.labels.get("window") or s.labels.get("rate", "")): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name.startswith(("escalation_rate_", "escalation_target"))
    }
    return body, found


def test_the_rates_are_gauges_per_window_beside_their_targets(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    assert timed_world.bot is not None
    engine = timed_world.bot.services.engine
    seed(engine, CASES)
    body, found = gauges(timed_world)
    assert found == {
        ("escalation_rate_resolved_l1", "7d"): 5 / 11,
        ("escalation_rate_resolved_l1", "30d"): 14 / 23,
        ("escalation_rate_resolved_l1", "90d"): 32 / 46,
        ("escalation_rate_resolved_l2", "7d"): 2 / 5,
        ("escalation_rate_resolved_l2", "30d"): 4 / 8,
        ("escalation_rate_resolved_l2", "90d"): 8 / 13,
        ("escalation_rate_reached_l4", "7d"): 1 / 11,
        ("escalation_rate_reached_l4", "30d"): 1 / 23,
        ("escalation_rate_reached_l4", "90d"): 1 / 46,
        ("escalation_target", "resolved_l1"): 0.7,
        ("escalation_target", "resolved_l2"): 0.8,
        ("escalation_target", "reached_l4"): 0.02,
    }
    # read at most once a minute: a new incident shows after that
    seed(engine, [l1("G1", END - timedelta(hours=1), TC, 1 * M)])
    assert gauges(timed_world)[1][("escalation_rate_resolved_l1", "7d")] == 5 / 11
    clock.advance(60)
    assert gauges(timed_world)[1][("escalation_rate_resolved_l1", "7d")] == 6 / 12
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus): /metrics was not linted")
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_a_window_with_nothing_to_measure_is_not_a_number(timed_world: SandboxWorld) -> None:
    found = gauges(timed_world)[1]
    assert math.isnan(found[("escalation_rate_resolved_l1", "7d")])
    assert math.isnan(found[("escalation_rate_reached_l4", "90d")])
    assert found[("escalation_target", "reached_l4")] == 0.02
