"""One fault run: a world, the bot as a real process, the scenario driven from outside, at most one
SIGKILL at a seeded point followed by a restart on the same database, then quiescence and the invariants.

Kill points are external and deterministic: the k-th request of a method reaching the Slack emulator or the
Kubernetes sandbox (the bot dies with that request in flight; the stand-in still applies it, as the real
service would), or the k-th webhook / click / modal submission the bot answered 2xx (it dies right after).
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select

from bot.sandbox.kube_api import Recorded
from bot.sandbox.slack_driver import Response, SlackDriver
from bot.sandbox.slack_emulator import Call
from bot.sandbox.world import http
from bot.store.tables import OutboxMessage, Timer
from tests.fault.harness import (
    SIGNING_SECRET,
    WEBHOOK_TOKEN,
    BotProcess,
    World,
    app_config,
    bot_env,
    free_port,
    reader,
    wait_until,
)

if TYPE_CHECKING:
    from tests.fault.campaign import StartGate

# Slack methods that change something: a kill while one is in flight is a kill point.
SLACK_WRITES = ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.open")
DRIVER_METHODS = ("webhook", "block_action", "view_submission")
_KUBE_PATH = re.compile(r"/namespaces/[^/]+/(?P<resource>[a-z]+)(?:/[^/]+)?(?P<log>/log)?$")


@dataclass(frozen=True, order=True)
class KillPoint:
    source: str  # slack / kube / driver
    method: str  # chat.postMessage, "POST jobs", webhook, block_action, …
    k: int  # the k-th such request of the run (1-based)

    def __str__(self) -> str:
        when = "answered 2xx" if self.source == "driver" else "in flight"
        return f"{self.source} {self.method} #{self.k} ({when})"


@dataclass
class Event:
    t: float  # seconds since the run started
    source: str
    method: str
    k: int
    detail: str

    def __str__(self) -> str:
        return f"{self.t:6.2f}s {self.source:<6} {self.method} #{self.k}: {self.detail}"


@dataclass
class Interaction:
    """A webhook, click or submission the bot answered 2xx; `effect` is what it must lead to."""

    kind: str
    what: str
    user: str | None
    channel: str | None
    at_wall: float
    effect: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSpec:
    name: str
    db: str  # sqlite / postgres
    kill: KillPoint | None = None
    fault: str | None = None  # a name in faults.py: slack_outage_and_429 / kube_down_slow_mlflow_down


@dataclass
class RunResult:
    spec: RunSpec
    events: list[Event] = field(default_factory=list)
    killed: str | None = None  # what was in flight when the bot was killed
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    log_tail: str = ""

    def report(self) -> str:
        lines = [f"== {self.spec.name} ({self.spec.db})"]
        if self.spec.kill:
            lines.append(f"kill point: {self.spec.kill}")
            lines.append(f"killed while: {self.killed or 'the kill point was never reached'}")
        if self.spec.fault:
            lines.append(f"fault: {self.spec.fault}")
        lines.append("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items()))
        lines += [f"VIOLATION {v}" for v in self.violations]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


class BotDown(Exception):
    pass


class Run:
    """Owns the world, the bot process (and its restart), the request log and the driver's HTTP calls."""

    def __init__(self, spec: RunSpec, database_url: str | None, gate: StartGate) -> None:
        self.spec = spec
        self.result = RunResult(spec)
        self._tmpdir = tempfile.TemporaryDirectory(prefix=f"fault-{spec.name}-")
        self.tmp = Path(self._tmpdir.name)
        self.database_url = database_url or f"sqlite:///{self.tmp / 'bot.db'}"
        self.world = World(self.tmp, mlflow=spec.fault == "kube_down_slow_mlflow_down")
        self.gate = gate
        self.lock = threading.RLock()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.armed = False
        self.killed = False
        self.kill_done = threading.Event()
        self.up = threading.Event()
        self.bot: BotProcess | None = None
        self.interactions: list[Interaction] = []
        self.t0 = time.monotonic()
        self.mlflow_uri: str | None = None
        self.db = reader(self.database_url)
        self.stopped_at = datetime.now(UTC)

    # -- lifecycle --------------------------------------------------------------------------------------
    def open(self) -> None:
        self.world.start()
        self.world.slack.on_request.append(self._on_slack)
        self.world.kube.on_request.append(self._on_kube)
        if self.world.mlflow is not None:
            self.mlflow_uri = self.world.mlflow.url
        config = self.tmp / "app.yaml"
        config.write_text(json.dumps(app_config(), indent=1))  # JSON is YAML
        self.config_path = config
        self.env = bot_env(self.world, self.database_url, self.tmp, self.mlflow_uri)
        self.port = free_port()
        self._start_bot("start")

    def arm(self) -> None:
        """From now on requests are counted (and the kill point can fire)."""
        self.t0 = time.monotonic()
        self.armed = True

    def stop_bot(self) -> None:
        """A graceful stop (SIGTERM) of the current process; nothing changes while the invariants read."""
        self.stopped_at = datetime.now(UTC)
        if self.bot is not None and self.bot.alive():
            self._count_cpu(self.bot)
            code = self.bot.stop()
            if code not in (0, None):
                self.note(f"the bot exited with {code} on SIGTERM")

    def _count_cpu(self, bot: BotProcess) -> None:
        cpu = bot.cpu_seconds()
        if cpu is not None:
            self.result.timings["bot cpu"] = self.result.timings.get("bot cpu", 0.0) + cpu

    def close(self) -> None:
        self.armed = False
        if self.bot is not None:
            self.stop_bot()
            self.result.log_tail = self.bot.log_tail()
        self.world.stop()
        self.db.dispose()
        self._tmpdir.cleanup()

    def _start_bot(self, label: str) -> None:
        began = time.monotonic()
        with self.gate.slot(
            0 if label == "restart" else 2 if self.spec.name.split("-")[-1].startswith("kill") else 1
        ):  # starts cost seconds of CPU: a few at a time
            waited = time.monotonic() - began
            for attempt in range(3):
                bot = BotProcess(self.env, self.config_path, self.tmp, self.port, self.tmp / "bot.log")
                try:
                    bot.start()
                    break
                except RuntimeError:
                    if attempt == 2:
                        raise
                    self.port = free_port()  # the old port may have been taken meanwhile
        with self.lock:
            self.bot = bot
        self.result.timings[f"{label} (waited {waited:.1f}s)"] = bot.started_s
        self.up.set()

    def restart_after_kill(self) -> None:
        try:
            self._start_bot("restart")
        except RuntimeError as exc:
            self.violation(f"[scenario] the bot did not come back after the kill: {exc}")
        finally:
            self.kill_done.set()

    # -- recording and killing -------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.t0

    def note(self, text: str) -> None:
        with self.lock:
            self.result.notes.append(text)

    def violation(self, text: str) -> None:
        with self.lock:
            self.result.violations.append(text)

    def _record(self, source: str, method: str, detail: str) -> KillPoint | None:
        """Count one request; return the kill point if this is the run's kill point."""
        with self.lock:
            if not self.armed:
                return None
            self.counts[(source, method)] += 1
            k = self.counts[(source, method)]
            self.result.events.append(Event(self.now(), source, method, k, detail))
            point = KillPoint(source, method, k)
            if self.spec.kill == point and not self.killed:
                self.killed = True
                self.result.killed = f"{point}: {detail} (at {self.now():.2f}s)"
                return point
        return None

    def _kill(self) -> None:
        """SIGKILL the bot and wait until it is gone; a supervisor thread starts it again."""
        assert self.bot is not None
        self.up.clear()
        self._count_cpu(self.bot)
        self.bot.kill()
        self.note(f"killed pid {self.bot.pid} at {self.now():.2f}s")
        threading.Thread(target=self.restart_after_kill, name="supervisor", daemon=True).start()

    def _on_slack(self, call: Call) -> None:
        detail = _slack_detail(self.world, call)
        if self._record("slack", call.method, detail):
            self._kill()

    def _on_kube(self, request: Recorded) -> None:
        match = _KUBE_PATH.search(request.path)
        resource = (match["resource"] + (match["log"] or "")) if match else request.path
        name = ""
        if isinstance(request.body, dict):
            meta = request.body.get("metadata") or {}
            name = str(meta.get("name") or meta.get("generateName") or "")
        if self._record("kube", f"{request.method} {resource}", f"{request.path} {name}".strip()):
            self._kill()

    # -- the driver's side of the wire -----------------------------------------------------------------
    def send(
        self, kind: str, what: str, do: Callable[[str], Response], deadline_s: float = 150.0
    ) -> Response:
        """Send one request to the bot; when it dies under it (or is down) send it again once it is back,
        as Alertmanager retries a webhook and a person clicks again when Slack shows an error."""
        deadline = time.monotonic() + deadline_s
        while True:
            if not self.up.wait(max(0.0, deadline - time.monotonic())):
                raise BotDown(f"the bot was not up to take {what}")
            with self.lock:
                bot = self.bot
            assert bot is not None
            resp: Response | None = None
            try:
                resp = do(bot.url)
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                error = f"HTTP {resp.status}: {resp.text[:200]}" if resp.status >= 500 else ""
            if resp is not None and not error:
                point = self._record("driver", kind, what)
                if point:
                    self._kill()
                return resp
            self.note(f"{what}: no answer ({error}); sent again at {self.now():.1f}s")
            if time.monotonic() > deadline:
                raise BotDown(f"{what}: {error}")
            # either the bot died (wait for the supervisor) or the error was transient (try again shortly)
            wait_until(partial(self._gone, bot), 0.3, interval=0.05)

    def _gone(self, bot: BotProcess) -> bool:
        return not bot.alive() or not self.up.is_set()

    def webhook(self, payload: dict[str, Any], what: str) -> Response:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"}
        resp = self.send(
            "webhook", what, lambda url: http("POST", url + "/alerts/alertmanager", body, headers)
        )
        if 200 <= resp.status < 300:
            fingerprints = [a.get("fingerprint") for a in payload["alerts"]]
            self.interactions.append(
                Interaction("webhook", what, None, None, time.time(), {"fingerprints": fingerprints})
            )
        return resp

    def driver(self, url: str) -> SlackDriver:
        return SlackDriver(url, SIGNING_SECRET, self.world.slack)

    # -- quiescence ------------------------------------------------------------------------------------
    def quiet(self) -> tuple[bool, str]:
        """Nothing left for the bot to do now: no outbox row waiting or in flight, no due timer waiting or
        running (a dead process's claim on one runs out and it is taken again)."""
        now = datetime.now(UTC)
        with self.db.connect() as conn:
            outbox = conn.execute(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status.in_(("pending", "sending")))  # type: ignore[attr-defined]
            ).scalar_one()
            timers = conn.execute(
                select(func.count())
                .select_from(Timer)
                .where(
                    or_(
                        (Timer.status == "pending") & (Timer.due_at <= now),  # type: ignore[arg-type]
                        (Timer.status == "running") & (Timer.claimed_until < now),  # type: ignore[arg-type,operator]
                        # a claim a killed process held runs out and is taken again (60 s); Level 1's claim
                        # lasts 10 minutes, and its deadline timer takes over long before that
                        (Timer.status == "running") & (Timer.kind != "run_l1"),  # type: ignore[arg-type]
                    )
                )
            ).scalar_one()
        return outbox == 0 and timers == 0, f"{outbox} outbox row(s) waiting, {timers} due timer(s)"

    def wait_quiet(self, timeout: float = 150.0, stable: float = 1.5) -> None:
        began = time.monotonic()
        deadline = began + timeout
        quiet_since: float | None = None
        state = ""
        while time.monotonic() < deadline:
            if not self.up.is_set():  # a restart is still under way
                self.up.wait(max(0.0, deadline - time.monotonic()))
            ok, state = self.quiet()
            now = time.monotonic()
            if ok:
                quiet_since = quiet_since or now
                if now - quiet_since >= stable:
                    self.result.timings["quiescence"] = now - began
                    return
            else:
                quiet_since = None
            time.sleep(0.5)  # the database sends no event when the bot is done: poll it
        self.violation(f"[scenario] the bot did not become quiet within {timeout:.0f}s ({state})")


