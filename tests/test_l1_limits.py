"""Level 1 keeps its promises: at most 2 attempts, never past its budget, only allowlisted, capped fixes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.config import KNOWN_REMEDIATIONS, NoCaps
from bot.core.clock import FakeClock
from bot.core.models import AttemptStatus, Category, CheckResult, CheckStatus, Risk, Target
from bot.diagnostics.base import Check, Context, Deps, Plan, Remediation, RemediationPolicy, Verification
from bot.diagnostics.registry import CategoryDiagnostics, default_registry
from bot.diagnostics.runner import Limits, Runner, outcome_of
from bot.sandbox.world import OOM_ALERT, PIPELINE_ALERT, SandboxWorld, alertmanager_payload
from bot.store.tables import RemediationAttempt
from tests.shown import step

RELEASE = threading.Event()


@pytest.fixture(autouse=True)
def _release_hung_checks() -> Iterator[None]:
    RELEASE.clear()
    yield
    RELEASE.set()


class HangingCheck(Check):
    name = "hangs"
    timeout_s = 0.2

    def run(self, ctx: Context) -> CheckResult:
        RELEASE.wait()
        return self.result(CheckStatus.OK, "answered after all")


class QuickCheck(Check):
    name = "quick"

    def run(self, ctx: Context) -> CheckResult:
        return self.result(CheckStatus.FAIL, "the job failed", facts={"broken": True})


class NeverFixes(Remediation[NoCaps]):
    """Applies instantly; verification polls the clock until the deadline and never succeeds."""

    name = "never_fixes"
    caps_model = NoCaps
    applied: list[datetime] = []

    def plan(self, ctx: Context, caps: NoCaps) -> Plan | None:
        return Plan(self.name, "try again")

    def apply(self, ctx: Context, plan: Plan) -> dict[str, Any]:
        self.applied.append(ctx.now())
        return {}

    def verify(self, ctx: Context, plan: Plan, applied: dict[str, Any], deadline: datetime) -> Verification:
        for _ in range(3):  # each poll takes a minute of (fake) time
            if ctx.now() >= deadline:
                break
            ctx.sleep(60)
        return Verification(False, "still failing")


def context(clock: FakeClock, allowed: dict[str, dict[str, Any]] | None = None) -> Context:
    return Context(
        incident_id=1,
        category=Category.PIPELINE_STEP_FAILED,
        target=Target(),
        labels={},
        annotations={},
        deps=Deps(),
        policy=RemediationPolicy(allowed or {"never_fixes": {}}),
        now=clock.now,
        sleep=clock.sleep,
    )


def test_a_hung_check_is_cut_at_its_timeout_and_reported_while_the_others_finish() -> None:
    clock = FakeClock()
    ctx = context(clock)
    Runner(clock.now).run(
        CategoryDiagnostics([HangingCheck, QuickCheck], []), ctx, Limits(2, 300, 20), clock.now()
    )
    by_name = {f.name: f for f in ctx.findings}
    assert by_name["hangs"].status is CheckStatus.ERROR
    assert "did not answer within 0.2s" in by_name["hangs"].summary
    assert by_name["quick"].status is CheckStatus.FAIL


def test_never_more_than_two_remediation_attempts() -> None:
    clock = FakeClock()
    NeverFixes.applied = []
    ctx = context(clock)
    attempts = Runner(clock.now).run(
        CategoryDiagnostics([QuickCheck], [NeverFixes]), ctx, Limits(2, 3600, 20), clock.now()
    )
    assert len(NeverFixes.applied) == 2
    assert [a.status for a in attempts] == [AttemptStatus.FAILED, AttemptStatus.FAILED]
    outcome = outcome_of(ctx, "job failed", False, 2)
    assert not outcome.fixed and "2 of 2 attempts" in outcome.result


def test_no_attempt_starts_after_the_budget_and_the_report_says_the_budget_ran_out() -> None:
    clock = FakeClock()
    NeverFixes.applied = []
    started = clock.now()
    ctx = context(clock)
    budget = 150  # seconds: one verification (3 fake minutes) already passes it
    Runner(clock.now).run(
        CategoryDiagnostics([QuickCheck], [NeverFixes]), ctx, Limits(2, budget, 20), started
    )
    assert len(NeverFixes.applied) == 1
    assert all(at < started + timedelta(seconds=budget) for at in NeverFixes.applied)
    assert clock.now() - started <= timedelta(seconds=budget + 60)  # the last poll may end one step late
    assert "budget ran out" in outcome_of(ctx, "job failed", True, 2).result


def test_a_remediation_that_is_not_allowlisted_is_refused_and_recorded() -> None:
    clock = FakeClock()
    NeverFixes.applied = []
    ctx = context(clock, allowed={"something_else": {}})
    attempts = Runner(clock.now).run(
        CategoryDiagnostics([QuickCheck], [NeverFixes]), ctx, Limits(2, 300, 20), clock.now()
    )
    assert NeverFixes.applied == []
    [refused] = attempts
    assert refused.status is AttemptStatus.REFUSED and "not on the remediation allowlist" in refused.summary


def test_a_guarded_remediation_is_never_run_automatically() -> None:
    class Guarded(NeverFixes):
        name = "guarded_fix"
        risk = Risk.GUARDED

    clock = FakeClock()
    NeverFixes.applied = []
    ctx = context(clock, allowed={"guarded_fix": {}})
    [refused] = Runner(clock.now).run(
        CategoryDiagnostics([QuickCheck], [Guarded]), ctx, Limits(2, 300, 20), clock.now()
    )
    assert refused.status is AttemptStatus.REFUSED and "needs a person's decision" in refused.summary
    assert NeverFixes.applied == []


def test_caps_that_no_longer_fit_their_model_are_recorded_and_nothing_is_applied() -> None:
    clock = FakeClock()
    NeverFixes.applied = []
    ctx = context(clock, allowed={"never_fixes": {"max_retries": 2}})  # a cap this remediation lacks
    [error] = Runner(clock.now).run(
        CategoryDiagnostics([QuickCheck], [NeverFixes]), ctx, Limits(2, 300, 20), clock.now()
    )
    assert error.status is AttemptStatus.ERROR
    assert error.summary == "could not plan: remediation.allowlist.never_fixes: max_retries: unknown key"
    assert NeverFixes.applied == []


def test_every_remediation_reads_its_caps_through_the_model_app_yaml_is_checked_against() -> None:
    registry = default_registry().values()
    remediations = [r for d in registry for r in d.remediations]
    remediations += [r for d in registry for r in d.for_target(Target(workflow="wf")).remediations]
    assert {r.name: r.caps_model for r in remediations} == KNOWN_REMEDIATIONS


def attempts_of(world: SandboxWorld) -> list[RemediationAttempt]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(RemediationAttempt)))


def test_with_an_empty_allowlist_l1_changes_nothing_and_escalates_saying_why() -> None:
    with SandboxWorld(config={}) as world:
        world.post_alerts(alertmanager_payload([PIPELINE_ALERT]))
        world.settle()
        assert [r for r in world.kube.writes()] == []
        [attempt] = attempts_of(world)
        assert attempt.status == "refused" and "not on the remediation allowlist" in attempt.summary
        [l2] = world.slack.messages("#data-coordinator")
        assert "not on the remediation allowlist" in step(l2, "Retry with debug logging")


def test_a_memory_raise_above_the_cap_is_refused_and_recorded() -> None:
    config = {"remediation": {"allowlist": {"rerun_job_with_more_memory": {"max_memory": "2Gi"}}}}
    with SandboxWorld(config=config) as world:
        world.post_alerts(alertmanager_payload([OOM_ALERT]))
        world.settle()
        assert world.kube.writes() == []
        [attempt] = attempts_of(world)
        assert attempt.status == "refused" and "cap" in attempt.summary
        refused = step(world.slack.messages("#data-coordinator")[0], "Re-run with more memory")
        assert refused.startswith("• ⏭️ ") and "refused" in refused


def test_dry_run_plans_but_does_not_touch_the_cluster() -> None:
    config = {"remediation": {"dry_run": True, "allowlist": {"rerun_job_with_more_memory": {}}}}
    with SandboxWorld(config=config) as world:
        world.post_alerts(alertmanager_payload([OOM_ALERT]))
        world.settle()
        assert world.kube.writes() == []
        [attempt] = attempts_of(world)
        assert attempt.status == "dry_run" and "4Gi" in attempt.summary
