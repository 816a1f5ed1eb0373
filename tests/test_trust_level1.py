"""Level 1 never remediates twice: its claim is renewed while it runs, an attempt that was being applied
when its process died is not applied again, and a decided remediation runs off the timer loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.core.clock import FakeClock
from bot.core.models import ActionId, AttemptResult, AttemptStatus, IncidentStatus
from bot.sandbox.kube_api import succeed_if_memory_at_least
from bot.sandbox.world import (
    COORDINATOR,
    DECIDER,
    DEMO_CONFIG,
    OOM_ALERT,
    PIPELINE_ALERT,
    TECH_LEAD,
    SandboxWorld,
    alertmanager_payload,
)
from bot.services.timers import TimerService
from bot.store.db import session_scope
from bot.store.tables import Incident, RemediationAttempt, Timer
from tests.shown import shown

LEASE_S = 3
CONFIG = {
    **DEMO_CONFIG,
    "levels": {"l1": {"verify_poll_interval": "1s", "budget": "1h"}},
    "runtime": {"claim_lease": f"{LEASE_S}s"},
}
JOBS = "/apis/batch/v1/namespaces/ml-pipelines/jobs"


@pytest.fixture
def world(clock: FakeClock) -> Iterator[SandboxWorld]:
    with SandboxWorld(clock=clock, config=CONFIG) as w:
        yield w


def job_creations(world: SandboxWorld) -> int:
    return len([r for r in world.kube.requests if r.method == "POST" and r.path == JOBS])


def timer(world: SandboxWorld, kind: str, incident_id: int = 1) -> Timer:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return s.exec(select(Timer).where(Timer.kind == kind, Timer.incident_id == incident_id)).one()


def attempts(world: SandboxWorld) -> list[RemediationAttempt]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(RemediationAttempt).order_by(col(RemediationAttempt.id))))


def incident(world: SandboxWorld, incident_id: int = 1) -> Incident:
    assert world.bot is not None
    return world.bot.services.queries.get(incident_id)


def another_replica(world: SandboxWorld) -> TimerService:
    """A second process's timer service on the same database."""
    assert world.bot is not None
    s = world.bot.services
    return TimerService(
        s.engine, s.clock, s.transitions, s.level1, s.composer, s.metrics, s.foreground, 1, s.timers.lease
    )


