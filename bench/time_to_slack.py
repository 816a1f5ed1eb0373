"""Time to Slack: from an Alertmanager POST to the incident's messages, one new alert per POST, no storm.

    python bench/time_to_slack.py [--db sqlite|postgres|both] [--incidents 100] [--interval 0.25]

The bot runs in-process as the sandbox runs it (Slack emulator, sandbox Kubernetes API, web server on
loopback) with its scheduler started, as in production. Each of `--incidents` POSTs carries one new
kube-state-metrics KubeJobFailed alert for a Job the sandbox cluster lacks, so Level 1's checks get a 404
at once and the incident escalates to Level 2. POSTs go out on a fixed schedule, one every `--interval`
seconds, on one keep-alive connection. `intake.storm_threshold` is raised to 10,000 so these arrivals
(faster than the default 10 new incidents a minute) are not summarised as a storm; the pollers are off.

Per incident, from the moment its POST is sent (time.monotonic) to the arrival at the Slack emulator
(each recorded call's `at`, the emulator's time.monotonic) of:
  root message  chat.postMessage in the alerts channel (the outbox row intake queued for it)
  L1 report     chat.postMessage in that message's thread (queued by Level1Service.finish)
  L2 posted     chat.postMessage in the coordinator channel (the escalation's outbox row)
Calls are tied to incidents by the outbox id every post carries in its message metadata. The commit of
Level 1's verdict is timed by wrapping the bot's Level1Service.finish from here, for context.

Targets: root message p50 <= 1 s and p99 <= 2 s, and every incident's three messages posted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from common import FreshSchema, RssSampler, pct
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.config import parse_config
from bot.sandbox.slack.inspection import Call
from bot.sandbox.world import DEMO_CONFIG, WEBHOOK_TOKEN, SandboxWorld, alertmanager_payload
from bot.services.level1 import Level1Service
from bot.store.tables import Escalation, Incident, OutboxMessage

PATH = "/alerts/alertmanager"
WRITES = ("chat.postMessage", "chat.update", "chat.postEphemeral", "reactions.add", "views.open")
TARGET_P50_S, TARGET_P99_S = 1.0, 2.0


def bench_config() -> dict[str, Any]:
    """The demo's settings; no storm summaries for these arrivals, and no pollers."""
    return {
        **DEMO_CONFIG,
        "intake": {
            "storm_threshold": 10_000,
            "pollers": {
                "mlflow_failed_runs": {"enabled": False},
                "kubernetes_failed_jobs": {"enabled": False},
            },
        },
    }


def job_name(n: int) -> str:
    return f"fraud-features-step-{n:04d}"


def body(n: int) -> bytes:
    """One Alertmanager notification with one new KubeJobFailed alert (a Job the sandbox cluster lacks)."""
    job = job_name(n)
    labels = {
        "alertname": "KubeJobFailed",
        "namespace": "ml-pipelines",
        "job_name": job,
        "pipeline": "fraud-features",
        "reason": "BackoffLimitExceeded",
        "severity": "critical",
        "team": "ml-platform",
    }
    alert = {
        "labels": labels,
        "annotations": {"summary": f"Job ml-pipelines/{job} failed: BackoffLimitExceeded"},
        "fingerprint": f"ttslack{n:09d}",
    }
    group_key = f'{{}}:{{alertname="KubeJobFailed", job_name="{job}"}}'
    return json.dumps(alertmanager_payload([alert], group_key=group_key)).encode()


