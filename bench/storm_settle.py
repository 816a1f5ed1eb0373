"""Storm settle: 200 new incidents Level 1 cannot fix arrive in a few POSTs; how long until all is done.

    python bench/storm_settle.py [--db sqlite|postgres|both] [--incidents 200] [--posts 4] [--quiet 5]
                                 [--profile FILE]

The bot runs in-process as the sandbox runs it (Slack emulator, sandbox Kubernetes API, web server on
loopback) with its scheduler started, as in production, and the configured storm handling (the demo's
settings; storm_threshold 10 per 60 s per channel, so all but the first incidents share one storm
summary). The alerts are kube-state-metrics KubeJobFailed alerts for Jobs the sandbox cluster lacks
(Level 1's checks get a 404 at once, so each escalates to Level 2), split over `--posts` Alertmanager
groups, one POST each, all sent at once from one thread per POST. The pollers are off. Slack pacing is
off, as the sandbox has it (with the production pacing of runtime.slack_rate_per_channel, 1 post a second
per channel, 200 escalations to one channel alone take over 3 minutes).

Measured from the first POST being sent (time.monotonic):
  L1 done         the last incident's Level 1 verdict committed (status left L1): Level1Service.finish,
                  wrapped from here, returned
  L2 posted       the last escalation's chat.postMessage in the coordinator channel arrived at the
                  emulator (recorded through its on_request hook; calls carry the emulator's monotonic time)
  Slack quiet     the last Web API write, once no write came for `--quiet` s and the outbox was empty
                  (a debounced storm-summary refresh counts: it is a write Slack gets)

Targets: every L1 done within 60 s, every escalation posted within 60 s (a storm's are grouped: one
message in the coordinator channel, each incident's own in its thread), at most 5 messages in the
coordinator channel itself. `--profile FILE` runs each bot
thread under cProfile, saves the merged stats next to FILE (suffix .sqlite.prof / .postgres.prof) and
prints the bot's 15 top cumulative functions.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import json
import logging
import pstats
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common import FreshSchema, RssSampler, pct
from sqlmodel import Session, col, func, select

from bot.config import parse_config
from bot.sandbox.slack.inspection import Call
from bot.sandbox.world import DEMO_CONFIG, WEBHOOK_TOKEN, SandboxWorld, alertmanager_payload
from bot.services.level1 import Level1Service
from bot.store.tables import Incident

PATH = "/alerts/alertmanager"
WRITES = ("chat.postMessage", "chat.update", "chat.postEphemeral", "reactions.add", "views.open")
TARGET_L1_S, TARGET_L2_S = 60.0, 60.0
TARGET_TOP = 5  # "at most a handful of messages in the coordinator's channel"
ESCALATION = re.compile(r"Level 2 · INC-\d+")  # the header of one incident's escalation, or of a page
INCIDENT = re.compile(r"INC-(\d+)")  # of a storm group's members
ROOT = Path(__file__).resolve().parent.parent


def bench_config() -> dict[str, Any]:
    """The demo's settings (storm handling as configured), without the pollers."""
    off = {"enabled": False}
    return {**DEMO_CONFIG, "intake": {"pollers": {"mlflow_failed_runs": off, "kubernetes_failed_jobs": off}}}


def bodies(n: int, posts: int) -> list[bytes]:
    """`posts` Alertmanager notifications, one group (pipeline) each, of n new KubeJobFailed alerts in all."""
    out = []
    for p in range(posts):
        pipeline = f"storm-pipeline-{p:02d}"
        alerts = []
        for i in range(p, n, posts):
            job = f"{pipeline}-step-{i:04d}"
            labels = {
                "alertname": "KubeJobFailed",
                "namespace": "ml-pipelines",
                "job_name": job,
                "pipeline": pipeline,
                "reason": "BackoffLimitExceeded",
                "severity": "critical",
            }
            summary = f"Job ml-pipelines/{job} failed: BackoffLimitExceeded"
            alerts.append(
                {"labels": labels, "annotations": {"summary": summary}, "fingerprint": f"st{i:08d}"}
            )
        payload = alertmanager_payload(alerts, group_key=f'{{}}:{{pipeline="{pipeline}"}}')
        payload["groupLabels"] = {"pipeline": pipeline}
        out.append(json.dumps(payload).encode())
    return out


