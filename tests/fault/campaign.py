"""All runs of the fault suite, scheduled together so their idle waits overlap: a reference run (no kill,
SQLite) records the request sequence; a seed picks the kill points from it; every kill run (on SQLite and
on PostgreSQL) and every outage run then goes in parallel, a few process starts at a time."""

from __future__ import annotations

import heapq
import itertools
import random
import re
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from tests.fault.harness import fresh_schema
from tests.fault.run import DRIVER_METHODS, SLACK_WRITES, Event, KillPoint, RunResult, RunSpec, run_once

POINTS = 20
KILL_IDS = [f"kill{i:02d}" for i in range(POINTS)]
FAULT_IDS = ["slack_outage_and_429", "kube_down_slow_mlflow_down"]
# How many of the 20 kill points each kind of request gets (the Job creations all get one).
QUOTA = {
    ("kube", "POST jobs"): None,
    ("driver", "*"): 6,
    ("slack", "chat.postMessage"): 6,
    ("slack", "chat.update"): 2,
    ("slack", "views.open"): 1,
    ("slack", "chat.postEphemeral"): 1,
}


def pick_points(events: list[Event], seed: int, n: int = POINTS) -> list[tuple[KillPoint, str]]:
    """`n` kill points from a run's request sequence, chosen by `seed`: every Job creation, the decision
    click, then a seeded sample per kind of request (topped up from the rest if a kind runs short)."""
    rng = random.Random(seed)
    candidates = [
        e
        for e in events
        if (e.source == "kube" and e.method == "POST jobs")
        or (e.source == "slack" and e.method in SLACK_WRITES)
        or (e.source == "driver" and e.method in DRIVER_METHODS)
    ]
    chosen: list[Event] = []

    def bucket(key: tuple[str, str]) -> list[Event]:
        return [
            e
            for e in candidates
            if e.source == key[0] and (key[1] == "*" or e.method == key[1]) and e not in chosen
        ]

    chosen += bucket(("kube", "POST jobs"))
    chosen += [e for e in bucket(("driver", "*")) if e.detail.startswith("Choose ")][:1]
    for key, quota in QUOTA.items():
        if quota is None:
            continue
        already = sum(1 for e in chosen if e.source == key[0] and (key[1] == "*" or e.method == key[1]))
        pool = bucket(key)
        chosen += rng.sample(pool, max(0, min(len(pool), quota - already)))
    rest = [e for e in candidates if e not in chosen]
    chosen += rng.sample(rest, max(0, min(len(rest), n - len(chosen))))
    # numbered by (source, method, k), not by time, so kill07 names the same request from run to run
    chosen = sorted(chosen[:n], key=lambda e: (e.source, e.method, e.k))
    return [(KillPoint(e.source, e.method, e.k), e.detail) for e in chosen]


