"""Alert-storm benchmark: Alertmanager webhooks against the whole bot on loopback, next to a floor.

    python bench/alert_storm.py [--db sqlite|postgres|both] [--alerts 10000] [--batch 100] [--clients 4]

The bot runs in-process exactly as the sandbox runs it (Slack emulator, sandbox Kubernetes API, the
web server under uvicorn), with its scheduler on, so Level 1 and Slack delivery compete with intake as
they do in production. See bench/README.md for what is measured and the targets.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import logging
import multiprocessing
import queue
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func
from sqlmodel import Session, col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.app import Bot
from bot.sandbox.world import DEMO_CONFIG, WEBHOOK_TOKEN, SandboxWorld, alertmanager_payload
from bot.store.tables import Alert, Incident, OutboxMessage
from bot.web import WebServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FreshSchema, RssSampler

PATH = "/alerts/alertmanager"
PIPELINES = [
    f"{model}-{stage}"
    for model in ("churn", "fraud", "ranking", "forecast", "pricing")
    for stage in ("features", "training", "scoring", "export")
]
STEPS = (
    "extract",
    "validate",
    "join",
    "transform",
    "train",
    "evaluate",
    "register",
    "score",
    "publish",
    "notify",
)
WRITES = ("chat.postMessage", "chat.update", "chat.postEphemeral", "reactions.add", "views.open")
STORM_TEXT = re.compile(r"Alert storm")
TARGET_RATE, TARGET_P99_MS, TARGET_CALLS, TARGET_RSS_MB = 10_000.0, 100.0, 3.0, 250.0


def bench_config() -> dict[str, Any]:
    """The demo's settings, with intake rate limits out of the way and no pollers."""
    unlimited = {"per_second": 100000, "burst": 1000000}
    return {
        **DEMO_CONFIG,
        "intake": {
            "rate_limits": {"alertmanager": unlimited, "generic": unlimited, "mlflow": unlimited},
            "pollers": {
                "mlflow_failed_runs": {"enabled": False},
                "kubernetes_failed_jobs": {"enabled": False},
            },
        },
    }


def alert(pipeline: str, step: str) -> dict[str, Any]:
    """A kube-state-metrics KubeJobFailed alert for one step's Job (a Job the sandbox cluster lacks)."""
    job = f"{pipeline}-{step}"
    labels = {
        "alertname": "KubeJobFailed",
        "cluster": "sandbox",
        "namespace": "ml-pipelines",
        "job_name": job,
        "pipeline": pipeline,
        "step": step,
        "reason": "BackoffLimitExceeded",
        "severity": "critical",
        "team": "ml-platform",
    }
    return {
        "labels": labels,
        "annotations": {
            "summary": f"Job ml-pipelines/{job} failed: BackoffLimitExceeded",
            "description": f"Job ml-pipelines/{job} did not complete: the {step} step of {pipeline} stopped.",
            "runbook_url": "https://runbooks.example.com/KubeJobFailed",
        },
        "startsAt": "2026-11-26T09:00:00Z",
        "fingerprint": hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16],
    }