def _slack_detail(world: World, call: Call) -> str:
    args = call.args
    channel = str(args.get("channel") or "")
    with contextlib.suppress(LookupError):
        channel = "#" + world.slack.channel_name(channel) if channel else ""
    meta = args.get("metadata")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            meta = None
    outbox = (meta or {}).get("event_payload", {}).get("outbox_id") if isinstance(meta, dict) else None
    text = str(args.get("text") or "").splitlines()[0][:70] if args.get("text") else ""
    parts = [
        channel,
        f"outbox {outbox}" if outbox else "",
        "in thread" if args.get("thread_ts") else "",
        text,
    ]
    if call.method == "views.open":
        view = args.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError:
                view = {}
        parts.append(f"view {(view or {}).get('callback_id', '')}")
    return " ".join(p for p in parts if p)


def run_once(
    spec: RunSpec,
    database_url: str | None,
    gate: StartGate,
    ready: Callable[[RunSpec], None] | None = None,
) -> RunResult:
    """Run the scenarios once under `spec` and check every invariant; never raises. `ready` is called
    once the world and the bot are up and before anything is sent (e.g. to wait for the kill point)."""
    from tests.fault.invariants import check
    from tests.fault.scenario import Scenario

    began = time.monotonic()
    run = Run(spec, database_url, gate)
    try:
        run.open()
        if ready is not None:
            ready(spec)
            run.result.timings["ready"] = time.monotonic() - began
        run.arm()
        scenario = Scenario(run)
        try:
            scenario.drive()
        except Exception as exc:  # a stuck step is a finding, not a crash of the suite
            run.violation(f"[scenario] did not finish: {exc}")
            if not isinstance(exc, (TimeoutError, BotDown)):
                run.note(traceback.format_exc(limit=6))
        run.result.timings["scenario"] = run.now()
        if spec.kill and not run.killed:
            run.violation(f"[kill point] {spec.kill} was never reached (the request sequence changed)")
        if run.killed:
            run.kill_done.wait(120)
        run.wait_quiet()
        run.armed = False
        run.stop_bot()
        check(run, scenario)
    except Exception:
        run.violation("harness error:\n" + traceback.format_exc())
    finally:
        try:
            run.close()
        except Exception:
            run.note("close failed:\n" + traceback.format_exc())
    run.result.timings["total"] = time.monotonic() - began
    return run.result