class StartGate:
    """At most `slots` bot processes start at once (a start is seconds of CPU); restarts go first."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._cond = threading.Condition()
        self._queue: list[tuple[int, int]] = []
        self._serial = itertools.count()

    def acquire(self, priority: int) -> None:
        with self._cond:
            ticket = (priority, next(self._serial))
            heapq.heappush(self._queue, ticket)
            self._cond.wait_for(lambda: self._free > 0 and self._queue[0] == ticket)
            heapq.heappop(self._queue)
            self._free -= 1
            self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify_all()

    def slot(self, priority: int) -> _Slot:
        return _Slot(self, priority)


class _Slot:
    def __init__(self, gate: StartGate, priority: int) -> None:
        self.gate, self.priority = gate, priority

    def __enter__(self) -> None:
        self.gate.acquire(self.priority)

    def __exit__(self, *_exc: object) -> None:
        self.gate.release()


@dataclass
class Campaign:
    seed: int
    pg_base: str | None
    wanted: set[str]  # run ids "<db>-<name>" the selected tests need
    started: float = field(default_factory=time.monotonic)
    points: list[tuple[KillPoint, str]] = field(default_factory=list)
    reference: RunResult | None = None
    futures: dict[str, Future[RunResult]] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.gate = StartGate(6)
        self.pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="fault-run")
        # each bot process holds up to 10 PostgreSQL connections; the server allows 100 in all
        self.pg_slots = threading.BoundedSemaphore(6)
        self._ready = threading.Event()

    # -- scheduling ------------------------------------------------------------------------------------
    def start(self) -> None:
        needs_points = any(k.split("-", 1)[1].startswith("kill") for k in self.wanted)
        if needs_points or "sqlite-baseline" in self.wanted:
            self.futures["sqlite-baseline"] = self.pool.submit(self._reference)
        else:
            self._ready.set()
        # runs that need no kill point first: they can start at once
        for run_id in sorted(self.wanted, key=lambda r: ("-kill" in r, r)):
            db, name = run_id.split("-", 1)
            if name == "baseline" and db == "sqlite":
                continue
            if name.startswith("kill"):
                self.futures[run_id] = self.pool.submit(self._after_reference, db, name)
            else:
                self.futures[run_id] = self.pool.submit(
                    self._one, RunSpec(f"{db}-{name}", db, fault=self._fault(name))
                )

    @staticmethod
    def _fault(name: str) -> str | None:
        return None if name == "baseline" else name

    def _reference(self) -> RunResult:
        result = self._one(RunSpec("sqlite-baseline", "sqlite"))
        self.reference = result
        self.points = pick_points(result.events, self.seed)
        self._ready.set()
        return result

    def _after_reference(self, db: str, name: str) -> RunResult:
        """A kill run: its world and bot start while the reference runs; it drives once the points exist."""
        index = KILL_IDS.index(name)

        def ready(spec: RunSpec) -> None:
            self._ready.wait()
            if index >= len(self.points):
                raise LookupError(f"the reference run offered only {len(self.points)} kill points")
            spec.kill = self.points[index][0]

        return self._one(RunSpec(f"{db}-{name}", db), ready)

    def _one(self, spec: RunSpec, ready: Callable[[RunSpec], None] | None = None) -> RunResult:
        try:
            if spec.db == "postgres":
                assert self.pg_base is not None
                with self.pg_slots, fresh_schema(self.pg_base) as url:
                    result = run_once(spec, url, self.gate, ready)
            else:
                result = run_once(spec, None, self.gate, ready)
        finally:
            self.finished[spec.name] = time.monotonic() - self.started
        if spec.kill is not None and result.killed:
            expected = next((d for p, d in self.points if p == spec.kill), "")

            def same(text: str) -> str:
                return re.sub(r"outbox \d+ ", "", text.split(" (at ")[0])

            if expected and same(expected) not in same(result.killed):
                result.notes.append(f"in the reference run this kill point was: {expected}")
        return result

    # -- results ---------------------------------------------------------------------------------------
    def result(self, run_id: str) -> RunResult:
        return self.futures[run_id].result()

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def summary(self) -> list[str]:
        lines = [f"fault suite: seed {self.seed} (FAULT_SEED to change it)"]
        if self.points:
            lines.append("kill points (from the reference run's request sequence):")
            lines += [f"  {KILL_IDS[i]}: {p} — {d[:90]}" for i, (p, d) in enumerate(self.points)]
        for run_id, future in sorted(self.futures.items()):
            if future.done() and not future.exception():
                r = future.result()
                status = f"{len(r.violations)} violation(s)" if r.violations else "ok"
                timing = ", ".join(f"{k} {v:.1f}s" for k, v in r.timings.items())
                lines.append(f"  {run_id:<36} {status:<16} {timing}")
                if r.killed:
                    lines.append(f"      killed while {r.killed}")
                lines += [f"      {v.splitlines()[0][:200]}" for v in r.violations]
        own = resource.getrusage(resource.RUSAGE_SELF)
        bots = sum(
            f.result().timings.get("bot cpu", 0.0)
            for f in self.futures.values()
            if f.done() and not f.exception()
        )
        wall = max(self.finished.values(), default=time.monotonic() - self.started)
        lines.append(
            f"fault suite wall time: {wall:.1f}s (start to last run done); CPU: bot processes {bots:.0f}s, "
            f"this whole pytest process {own.ru_utime + own.ru_stime:.0f}s"
        )
        return lines
