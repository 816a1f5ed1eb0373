"""How long the escalation stats take on a large history: `report()` (what `/escalation stats` and the digest
read) and `period_counts()` (what the App Home and the rate gauges read), on SQLite and PostgreSQL.

    python bench/stats_report.py [--db sqlite|postgres|both] [--incidents 20000] [--runs 9]

`--incidents` incidents spread evenly over the 180 days before a fixed "now" (so the 90d report and its
previous 90 days are both full), written straight into the tables with their Escalation rows and timeline
events, as the engine writes them: by a seeded generator (random.Random(13)), about 70% fixed at Level 1,
20% ending at L2, 7% at L3 and 3% at L4, 5% still open, acknowledgements after 1-90 minutes, a category
out of eight and a pipeline out of forty. SQLite is a temporary file; PostgreSQL is `TEST_DATABASE_URL`,
else postgresql://postgres@127.0.0.1:5432/test, in a fresh schema dropped afterwards. Both are analysed
(ANALYZE) after seeding, as autovacuum would.

Each figure is the median of `--runs` runs after one warm-up run, beside a **floor**: one
`SELECT count(*)` over the same period's incidents, the least any figure of the period could cost.

Targets, each printed as PASS or MISS: `report()` for 90d at most 1 s (the command answers in Slack's
acknowledgement, which Slack wants within 3 s), `period_counts()` for 90d at most 100 ms (the gauges read
three of them a minute). The exit status is 0 only when every target is met.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import FreshSchema
from sqlalchemy import Engine, func, insert, select, text
from sqlmodel import col

from bot.services.stats import PERIODS, period_counts, report
from bot.store.db import make_engine, migrate
from bot.store.tables import Escalation, Incident, TimelineEvent

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SPAN = timedelta(days=180)
CATEGORIES = (
    "pipeline_step_failed",
    "training_crash",
    "tracking_disconnected",
    "model_registration_failed",
    "feature_store_issue",
    "orchestration_timeout",
    "version_incompatibility",
    "unclassified",
)
TARGET_REPORT_S, TARGET_COUNTS_S = 1.0, 0.1
CHUNK = 2000
LEVELS = ("L1", "L2", "L3", "L4")


def final_level(rng: random.Random) -> str:
    roll = rng.random()
    return "L1" if roll < 0.70 else "L2" if roll < 0.90 else "L3" if roll < 0.97 else "L4"


def rows_for(
    n: int, count: int, rng: random.Random
) -> tuple[dict[str, Any], list[tuple[str, datetime]], list[Any]]:
    """Incident `n` of `count`: its row, its escalations (level, at) and its timeline (kind, at, level)."""
    opened = NOW - SPAN + timedelta(seconds=SPAN.total_seconds() * n / count)
    level, reached = "L1", opened
    escalations: list[tuple[str, datetime]] = []
    events: list[Any] = [("opened", opened, "L1")]
    last = final_level(rng)
    for step in LEVELS[1 : LEVELS.index(last) + 1]:
        reached += timedelta(minutes=rng.randint(5, 60))
        level = step
        escalations.append((level, reached))
        events.append(("decision_requested" if level == "L4" else "escalated", reached, level))
        if rng.random() < 0.9:
            ack = reached + timedelta(minutes=rng.randint(1, 90))
            events.append(("decided" if level == "L4" else "acknowledged", ack, level))
    still_open = rng.random() < 0.05
    resolved_at = None if still_open else reached + timedelta(minutes=rng.randint(2, 600))
    if resolved_at is not None:
        events.append(("resolved", resolved_at, level))
    status = "resolved" if resolved_at else ("l1_running" if level == "L1" else "open")
    labels = {"pipeline": f"pipeline-{rng.randrange(40)}"} if rng.random() < 0.8 else {}
    incident = {
        "fingerprint": f"bench-{n}",
        "source": "alertmanager",
        "title": f"bench incident {n}",
        "category": rng.choice(CATEGORIES),
        "level": level,
        "status": status,
        "labels": labels,
        "target": {},
        "opened_at": opened,
        "updated_at": resolved_at or reached,
        "resolved_at": resolved_at,
        "resolved_level": level if resolved_at else None,
        "target_key": f"bench-key-{n}",
    }
    return incident, escalations, events


def seed(engine: Engine, count: int) -> None:
    rng = random.Random(13)
    defaults = dict.fromkeys(("severity", "opened_by", "acked_by", "resolution_note"))
    json_defaults = {"annotations": {}, "policy": {}, "fields": {}, "investigation": {}, "sources": []}
    with engine.begin() as conn:
        for start in range(0, count, CHUNK):
            batch = [rows_for(n, count, rng) for n in range(start, min(count, start + CHUNK))]
            incidents = [{**defaults, **json_defaults, **inc} for inc, _, _ in batch]
            ids = conn.execute(insert(Incident).returning(col(Incident.id)), incidents).scalars().all()
            escalations = [
                {"incident_id": i, "level": lvl, "channel": "#c", "at": at, "fields": {}, "on_page": False}
                for i, (_, escs, _) in zip(ids, batch, strict=True)
                for lvl, at in escs
            ]
            events = [
                {"incident_id": i, "at": at, "kind": kind, "detail": {"level": lvl}}
                for i, (_, _, evs) in zip(ids, batch, strict=True)
                for kind, at, lvl in evs
            ]
            if escalations:
                conn.execute(insert(Escalation), escalations)
            conn.execute(insert(TimelineEvent), events)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


def median_s(run: Callable[[], Any], runs: int) -> float:
    run()  # warm-up: caches, prepared plans
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2]


def floor(engine: Engine, period: timedelta) -> None:
    query = select(func.count()).select_from(Incident)
    query = query.where(col(Incident.opened_at) >= NOW - period, col(Incident.opened_at) < NOW)
    with engine.connect() as conn:
        conn.execute(query).one()


def measure(name: str, url: str, incidents: int, runs: int) -> list[bool]:
    engine = make_engine(url)
    try:
        migrate(engine)
        began = time.perf_counter()
        seed(engine, incidents)
        with engine.connect() as conn:
            rows = {
                t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                for t in ("incidents", "escalations", "timeline")
            }
        print(f"\n{name}: seeded {rows} in {time.perf_counter() - began:.1f} s")
        print(f"{'period':>7} {'report()':>10} {'counts()':>10} {'floor':>9} {'report/floor':>13}")
        met = []
        for label, period in PERIODS.items():
            full = median_s(lambda p=period: report(engine, NOW, p), runs)
            counts = median_s(lambda p=period: period_counts(engine, NOW - p, NOW), runs)
            least = median_s(lambda p=period: floor(engine, p), runs)
            figures = f"{full * 1000:>8.1f}ms {counts * 1000:>8.1f}ms {least * 1000:>7.1f}ms"
            print(f"{label:>7} {figures} {full / least:>12.1f}x")
            if label == "90d":
                met.append(
                    verdict(
                        f"{name} report() 90d <= {TARGET_REPORT_S * 1000:.0f} ms", full <= TARGET_REPORT_S
                    )
                )
                met.append(
                    verdict(
                        f"{name} period_counts() 90d <= {TARGET_COUNTS_S * 1000:.0f} ms",
                        counts <= TARGET_COUNTS_S,
                    )
                )
        return met
    finally:
        engine.dispose()


def verdict(what: str, ok: bool) -> bool:
    print(f"  {'PASS' if ok else 'MISS'}  {what}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both", help="which database")
    parser.add_argument("--incidents", type=int, default=20000, help="incidents over 180 days")
    parser.add_argument("--runs", type=int, default=9, help="timed runs per figure (the median is shown)")
    args = parser.parse_args()
    met: list[bool] = []
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="stats-bench-") as tmp:
            met += measure("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.incidents, args.runs)
    if args.db in ("postgres", "both"):
        with FreshSchema() as url:
            met += measure("PostgreSQL", url, args.incidents, args.runs)
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