def deliveries(total: int, batch: int) -> list[tuple[bytes, int]]:
    """Webhook bodies of `batch` alerts each, one Alertmanager group per body (as Alertmanager sends).

    20 groups (one per pipeline) of 10 alerts: 200 fingerprints. A group has only 10 alerts, so a body of
    100 carries each of them 10 times, the way repeated notifications deliver them again."""
    bodies = []
    for n in range(total // batch):
        pipeline = PIPELINES[n % len(PIPELINES)]
        alerts = [alert(pipeline, STEPS[i % len(STEPS)]) for i in range(batch)]
        group_key = f'{{}}/{{severity="critical"}}:{{alertname="KubeJobFailed", pipeline="{pipeline}"}}'
        payload = alertmanager_payload(alerts, group_key=group_key)
        payload["groupLabels"] = {"alertname": "KubeJobFailed", "pipeline": pipeline}
        payload["commonLabels"] = {"alertname": "KubeJobFailed", "pipeline": pipeline, "team": "ml-platform"}
        bodies.append((json.dumps(payload).encode(), batch))
    return bodies


@dataclass
class Ingest:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    alerts_2xx: int = 0
    alerts_refused: int = 0

    def rate(self) -> float:
        return (self.alerts_2xx + self.alerts_refused) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def send_all(url: str, bodies: list[tuple[bytes, int]], clients: int, token: str | None) -> Ingest:
    """POST every body from `clients` threads of another process (so the senders do not share the
    measured process's interpreter lock, as Alertmanager would not), each on one keep-alive connection."""
    with multiprocessing.get_context("spawn").Pool(1) as senders:
        return senders.apply(_send_all, (url, bodies, clients, token))


def _send_all(url: str, bodies: list[tuple[bytes, int]], clients: int, token: str | None) -> Ingest:
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    work: queue.SimpleQueue[tuple[bytes, int]] = queue.SimpleQueue()
    for item in bodies:
        work.put(item)
    result, lock = Ingest(), threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=120)
        while True:
            try:
                body, count = work.get_nowait()
            except queue.Empty:
                break
            started = time.perf_counter()
            conn.request("POST", PATH, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            took = time.perf_counter() - started
            with lock:
                result.latencies.append(took)
                result.statuses[resp.status] += 1
                if 200 <= resp.status < 300:
                    result.alerts_2xx += count
                else:
                    result.alerts_refused += count
            if resp.will_close:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=120)
        conn.close()

    threads = [threading.Thread(target=client, name=f"bench-client-{i}") for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - started
    return result


def floor_app() -> Starlette:
    """The least any endpoint must do: read the body, parse the JSON, answer 200."""

    async def receive(request: Request) -> Response:
        json.loads(await request.body())
        return Response(status_code=200)

    return Starlette(routes=[Route(PATH, receive, methods=["POST"])])


def measure_floor(bodies: list[tuple[bytes, int]], clients: int) -> Ingest:
    server = WebServer(floor_app())
    url = server.start()
    try:
        return send_all(url, bodies, clients, None)
    finally:
        server.stop()


def quiesce(bot: Bot, timeout: float) -> None:
    """Stop the scheduler, let Level 1 runs in flight finish, then run timers and the outbox until idle."""
    scheduler, bot.scheduler = bot.scheduler, None
    if scheduler is not None:
        scheduler.shutdown(wait=True)
    deadline = time.monotonic() + timeout
    while bot.services.timers.busy() and time.monotonic() < deadline:
        time.sleep(0.05)
    bot.settle(timeout=timeout, max_rounds=5000)


@dataclass
class Run:
    db: str
    ingest: Ingest
    settle_s: float
    stored: int
    incidents: int
    calls: Counter[str]
    storm_calls: int
    pending: list[str]  # outbox rows not yet due (debounced refreshes), described
    rss_idle: float = 0.0
    rss_peak: float = 0.0

    @property
    def lost(self) -> int:
        return max(0, self.ingest.alerts_2xx - self.stored) + self.ingest.alerts_refused

    @property
    def writes(self) -> int:
        return sum(n for method, n in self.calls.items() if method in WRITES)

    def per_incident(self) -> float:
        return (self.writes - self.storm_calls) / self.incidents if self.incidents else 0.0


def storm_calls(world: SandboxWorld) -> int:
    """Web API writes that made or refreshed a storm summary."""
    alerts = world.config.slack.channels.alerts
    summaries = {m["ts"] for m in world.slack.messages(alerts) if STORM_TEXT.search(m.get("text", ""))}
    made = 0
    for call in world.slack.calls:
        if call.method == "chat.postMessage" and not call.args.get("thread_ts"):
            made += bool(STORM_TEXT.search(str(call.args.get("text", ""))))
        elif call.method == "chat.update":
            made += call.args.get("ts") in summaries
    return made


def run_bot(db: str, url: str | None, bodies: list[tuple[bytes, int]], clients: int) -> Run:
    with SandboxWorld(database_url=url, config=bench_config()) as world:
        bot = world.bot
        assert bot is not None
        bot.start_background()
        with RssSampler() as rss:
            ingest = send_all(world.url, bodies, clients, WEBHOOK_TOKEN)
            started = time.perf_counter()
            quiesce(bot, timeout=120)
            settle_s = time.perf_counter() - started
        with Session(bot.services.engine) as s:
            stored = int(s.exec(select(func.count()).where(Alert.source == "alertmanager")).one())
            incidents = int(s.exec(select(func.count()).select_from(Incident)).one())
            waiting = list(s.exec(select(OutboxMessage).where(col(OutboxMessage.status) == "pending")))
        now = bot.services.clock.now()
        later = [f"{r.kind} due in {(_utc(r.next_attempt_at) - now).total_seconds():.0f} s" for r in waiting]
        calls = Counter(c.method for c in world.slack.calls)
        run = Run(db, ingest, settle_s, stored, incidents, calls, storm_calls(world), later)
        run.rss_idle, run.rss_peak = rss.first, rss.peak
        return run


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def report(run: Run, floor: Ingest) -> list[tuple[str, bool]]:
    ing = run.ingest
    print(f"\n== {run.db} ==")
    print(f"{'':22}{'bot':>12}{'floor':>12}")
    print(f"{'alerts/s ingested':22}{ing.rate():>12,.0f}{floor.rate():>12,.0f}")
    print(f"{'p50 latency (ms)':22}{ing.pct(0.50):>12.1f}{floor.pct(0.50):>12.1f}")
    print(f"{'p99 latency (ms)':22}{ing.pct(0.99):>12.1f}{floor.pct(0.99):>12.1f}")
    print(f"{'wall time (s)':22}{ing.seconds:>12.2f}{floor.seconds:>12.2f}")
    print(f"{'HTTP statuses':22}{dict(ing.statuses)!s:>12}{dict(floor.statuses)!s:>12}")
    print(f"alerts accepted (2xx): {ing.alerts_2xx}   stored: {run.stored}   lost: {run.lost}")
    print(
        f"incidents opened: {run.incidents}  settled in {run.settle_s:.1f} s  outbox left: {len(run.pending)}"
    )
    print(f"resident memory: {run.rss_idle:.0f} MB at the start, {run.rss_peak:.0f} MB at the peak")
    for waiting in run.pending:
        print(f"  not yet due: {waiting}")
    print(
        f"Slack Web API calls: {sum(run.calls.values())}  "
        + ", ".join(f"{m} {n}" for m, n in run.calls.most_common())
    )
    print(
        f"Slack writes: {run.writes} (storm summary {run.storm_calls}); "
        f"per incident, summary aside: {run.per_incident():.2f}"
    )
    checks = [
        ("0 alerts lost", run.lost == 0),
        (
            f"<= {TARGET_CALLS:g} Slack calls per incident plus the storm summary",
            run.per_incident() <= TARGET_CALLS,
        ),
        (f">= {TARGET_RATE:,.0f} alerts/s", ing.rate() >= TARGET_RATE),
        (f"p99 webhook latency <= {TARGET_P99_MS:.0f} ms", ing.pct(0.99) <= TARGET_P99_MS),
        (f"peak resident memory <= {TARGET_RSS_MB:.0f} MB", run.rss_peak <= TARGET_RSS_MB),
    ]
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'MISS'}  {name}")
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if args.alerts < args.batch or args.batch < 1:
        parser.error("--alerts must be at least --batch, and --batch at least 1")
    bodies = deliveries(args.alerts, args.batch)
    print(
        f"{len(bodies)} POSTs of {args.batch} alerts, {len(PIPELINES)} groups, "
        f"{len(PIPELINES) * min(args.batch, len(STEPS))} fingerprints, {args.clients} clients"
    )
    floor = measure_floor(bodies, args.clients)
    results: list[bool] = []
    if args.db in ("sqlite", "both"):
        results += [ok for _, ok in report(run_bot("sqlite", None, bodies, args.clients), floor)]
    if args.db in ("postgres", "both"):
        with FreshSchema() as url:
            results += [ok for _, ok in report(run_bot("postgres", url, bodies, args.clients), floor)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
