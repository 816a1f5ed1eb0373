"""Outages injected at named stages of the scenarios, and what each must have done to be a real test.

slack_outage_and_429: every Web API call answers 500 for 5 s from the moment scenario B's webhook is
    answered (its root message, L1 report and L2 escalation fall in it); then chat.postMessage and
    chat.update answer 429 with Retry-After: 1 for 6 s from scenario C's webhook.
kube_down_slow_mlflow_down: the MLflow tracking server answers 503 until scenario B is done (scenario A's
    alert names an MLflow run, so Level 1 asks it); the Kubernetes API answers 500 to everything while
    scenario B's Level 1 runs; every Kubernetes request takes 0.3 s longer while scenario C's Level 1 runs.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from tests.fault.harness import Latency

if TYPE_CHECKING:
    from tests.fault.run import Run

RUN_ID = "5f3e2a1b9c8d4e7f8a6b5c4d3e2f1a0b"  # a FAILED run in the sandbox MLflow's default fixture


class Faults:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.kind = run.spec.fault
        self.latency: Latency | None = None
        self.windows: dict[str, tuple[float, float | None]] = {}

    def alert_labels(self, key: str) -> dict[str, str]:
        """Extra labels for a scenario's alert."""
        return {"run_id": RUN_ID} if self.kind == "kube_down_slow_mlflow_down" and key == "A" else {}

    def stage(self, name: str) -> None:
        w = self.run.world
        if self.kind == "slack_outage_and_429":
            if name == "B answered":
                w.slack.fail_for("*", 5.0, 500)
                self._open("slack 500", 5.0)
            elif name == "C answered":
                for method in ("chat.postMessage", "chat.update"):
                    w.slack.fail_for(method, 6.0, 429, retry_after=1)
                self._open("slack 429", 6.0)
        elif self.kind == "kube_down_slow_mlflow_down":
            if name == "start":
                assert w.mlflow is not None
                w.mlflow.down(503)
                self._open("mlflow 503")
            elif name == "B answered":
                w.kube.fail("/", 500)
                self._open("kube 500")
            elif name == "B at L2":
                w.kube.clear_faults()
                self._close("kube 500")
            elif name == "B done":
                assert w.mlflow is not None
                w.mlflow.up()
                self._close("mlflow 503")
            elif name == "C answered":
                self.latency = Latency(0.3)
                w.kube.on_request.append(self.latency)
                self._open("kube +0.3s")
            elif name == "C at L2" and self.latency is not None:
                self.latency.clear()
                w.kube.on_request.remove(self.latency)
                self._close("kube +0.3s")
        if name == "end":
            for fault in list(self.windows):
                self._close(fault)

    def _open(self, fault: str, seconds: float | None = None) -> None:
        now = self.run.now()
        self.windows[fault] = (now, now + seconds if seconds else None)
        self.run.note(f"fault {fault} from {now:.1f}s" + (f" for {seconds:g}s" if seconds else ""))

    def _close(self, fault: str) -> None:
        start, end = self.windows.get(fault, (self.run.now(), None))
        if end is None:
            self.windows[fault] = (start, self.run.now())
            self.run.note(f"fault {fault} cleared at {self.run.now():.1f}s")

    # -- did the fault bite, and did the bot behave under it -------------------------------------------
    def check(self) -> list[str]:
        w = self.run.world
        problems = []
        if self.kind == "slack_outage_and_429":
            calls = w.slack.calls
            if not any(c.status == 500 for c in calls):
                problems.append("the Slack outage answered no call with 500")
            if not any(c.status == 429 for c in calls):
                problems.append("the 429 storm answered no call with 429")
            problems += _retry_after_honoured(calls)
        elif self.kind == "kube_down_slow_mlflow_down":
            if w.mlflow is None or not w.mlflow.requests:
                problems.append("Level 1 never asked MLflow while it was down")
            start, end = self.windows.get("kube 500", (0.0, 0.0))
            if start == end:
                problems.append("the Kubernetes outage never started")
        return problems


def _outbox_id(args: dict[str, Any]) -> int | None:
    meta = args.get("metadata")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            return None
    value = (meta or {}).get("event_payload", {}).get("outbox_id") if isinstance(meta, dict) else None
    return int(value) if isinstance(value, int) else None


def _retry_after_honoured(calls: list[Any]) -> list[str]:
    """After a 429 with Retry-After: 1, the same message is not tried again within that second."""
    problems = []
    by_message: dict[tuple[str, int | str], list[Any]] = defaultdict(list)
    for c in calls:
        if c.method == "chat.postMessage" and _outbox_id(c.args) is not None:
            by_message[(c.method, _outbox_id(c.args) or 0)].append(c)
        elif c.method == "chat.update":
            by_message[(c.method, str(c.args.get("ts")))].append(c)
    for (method, key), tries in by_message.items():
        for before, after in itertools.pairwise(tries):
            if before.status == 429 and after.at - before.at < 1.0 - 0.05:
                problems.append(
                    f"{method} for {key} was tried again {after.at - before.at:.2f}s after a 429 "
                    "that said Retry-After: 1"
                )
    return problems