def wait_until(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # a background thread's progress: poll for it
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def start_level_1_and_hold_its_remediation(world: SandboxWorld) -> None:
    """The OOM alert's Level 1 runs on the worker pool and blocks while creating its re-run Job."""
    assert world.bot is not None
    world.kube.hang(JOBS, method="POST")
    assert world.post_alerts(alertmanager_payload([OOM_ALERT])).status == 202
    world.bot.services.outbox.deliver_due()
    assert world.bot.services.timers.run_due() >= 1  # run_l1 goes to the pool
    world.kube.wait_for(lambda r: r.method == "POST" and r.path == JOBS, timeout=20)


def test_a_level_1_run_longer_than_its_claim_keeps_it_and_no_other_process_runs_it_again(
    world: SandboxWorld, clock: FakeClock
) -> None:
    start_level_1_and_hold_its_remediation(world)
    clock.advance(10 * LEASE_S)  # far past the lease the run was claimed with

    # the running process renews its claim while Level 1 runs
    assert wait_until(lambda: timer(world, "run_l1").claimed_until > clock.now())
    assert [t.kind for t in another_replica(world).claim() if t.kind == "run_l1"] == []

    world.kube.release_hangs()
    world.settle()
    assert wait_until(lambda: not world.bot.services.timers.busy())  # type: ignore[union-attr]
    world.settle()
    assert job_creations(world) == 1
    assert timer(world, "run_l1").status == "done"
    assert incident(world).status == IncidentStatus.RESOLVED.value  # 4Gi was enough


def test_an_attempt_being_applied_when_its_process_died_is_not_applied_again_by_the_next_one(
    world: SandboxWorld, clock: FakeClock
) -> None:
    start_level_1_and_hold_its_remediation(world)
    [applying] = attempts(world)
    assert (applying.status, applying.attempt) == (AttemptStatus.APPLYING.value, 1)
    # The process dies: nobody renews its claim any more, and another process takes the timer.
    assert world.bot is not None
    with session_scope(world.bot.services.engine) as s:
        s.execute(update(Timer).where(col(Timer.kind) == "run_l1").values(claimed_by="dead-process"))
    clock.advance(2 * LEASE_S)

    restarted = another_replica(world)
    assert restarted.run_due(inline=True) >= 1
    world.settle()

    assert job_creations(world) == 1  # only the dead process's
    inc = incident(world)
    assert inc.level == "L2"
    [interrupted] = attempts(world)
    assert interrupted.status == AttemptStatus.INTERRUPTED.value
    [l2] = world.slack.messages("#data-coordinator")
    assert "its outcome is unknown, so it is not applied again" in shown(l2)
    world.kube.release_hangs()  # what the dead process had sent arrives; it applies nothing more
    assert wait_until(lambda: not world.bot.services.timers.busy())  # type: ignore[union-attr]
    assert job_creations(world) == 1


def test_a_decided_remediation_runs_off_the_timer_loop_so_reminders_are_not_held_up(
    world: SandboxWorld, clock: FakeClock
) -> None:
    world.kube.on_job_created = succeed_if_memory_at_least("64Gi")  # Level 1's re-run fails: on to L4
    assert world.post_alerts(alertmanager_payload([OOM_ALERT])).status == 202
    world.settle()
    [l2] = world.slack.messages("#data-coordinator")
    world.click(COORDINATOR, ActionId.ESCALATE_L3, "#data-coordinator", l2["ts"])
    world.settle()
    world.submit_latest_view(
        COORDINATOR,
        {
            "trigger": {"value": world.driver.select_value("scalability")},  # type: ignore[union-attr]
            "reason": {"value": world.driver.text_value("8Gi is not enough")},  # type: ignore[union-attr]
        },
    )
    world.settle()
    [l3] = world.slack.messages("#tech-leads")
    world.click(TECH_LEAD, ActionId.ASK_DECISION, "#tech-leads", l3["ts"])
    world.settle()
    world.submit_latest_view(TECH_LEAD, {"question": {"value": world.driver.text_value("Retry?")}})  # type: ignore[union-attr]
    world.settle()
    [l4] = world.slack.messages("#ml-decisions")
    assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202
    world.settle()  # INC-2 waits at L2 for an acknowledgement
    assert incident(world, 2).status == IncidentStatus.OPEN.value

    world.kube.hang(JOBS, method="POST")  # the decided re-run takes its time
    world.click(DECIDER, f"{ActionId.DECISION_OPTION}_0", "#ml-decisions", l4["ts"])
    assert world.bot is not None
    world.bot.listeners.wait_idle(10)
    clock.advance(timedelta(minutes=10).total_seconds())  # INC-2 is critical: reminded at 7.5 of 15 minutes
    loop = threading.Thread(target=world.bot.services.timers.run_due)
    loop.start()
    loop.join(timeout=10)

    assert not loop.is_alive()  # the timer loop came back while the remediation still runs
    assert world.bot.services.timers.busy()
    world.bot.services.outbox.deliver_due()
    [l2_inc2] = [m for m in world.slack.messages("#data-coordinator") if "INC-2" in m["text"]]
    reminders = world.slack.thread("#data-coordinator", l2_inc2["ts"])
    assert any("has waited" in r["text"] for r in reminders)

    world.kube.on_job_created = succeed_if_memory_at_least("4Gi")
    world.kube.release_hangs()
    assert wait_until(lambda: not world.bot.services.timers.busy())  # type: ignore[union-attr]
    world.settle()
    assert incident(world).status == IncidentStatus.RESOLVED.value
    decided = [a for a in attempts(world) if a.attempt == 0]
    assert [a.status for a in decided] == [AttemptStatus.FIXED.value]


def test_an_attempt_never_applied_is_recorded_once_when_level_1_runs_again(world: SandboxWorld) -> None:
    """A run that died after recording a refused attempt, and before escalating, leaves that record; the
    next run refuses the same attempt again and updates it instead of adding a second."""
    assert world.post_alerts(alertmanager_payload([OOM_ALERT])).status == 202
    world.settle()
    assert world.bot is not None
    log = world.bot.services.level1.attempts
    refused = AttemptResult(
        "rerun_job_with_more_memory", 2, AttemptStatus.REFUSED, "refused: already at the cap", "re-run"
    )
    log.record(1, refused)
    log.record(1, replace(refused, summary="refused: still at the cap"))

    second = [a for a in attempts(world) if a.attempt == 2]
    assert [(a.status, a.summary) for a in second] == [("refused", "refused: still at the cap")]
