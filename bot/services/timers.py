"""Timers are rows with a due time: claimed once (SKIP LOCKED on PostgreSQL), run, and marked done.
A restart loses none of them; a claim whose process died expires and is taken again."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from bot.core.clock import Clock
from bot.core.errors import Conflict
from bot.core.models import IncidentStatus, Level
from bot.core.policy import Event, is_urgent, policy_of
from bot.integrations.slack.outbox import enqueue
from bot.logs import about
from bot.metrics import Metrics
from bot.render import escape
from bot.services import grouping
from bot.services.draining import Draining, release_timers
from bot.services.engine import IncidentEngine
from bot.services.foreground import Foreground
from bot.services.level1 import Level1Service
from bot.services.messages import Composer
from bot.services.records import latest_decision, latest_escalation, timeline
from bot.store.db import is_postgres, session_scope
from bot.store.tables import Incident, TimelineEvent, Timer

log = logging.getLogger(__name__)

# Work that can take minutes (Level 1, a decided remediation) runs on the worker pool, its claim renewed
# while it runs; everything else is quick and runs on the timer loop.
LONG_WORK = {"run_l1", "decision_action"}
STEP_ASIDE_S = 0.25  # a Level 1 run waits at most this long to start while webhook senders wait


def _waited(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


class Claim:
    """A timer this process holds. Its lease is renewed while the work runs (so a long Level 1 is never
    taken up by a second process), and checked in the same transaction as anything the work applies (so a
    process that lost the timer, say after a long pause, applies nothing)."""

    def __init__(self, engine: Engine, clock: Clock, timer_id: int, owner: str, lease: timedelta) -> None:
        self._engine, self._clock = engine, clock
        self._id, self._owner, self._lease = timer_id, owner, lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def hold(self, s: Session | None = None) -> bool:
        """Extend the lease; False (and from then on) when another process holds the timer now."""
        if self.lost:
            return False
        statement = (
            update(Timer)
            .where(
                col(Timer.id) == self._id,
                col(Timer.claimed_by) == self._owner,
                col(Timer.status) == "running",
            )
            .values(claimed_until=self._clock.now() + self._lease)
        )
        held: bool
        if s is not None:
            held = s.execute(statement).rowcount == 1  # type: ignore[attr-defined]
        else:
            with session_scope(self._engine) as own:
                held = own.execute(statement).rowcount == 1  # type: ignore[attr-defined]
        if not held:
            self.lost = True
            log.warning(
                "timer %s was taken over by another process; this one stops applying its work", self._id
            )
        return held

    def _renew(self) -> None:
        while not self._stop.wait(self._lease.total_seconds() / 3):
            try:
                if not self.hold():
                    return
            except Exception as exc:  # the database is away: the next renewal tries again
                log.warning("could not renew the claim on timer %s: %s", self._id, exc)

    def __enter__(self) -> Claim:
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self._id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class TimerService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        incidents: IncidentEngine,
        level1: Level1Service,
        composer: Composer,
        metrics: Metrics,
        foreground: Foreground,
        l1_workers: int = 4,
        lease: timedelta = timedelta(seconds=30),
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.incidents = incidents
        self.level1 = level1
        self.composer = composer
        self.metrics = metrics
        self.lease = lease
        self.foreground = foreground
        self._owner = uuid.uuid4().hex[:12]
        self._pool = ThreadPoolExecutor(max_workers=l1_workers, thread_name_prefix="l1")
        self._running: set[Future[None]] = set()
        self._handlers: dict[str, Callable[[Timer, Claim], None]] = {}
        self._long = set(LONG_WORK)
        self._persistent: set[str] = set()
        self.draining = Draining()  # set at shutdown: nothing more is claimed, /readyz answers 503
        self._unstarted: set[int] = set()  # claimed by this process, not started yet
        self._lock = threading.Lock()

    def claim(self, limit: int = 50) -> list[Timer]:
        now = self.clock.now()
        with session_scope(self.engine) as s:
            query = (
                select(Timer)
                .where(
                    col(Timer.due_at) <= now,
                    (col(Timer.status) == "pending")
                    | ((col(Timer.status) == "running") & (col(Timer.claimed_until) < now)),
                )
                .order_by(col(Timer.due_at), col(Timer.id))
                .limit(limit)
            )
            if is_postgres(self.engine):
                query = query.with_for_update(skip_locked=True)
            timers = list(s.exec(query))
            for t in timers:
                t.status, t.claimed_by = "running", self._owner
                t.claimed_until = now + self.lease
                t.attempts += 1
                s.add(t)
            return timers

    def run_due(self, inline: bool = False) -> int:
        """Run every due timer; Level 1 runs and decided remediations go to the worker pool unless
        `inline`, so they never hold up a reminder or a deadline."""
        if self.draining.is_set():
            return 0
        timers = self.claim()
        with self._lock:
            self._unstarted.update(t.id or 0 for t in timers)
        for n, t in enumerate(timers):
            if self.draining.is_set():  # shutting down: the rest go back now, for another replica
                self.release(timers[n:])
                return n
            if t.kind in self._long and not inline:
                fut = self._pool.submit(self._run_about, t, True)
                self._running.add(fut)
                fut.add_done_callback(self._running.discard)
            else:
                self._run_about(t)
        return len(timers)

    def handle(
        self, kind: str, run: Callable[[Timer, Claim], None], *, long: bool = False, persistent: bool = False
    ) -> None:
        """Run timers of `kind` with `run` (a service's own work: a drafted decision, an answer in a
        thread); `long` work goes to the worker pool, its claim renewed while it runs; `persistent` work is
        never given up (every 5 minutes at most, until the database takes it: a decision must be posted)."""
        self._handlers[kind] = run
        if long:
            self._long.add(kind)
        if persistent:
            self._persistent.add(kind)

    def busy(self) -> bool:
        return bool(self._running)

    def wait_idle(self, timeout: float) -> bool:
        """Wait for the work on the worker pool, for at most `timeout` seconds; whether it all finished."""
        return not wait(list(self._running), max(0.0, timeout)).not_done

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def release(self, timers: list[Timer] | None = None) -> int:
        """Give back the timers this process holds (or only `timers`, which it has not started) so that
        another replica takes them at once; how many went back."""
        with self._lock:
            ids = {t.id or 0 for t in timers} if timers is not None else set(self._unstarted)
            untried = ids & self._unstarted
            self._unstarted -= ids
        return release_timers(self.engine, self._owner, untried, timers is None, self.clock.now())

    def _run_about(self, t: Timer, background: bool = False) -> None:
        """Run a timer, every log line of it saying which incident and level it is about."""
        level = t.payload.get("level") or ("L1" if t.kind in ("run_l1", "l1_deadline") else None)
        with about(incident=t.incident_id, level=level, source="timer"):
            self._run(t, background)

    def _run(self, t: Timer, background: bool = False) -> None:
        if background:
            self.foreground.step_aside(STEP_ASIDE_S)  # a Level 1 run can start a moment later
            if self.draining.is_set():
                return  # not started: given back at shutdown
        with self._lock:
            self._unstarted.discard(t.id or 0)
        claim = Claim(self.engine, self.clock, t.id or 0, self._owner, self.lease)
        try:
            if t.kind in self._long:
                with claim:
                    self._dispatch(t, claim)
            else:
                self._dispatch(t, claim)
            status = "done"
        except Conflict as exc:
            log.info("timer %s %s for INC-%s no longer applies: %s", t.id, t.kind, t.incident_id, exc)
            status = "done"
        except Exception:
            log.exception("timer %s %s for INC-%s failed", t.id, t.kind, t.incident_id)
            self.metrics.timer_errors.labels(kind=t.kind).inc()
            status = "pending" if t.attempts < 5 or t.kind in self._persistent else "failed"
        with session_scope(self.engine) as s:
            values: dict[str, object] = {"status": status, "claimed_by": None, "claimed_until": None}
            if status == "pending":
                values["due_at"] = self.clock.now() + timedelta(seconds=min(30 * t.attempts, 300))
            # only while this process still holds it: another may have taken it over
            s.execute(
                update(Timer)
                .where(col(Timer.id) == t.id, col(Timer.claimed_by) == self._owner)
                .values(**values)
            )

    def _dispatch(self, t: Timer, claim: Claim) -> None:
        incident_id = t.incident_id or 0
        level = Level(t.payload["level"]) if "level" in t.payload else None
        if t.kind == "run_l1":
            self.level1.run(incident_id, fence=claim.hold)
        elif t.kind == "l1_deadline":
            self.level1.expire(incident_id)
        elif t.kind == "ack_deadline" and level:
            inc = self.incidents.get(incident_id)
            if inc.level == level.value and inc.status == IncidentStatus.OPEN.value:
                policy = policy_of(inc)
                waited = _waited(policy.ack_deadline(level, is_urgent(inc.labels)))
                self.incidents.transition(
                    incident_id,
                    Event.ACK_TIMEOUT,
                    None,
                    at_level=level,
                    reason=f"not acknowledged within {waited}",
                )
        elif t.kind in ("ack_reminder", "decision_reminder", "decision_expiry") and level:
            self._remind(t, incident_id, level)
        elif t.kind == "decision_action":
            self._act_on_decision(incident_id, t.payload, claim)
        elif t.kind in self._handlers:
            self._handlers[t.kind](t, claim)

    def _say_in_decision_thread(self, incident_id: int, text: str) -> None:
        now = self.clock.now()
        with session_scope(self.engine) as s:
            inc = s.get(Incident, incident_id)
            dec = latest_decision(s, incident_id)
            if inc is None:
                return
            channel = policy_of(inc).channel_for(Level.L4)
            parent = dec.outbox_id if dec else None
            if parent is None:  # decided with its group: said in the group's thread, naming the incident
                member = latest_escalation(s, incident_id, Level.L4)
                group = grouping.group_of(s, member) if member is not None else None
                parent, text = (group.outbox_id, f"INC-{incident_id}: {text}") if group else (None, text)
            enqueue(
                s,
                now,
                "post",
                incident_id=incident_id,
                channel=channel,
                thread_of=parent,
                **self.composer.plain(text),
            )
            timeline(s, incident_id, now, "decision_action_failed", None, detail=text)

    def _remind(self, t: Timer, incident_id: int, level: Level) -> None:
        now = self.clock.now()
        with session_scope(self.engine) as s:
            inc = s.get(Incident, incident_id)
            if inc is None or inc.level != level.value:
                return
            reminded = s.exec(
                select(TimelineEvent).where(
                    TimelineEvent.incident_id == incident_id, TimelineEvent.kind == "reminded"
                )
            )
            if any(e.detail.get("timer_id") == t.id for e in reminded):
                return  # this timer reminded already: its process died before marking it done
            waiting = IncidentStatus.DECISION_PENDING if level is Level.L4 else IncidentStatus.OPEN
            if inc.status != waiting.value:
                return
            policy = policy_of(inc)
            esc = None
            if level is Level.L4:
                dec = latest_decision(s, incident_id)
                parent = dec.outbox_id if dec else None
                started = dec.created_at if dec else now
                next_step = (
                    "The request is overdue; it stays open until someone decides."
                    if t.kind == "decision_expiry"
                    else ""
                )
            else:
                esc = latest_escalation(s, incident_id, level)
                parent = esc.outbox_id if esc else None
                started = esc.at if esc else now
                deadline = policy.ack_deadline(level, is_urgent(inc.labels))
                auto = policy.auto_escalate.get(level.value, True)
                pending = s.exec(
                    select(Timer).where(
                        Timer.incident_id == incident_id,
                        Timer.kind == "ack_deadline",
                        Timer.status == "pending",
                    )
                ).first()
                if pending is not None:  # a snooze moves the deadline: the timer says when it is
                    deadline = (_aware(pending.due_at) - _aware(started)).total_seconds()
                if auto and (now - _aware(started)).total_seconds() >= deadline:
                    return  # the deadline passed too (e.g. during a restart): escalating says enough
                next_step = f"It escalates automatically after {_waited(deadline)}." if auto else ""
            waited = _waited((now - started).total_seconds())
            if level is Level.L4:  # a member of a group's decision is reminded with the group
                esc = latest_escalation(s, incident_id, level)
            group = grouping.group_of(s, esc) if esc is not None else None
            if group is not None:
                # one reminder for the group, in its thread, not one per member
                grouping.remind(s, self.composer, group, level, waited, next_step, now)
            else:
                payload = self.composer.reminder(inc, level, waited, next_step)
                enqueue(
                    s,
                    now,
                    "post",
                    incident_id=incident_id,
                    thread_of=parent,
                    channel=policy.channel_for(level),
                    **payload,
                )
            timeline(s, incident_id, now, "reminded", None, level=level.value, timer=t.kind, timer_id=t.id)

    def _act_on_decision(self, incident_id: int, detail: dict[str, object], claim: Claim) -> None:
        """Carry out what the chosen option says; close the incident unless that action failed."""
        action = detail.get("action")
        result = None
        if action and action != "resolve":
            decision_id = detail.get("decision_id")
            ok, result = self.level1.run_action(
                incident_id,
                str(action),
                int(decision_id) if isinstance(decision_id, int) else None,
                claim.hold,
            )
            if not ok:
                self._say_in_decision_thread(
                    incident_id,
                    f":x: The chosen action did not fix it: {escape(result)}. "
                    "The incident stays open; resolve it when it is handled.",
                )
                return
        note = f"Decision: {detail.get('choice')}" + (f"; {result}" if result else "")

        def apply(_s: object, inc: Incident) -> None:
            inc.resolution_note = note

        self.incidents.transition(incident_id, Event.RESOLVE, None, at_level=Level.L4, apply=apply, note=note)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)