class Watch:
    """What the bot has done, as it happens: Web API calls (through the emulator's on_request hook) and
    Level 1 verdicts (through a wrapper on this bot's Level1Service.finish)."""

    def __init__(self, world: SandboxWorld, level1: Level1Service) -> None:
        self.cond = threading.Condition()
        self.calls: list[Call] = []
        self.verdicts: dict[int, float] = {}
        self.l2_posts: list[float] = []  # each incident's escalation, on its own or in its group's thread
        self.l2_top: list[float] = []  # messages in the coordinator channel itself (not in a thread)
        self.last_write: dict[str, float] = {}  # method → when its last call arrived
        self._l2_channel = world.slack.channel_id(world.config.slack.channels.coordinator)
        world.slack.on_request.append(self._call)
        inner = level1.finish

        def finish(incident_id: int, outcome: Any) -> None:
            inner(incident_id, outcome)
            with self.cond:
                self.verdicts.setdefault(incident_id, time.monotonic())
                self.cond.notify_all()

        setattr(level1, "finish", finish)  # noqa: B010 - an instance attribute shadowing the method

    def _call(self, call: Call) -> None:
        with self.cond:
            self.calls.append(call)
            if call.method in WRITES:
                self.last_write[call.method] = max(self.last_write.get(call.method, 0.0), call.at)
            args = call.args
            posted = call.method == "chat.postMessage" and args.get("channel") == self._l2_channel
            if posted and not args.get("thread_ts"):
                self.l2_top.append(call.at)
            text = str(args.get("text", ""))
            if posted and ESCALATION.search(text):  # incidents' escalations: one, or a page of a group's
                self.l2_posts += [call.at] * len(set(INCIDENT.findall(text.split("\n", 1)[0])))
            self.cond.notify_all()

    def last(self) -> float:
        """When the last write arrived (0.0 before any)."""
        return max(self.last_write.values(), default=0.0)

    def wait(self, predicate: Callable[[], bool], deadline: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, max(0.0, deadline - time.monotonic()))


def wait_quiet(watch: Watch, pending: Callable[[], int], quiet_s: float, deadline: float) -> bool:
    """Until no write has come for quiet_s and the outbox is empty; False at the deadline."""
    while True:
        last = watch.last()
        if watch.wait(lambda: watch.last() > last, min(deadline, last + quiet_s)):  # noqa: B023
            continue
        if time.monotonic() >= deadline:
            return False
        if pending() == 0:
            return True
        # rows due later (a debounced refresh): wait for their write
        if not watch.wait(lambda: watch.last() > last, deadline):  # noqa: B023
            return False


def post_all(url: str, payloads: list[bytes]) -> tuple[float, list[int]]:
    """POST every payload at once, one thread and connection each; when the first was sent, the statuses."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    sent: list[float] = []
    statuses: list[int] = []
    go = threading.Barrier(len(payloads))

    def client(data: bytes) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
        conn.connect()
        go.wait()
        sent.append(time.monotonic())
        conn.request("POST", PATH, body=data, headers=headers)
        resp = conn.getresponse()
        resp.read()
        statuses.append(resp.status)
        conn.close()

    threads = [threading.Thread(target=client, args=(d,), name=f"am-{i}") for i, d in enumerate(payloads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return min(sent), statuses


@dataclass
class Run:
    db: str
    l1_done: list[float]  # per incident, seconds after the first POST
    l2_posted: list[float]
    l2_top: int  # top-level messages in the coordinator channel
    last_write: dict[str, float]  # method → seconds after the first POST
    quiet: bool
    incidents: int
    in_storm: int
    still_l1: int
    writes: Counter[str]
    statuses: list[int]
    idle_mb: float
    peak_mb: float
    seconds: float


def run(
    db: str, url: str | None, n: int, posts: int, quiet_s: float, timeout: float, pace: bool = False
) -> Run:
    started = time.monotonic()
    with SandboxWorld(database_url=url, config=bench_config(), pace=pace) as world:
        bot = world.bot
        assert bot is not None
        watch = Watch(world, bot.services.level1)
        bot.start_background()
        payloads = bodies(n, posts)
        with RssSampler() as rss:
            t0, statuses = post_all(world.url, payloads)
            deadline = t0 + timeout
            watch.wait(lambda: len(watch.verdicts) >= n, deadline)
            watch.wait(lambda: len(watch.l2_posts) >= n, deadline)
            quiet = wait_quiet(watch, bot.services.outbox.pending, quiet_s, deadline)
        with Session(bot.services.engine) as s:
            incidents = int(s.exec(select(func.count()).select_from(Incident)).one())
            in_storm = int(s.exec(select(func.count()).where(col(Incident.storm_id).is_not(None))).one())
            still = int(s.exec(select(func.count()).where(col(Incident.status) == "l1_running")).one())
        with watch.cond:
            calls = list(watch.calls)
            l1 = [at - t0 for at in watch.verdicts.values()]
            l2 = [at - t0 for at in watch.l2_posts]
            top = len(watch.l2_top)
            last_write = {method: at - t0 for method, at in watch.last_write.items()}
        writes = Counter(c.method for c in calls if c.method in WRITES)
        failed = [c for c in calls if c.method in WRITES and c.status != 200]
        if failed:
            print(f"  {len(failed)} Slack writes failed, e.g. {failed[0].method} {failed[0].error}")
        return Run(
            db, l1, l2, top, last_write, quiet, incidents, in_storm, still, writes, statuses,
            rss.first, rss.peak, time.monotonic() - started,
        )  # fmt: skip


def report(r: Run, n: int, quiet_s: float) -> list[bool]:
    print(f"\n== {r.db} ==  ({r.seconds:.1f} s)")
    print(f"POST statuses: {r.statuses}   incidents: {r.incidents} ({r.in_storm} in the storm summary)")
    print(f"{'seconds after the first POST':36}{'n':>5}{'p50':>8}{'p99':>8}{'all done':>10}")
    for name, values in (("L1 done (verdict committed)", r.l1_done), ("L2 escalation posted", r.l2_posted)):
        last = max(values, default=float("nan"))
        print(f"{name:36}{len(values):>5}{pct(values, 0.5):>8.2f}{pct(values, 0.99):>8.2f}{last:>10.2f}")
    last = max(r.last_write.values(), default=float("nan"))
    print(f"{'last Slack write (then quiet)':36}{'':>5}{'':>8}{'':>8}{last:>10.2f}")
    print("  last write by method: " + ", ".join(f"{m} {t:.2f} s" for m, t in sorted(r.last_write.items())))
    if not r.quiet:
        print(f"  Slack was not quiet for {quiet_s:g} s with an empty outbox before the deadline")
    print(
        f"Slack writes: {sum(r.writes.values())}  " + ", ".join(f"{m} {k}" for m, k in r.writes.most_common())
    )
    print(f"messages in the coordinator channel itself (not in a thread): {r.l2_top}")
    print(f"incidents still at L1: {r.still_l1}")
    print(f"RSS: idle {r.idle_mb:.0f} MB, peak {r.peak_mb:.0f} MB")
    checks = [
        (f"every L1 done within {TARGET_L1_S:g} s", len(r.l1_done) == n and max(r.l1_done) <= TARGET_L1_S),
        (f"at most {TARGET_TOP} messages in the coordinator channel", r.l2_top <= TARGET_TOP),
        (
            f"every escalation posted within {TARGET_L2_S:g} s",
            len(r.l2_posted) == n and max(r.l2_posted) <= TARGET_L2_S,
        ),
    ]
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'MISS'}  {name}")
    return [ok for _, ok in checks]


class ThreadProfiles:
    """cProfile in every thread started inside the block (and this one), merged at the end."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []

    def _start(self, *_args: Any) -> None:
        profile = cProfile.Profile()
        self.profiles.append(profile)
        profile.enable()  # replaces this hook for the rest of the thread

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._start)
        self._start()
        return self

    def __exit__(self, *_exc: object) -> None:
        threading.setprofile(None)
        self.profiles[0].disable()

    def stats(self) -> pstats.Stats:
        merged = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            profile.create_stats()
            if profile.stats:
                merged.add(profile)
        return merged