class SlackLog:
    """Every Web API call the emulator receives, kept as it arrives (through its public on_request hook)."""

    def __init__(self, world: SandboxWorld) -> None:
        self.cond = threading.Condition()
        self.calls: list[Call] = []
        self.l2_channel = world.slack.channel_id(world.config.slack.channels.coordinator)
        self.l2_posts = 0
        world.slack.on_request.append(self._seen)

    def _seen(self, call: Call) -> None:
        with self.cond:
            self.calls.append(call)
            args = call.args
            top_level = call.method == "chat.postMessage" and not args.get("thread_ts")
            self.l2_posts += top_level and args.get("channel") == self.l2_channel
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def first_post_at(self) -> dict[int, float]:
        """Outbox id → when its first successful chat.postMessage arrived."""
        seen: dict[int, float] = {}
        for call in self.calls:
            meta = call.args.get("metadata")
            if call.method == "chat.postMessage" and call.status == 200 and isinstance(meta, dict):
                outbox_id = meta.get("event_payload", {}).get("outbox_id")
                if isinstance(outbox_id, int):
                    seen.setdefault(outbox_id, call.at)
        return seen


def time_l1_verdicts(level1: Level1Service) -> dict[int, float]:
    """Wrap Level1Service.finish (this instance only): incident id → when its verdict was committed."""
    done: dict[int, float] = {}
    inner = level1.finish

    def finish(incident_id: int, outcome: Any) -> None:
        inner(incident_id, outcome)
        done.setdefault(incident_id, time.monotonic())

    setattr(level1, "finish", finish)  # noqa: B010 - an instance attribute shadowing the method
    return done


def send_scheduled(url: str, bodies: list[bytes], interval: float) -> tuple[list[float], list[float]]:
    """POST each body at its slot on one keep-alive connection; when each was sent, how long it took."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
    sent: list[float] = []
    took: list[float] = []
    start = time.monotonic()
    for n, data in enumerate(bodies):
        slot = start + n * interval - time.monotonic()
        if slot > 0:
            time.sleep(slot)  # the arrival schedule, not a wait for the bot
        at = time.monotonic()
        conn.request("POST", PATH, body=data, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"POST {n} answered {resp.status}")
        sent.append(at)
        took.append(time.monotonic() - at)
    conn.close()
    return sent, took


@dataclass
class Run:
    db: str
    answered: list[float]
    stages: dict[str, list[float]]  # stage → seconds after the POST, one per incident that reached it
    gaps: dict[str, list[float]]
    incidents: int
    writes: Counter[str]
    idle_mb: float
    peak_mb: float
    seconds: float


GAPS = {"verdict→report": ("verdict", "report"), "report→l2": ("report", "l2")}


def stage_times(
    engine: Engine, posted: dict[int, float], verdicts: dict[int, float], sent: list[float]
) -> tuple[dict[str, list[float]], dict[str, list[float]], int]:
    """Per stage, seconds from each incident's POST; per gap, seconds between two stages; incidents."""
    sent_by_job = {job_name(i): at for i, at in enumerate(sent)}
    with Session(engine) as s:
        incidents = list(s.exec(select(Incident)))
        l2 = {e.incident_id: e.outbox_id for e in s.exec(select(Escalation).where(Escalation.level == "L2"))}
        reports: dict[int, int] = {}  # an incident's first reply in its root's thread: the L1 report
        replies = s.exec(select(OutboxMessage).where(col(OutboxMessage.thread_of).is_not(None)))
        for row in sorted(replies, key=lambda r: r.id or 0):
            if row.incident_id is not None:
                reports.setdefault(row.incident_id, row.id or 0)
    stages: dict[str, list[float]] = {"root": [], "verdict": [], "report": [], "l2": []}
    gaps: dict[str, list[float]] = {gap: [] for gap in GAPS}
    for inc in incidents:
        t0, i = sent_by_job[inc.labels["job_name"]], inc.id or 0
        at = {
            "root": posted.get(inc.alert_outbox_id or -1),
            "verdict": verdicts.get(i),
            "report": posted.get(reports.get(i, -1)),
            "l2": posted.get(l2.get(i) or -1),
        }
        for stage, when in at.items():
            if when is not None:
                stages[stage].append(when - t0)
        for gap, (a, b) in GAPS.items():
            first, then = at[a], at[b]
            if first is not None and then is not None:
                gaps[gap].append(then - first)
    return stages, gaps, len(incidents)