def print_profile(stats: pstats.Stats, top: int = 15) -> None:
    own = (str(ROOT / "bot"), str(ROOT / "handlers"))
    rows = [
        (ct, nc, tt, f"{Path(file).relative_to(ROOT)}:{line}({name})")
        for (file, line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items()  # type: ignore[attr-defined]
        if file.startswith(own) and "/bot/sandbox/" not in file
    ]
    print(f"\nbot/ and handlers/ (sandbox aside): top {top} by cumulative time, summed over threads")
    print(f"{'cumtime s':>10}{'tottime s':>10}{'calls':>9}  function")
    for ct, nc, tt, where in sorted(rows, reverse=True)[:top]:
        print(f"{ct:>10.2f}{tt:>10.2f}{nc:>9}  {where}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--posts", type=int, default=4)
    parser.add_argument("--quiet", type=float, default=5.0, help="seconds without a Slack write")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up this long after the first POST")
    parser.add_argument("--profile", type=Path, help="profile the run; save the stats here")
    parser.add_argument(
        "--pace", action="store_true", help="Slack pacing on, as in production (slack_rate_per_channel)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    config = parse_config(bench_config())
    rt, l1, intake = config.runtime, config.levels.l1, config.intake
    pacing = f"on: {rt.slack_rate_per_channel:g} a second per channel" if args.pace else "off (sandbox)"
    print(
        f"{args.incidents} incidents in {args.posts} POSTs sent at once; storm_threshold "
        f"{intake.storm_threshold} per {intake.storm_window.total_seconds():g} s, debounce (storm "
        f"summary refresh) {intake.debounce.total_seconds():g} s\n"
        f"polling: runtime.timer_interval {rt.timer_interval.total_seconds():g} s, runtime.outbox_interval "
        f"{rt.outbox_interval.total_seconds():g} s (both also run at once when the bot kicks them), "
        f"l1_workers {rt.l1_workers}; Slack pacing {pacing}\n"
        f"Level 1: budget {l1.budget.total_seconds():g} s, {l1.max_attempts} attempts, check_timeout "
        f"{l1.check_timeout.total_seconds():g} s, verify_poll_interval "
        f"{l1.verify_poll_interval.total_seconds():g} s"
    )
    results: list[bool] = []
    for db in ("sqlite", "postgres"):
        if args.db not in (db, "both"):
            continue
        with ExitStack() as stack:
            profiles = stack.enter_context(ThreadProfiles()) if args.profile else None
            url = stack.enter_context(FreshSchema()) if db == "postgres" else None
            r = run(db, url, args.incidents, args.posts, args.quiet, args.timeout, args.pace)
        results += report(r, args.incidents, args.quiet)
        if profiles is not None:
            stats = profiles.stats()
            stats.dump_stats(args.profile.with_suffix(f".{db}.prof"))
            print_profile(stats)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