def run(db: str, url: str | None, n: int, interval: float, timeout: float) -> Run:
    started = time.monotonic()
    with SandboxWorld(database_url=url, config=bench_config()) as world:
        bot = world.bot
        assert bot is not None
        log = SlackLog(world)
        verdicts = time_l1_verdicts(bot.services.level1)
        bot.start_background()
        bodies = [body(i) for i in range(n)]
        with RssSampler() as rss:
            sent, answered = send_scheduled(world.url, bodies, interval)
            if not log.wait(lambda: log.l2_posts >= n, timeout):
                print(f"  only {log.l2_posts} of {n} escalations posted within {timeout:.0f} s")
        stages, gaps, incidents = stage_times(bot.services.engine, log.first_post_at(), verdicts, sent)
        writes = Counter(c.method for c in log.calls if c.method in WRITES)
        seconds = time.monotonic() - started
        return Run(db, answered, stages, gaps, incidents, writes, rss.first, rss.peak, seconds)


LABELS = {
    "root": "alert → root message",
    "verdict": "alert → L1 verdict committed",
    "report": "alert → L1 report in thread",
    "l2": "alert → L2 escalation posted",
}


def report(r: Run, n: int) -> list[bool]:
    print(f"\n== {r.db} ==  ({r.seconds:.1f} s)")
    print(f"{'seconds':34}{'n':>5}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}")

    def row(name: str, values: list[float]) -> None:
        qs = [pct(values, q) for q in (0.5, 0.95, 0.99)] + [max(values, default=0.0)]
        print(f"{name:34}{len(values):>5}" + "".join(f"{v:>8.3f}" for v in qs))

    row("webhook answered", r.answered)
    for stage, label in LABELS.items():
        row(label, r.stages[stage])
    for gap, values in r.gaps.items():
        row(f"  gap {gap}", values)
    print(
        f"incidents opened: {r.incidents}   Slack writes: {sum(r.writes.values())} "
        + ", ".join(f"{m} {k}" for m, k in r.writes.most_common())
    )
    print(f"RSS: idle {r.idle_mb:.0f} MB, peak {r.peak_mb:.0f} MB")
    root = r.stages["root"]
    checks = [
        (f"alert → root message p50 <= {TARGET_P50_S:g} s", bool(root) and pct(root, 0.5) <= TARGET_P50_S),
        (f"alert → root message p99 <= {TARGET_P99_S:g} s", bool(root) and pct(root, 0.99) <= TARGET_P99_S),
        (
            f"all {n} incidents: root, L1 report and L2 posted",
            r.incidents == n and all(len(r.stages[s]) == n for s in ("root", "report", "l2")),
        ),
    ]
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'MISS'}  {name}")
    return [ok for _, ok in checks]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--incidents", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between POSTs")
    parser.add_argument("--timeout", type=float, default=60.0, help="wait this long for the last L2 post")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    runtime = parse_config(bench_config())
    rt, l1 = runtime.runtime, runtime.levels.l1
    print(
        f"{args.incidents} incidents, one POST each, every {args.interval:g} s; storm_threshold "
        f"{runtime.intake.storm_threshold} (raised from 10)\n"
        f"polling: runtime.timer_interval {rt.timer_interval.total_seconds():g} s, "
        f"runtime.outbox_interval {rt.outbox_interval.total_seconds():g} s (both also run at once when "
        f"the bot kicks them); l1_workers {rt.l1_workers}; Slack pacing off (sandbox)\n"
        f"Level 1: budget {l1.budget.total_seconds():g} s, {l1.max_attempts} attempts, "
        f"verify_poll_interval {l1.verify_poll_interval.total_seconds():g} s\n"
    )
    results: list[bool] = []
    if args.db in ("sqlite", "both"):
        results += report(run("sqlite", None, args.incidents, args.interval, args.timeout), args.incidents)
    if args.db in ("postgres", "both"):
        with FreshSchema() as url:
            results += report(
                run("postgres", url, args.incidents, args.interval, args.timeout), args.incidents
            )
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
