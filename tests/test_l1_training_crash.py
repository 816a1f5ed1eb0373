"""Level 1 for a training crash, against the sandbox Kubernetes API through the real client."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

from bot.config import RerunWithMoreMemoryCaps
from bot.core.models import AttemptStatus, Category, CheckResult, CheckStatus
from bot.diagnostics.kube_common import WarningEventsCheck
from bot.diagnostics.registry import CategoryDiagnostics
from bot.diagnostics.runner import Limits, Runner
from bot.diagnostics.training_crash import CHECKS, REMEDIATIONS, RerunWithMoreMemory, TrainingJobPodsCheck
from bot.sandbox.kube_api import FIXTURES, JobRule, Outcome, always, succeed_if_memory_at_least
from tests.kube_fixtures import NS, make_context, record_attempt, recorded_clock, running_sandbox

JOB = "train-churn-model"
CAPS = RerunWithMoreMemoryCaps()  # ×2 up to 16Gi


def _slowly(rule: JobRule, reads: int) -> JobRule:
    """The same verdict as `rule`, after `reads` reads that see the Job still running."""

    def slow(job: dict[str, Any]) -> Outcome:
        outcome = rule(job)
        return Outcome(outcome.result if isinstance(outcome, Outcome) else outcome, pending_reads=reads)

    return slow


def test_the_oom_kill_is_found_with_its_2gi_limit() -> None:
    with running_sandbox("training_oom") as (_, gateway):
        result = TrainingJobPodsCheck().run(
            make_context(gateway, Category.TRAINING_CRASH, JOB, recorded_clock())
        )

    assert result.status is CheckStatus.FAIL
    assert result.summary == (
        "container trainer of pod train-churn-model-x7k2p was OOMKilled (exit 137) with memory limit 2Gi"
    )
    assert result.facts["oom_killed"] is True
    assert (result.facts["memory_limit"], result.facts["container"], result.facts["job_name"]) == (
        "2Gi",
        "trainer",
        JOB,
    )
    assert result.evidence["calls"] == [
        f"GET /apis/batch/v1/namespaces/{NS}/jobs/{JOB}",
        f"GET /api/v1/namespaces/{NS}/pods?labelSelector=job-name={JOB}",
    ]
    pod = result.evidence["response"]["pods"][0]
    assert pod["containers"][0]["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert result.evidence["job"]["containers"][0]["resources"]["limits"]["memory"] == "2Gi"


def test_a_crash_loop_is_reported_even_when_memory_is_not_the_cause() -> None:
    objects = json.loads((FIXTURES / "training_oom.json").read_text())
    looping = copy.deepcopy(
        next(o for o in objects if o["kind"] == "Pod" and o["metadata"]["name"].startswith(JOB))
    )
    looping["status"]["phase"] = "Running"
    looping["status"]["containerStatuses"][0].update(
        restartCount=5,
        state={
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": "back-off 5m0s restarting failed container=trainer",
            }
        },
        lastState={"terminated": {"exitCode": 2, "reason": "Error"}},
    )
    with running_sandbox("training_oom") as (sandbox, gateway):
        sandbox.load(looping)
        result = TrainingJobPodsCheck().run(
            make_context(gateway, Category.TRAINING_CRASH, JOB, recorded_clock())
        )

    assert result.status is CheckStatus.FAIL
    assert "is in CrashLoopBackOff after 5 restarts" in result.summary
    assert result.facts["oom_killed"] is False and result.facts["crash_loop"] is True


def test_a_job_that_did_not_run_out_of_memory_is_ok() -> None:
    with running_sandbox("pipeline_failed") as (_, gateway):
        ctx = make_context(gateway, Category.TRAINING_CRASH, "feature-build-daily", recorded_clock())
        result = TrainingJobPodsCheck().run(ctx)

    assert result.status is CheckStatus.OK
    assert result.facts["oom_killed"] is False and result.facts["memory_limit"] == "1Gi"


def test_warning_events_of_the_job_and_its_pods_newest_first() -> None:
    with running_sandbox("training_oom") as (_, gateway):
        result = WarningEventsCheck().run(
            make_context(gateway, Category.TRAINING_CRASH, JOB, recorded_clock())
        )

    assert result.status is CheckStatus.WARN
    events = result.evidence["response"]["events"]
    assert [e["reason"] for e in events] == ["BackoffLimitExceeded", "OOMKilling", "BackOff"]
    assert events[0]["object"] == f"Job/{JOB}" and events[1]["count"] == 3
    assert result.summary.startswith(
        "3 warning event(s) for job train-churn-model and its pods; newest: BackoffLimitExceeded"
    )


def test_rerun_creates_a_4gi_job_and_verifies_it_fixed() -> None:
    clock = recorded_clock()
    with running_sandbox("training_oom", rule=_slowly(succeed_if_memory_at_least("4Gi"), reads=2)) as (
        sandbox,
        gateway,
    ):
        ctx = make_context(
            gateway, Category.TRAINING_CRASH, JOB, clock, allowed={RerunWithMoreMemory.name: CAPS}
        )
        ctx.findings.append(TrainingJobPodsCheck().run(ctx))
        remediation = RerunWithMoreMemory()

        plan = remediation.plan(ctx, CAPS)
        assert plan is not None and plan.refused is None
        applied = remediation.apply(ctx, plan)
        verdict = remediation.verify(ctx, plan, applied, clock.now() + timedelta(minutes=4))

        post = sandbox.writes()[0]
        created = sandbox.stored("Job", NS, applied["facts"]["job_name"])

    assert plan.params["memory_limit"] == "4Gi"
    assert plan.description == f"re-run job {NS}/{JOB} as a new job with memory limit 4Gi (was 2Gi, cap 16Gi)"
    assert (post.method, post.path) == ("POST", f"/apis/batch/v1/namespaces/{NS}/jobs")
    assert len(sandbox.writes()) == 1
    body = post.body
    assert body["metadata"]["generateName"] == f"{JOB}-l1-"
    assert "selector" not in body["spec"]
    for labels in (body["metadata"]["labels"], body["spec"]["template"]["metadata"]["labels"]):
        assert not {"controller-uid", "batch.kubernetes.io/controller-uid", "job-name"} & set(labels)
        assert labels["escalation-bot/incident"] == "42"
    trainer = body["spec"]["template"]["spec"]["containers"][0]
    assert trainer["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert trainer["resources"]["requests"]["memory"] == "1Gi"
    assert applied["facts"] == {"job_name": created["metadata"]["name"], "memory_limit": "4Gi"}
    assert verdict.fixed is True
    assert verdict.summary == f"job {created['metadata']['name']} completed with memory limit 4Gi"
    assert clock.slept == [5.0, 5.0]


def test_verify_reports_not_fixed_while_the_job_still_runs_out_of_memory() -> None:
    clock = recorded_clock()
    with running_sandbox("training_oom", rule=succeed_if_memory_at_least("64Gi")) as (sandbox, gateway):
        ctx = make_context(
            gateway, Category.TRAINING_CRASH, JOB, clock, allowed={RerunWithMoreMemory.name: CAPS}
        )
        ctx.findings.append(TrainingJobPodsCheck().run(ctx))
        remediation = RerunWithMoreMemory()
        first = remediation.plan(ctx, CAPS)
        assert first is not None
        applied = remediation.apply(ctx, first)
        verdict = remediation.verify(ctx, first, applied, clock.now() + timedelta(minutes=4))
        record_attempt(ctx, first, applied, AttemptStatus.FAILED, verdict)

        second = remediation.plan(ctx, CAPS)
        assert second is not None
        second_applied = remediation.apply(ctx, second)
        bodies = [w.body for w in sandbox.writes()]

    assert verdict.fixed is False
    assert (
        verdict.summary
        == f"job {applied['facts']['job_name']} was OOMKilled again (container trainer) with memory limit 4Gi"
    )
    assert verdict.evidence["facts"] == {
        "job_name": applied["facts"]["job_name"],
        "memory_limit": "4Gi",
        "oom_killed": True,
    }
    assert (second.params["previous_memory_limit"], second.params["memory_limit"]) == ("4Gi", "8Gi")
    assert second_applied["facts"]["memory_limit"] == "8Gi"
    assert [
        b["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] for b in bodies
    ] == ["4Gi", "8Gi"]


def test_verify_gives_up_at_the_deadline() -> None:
    clock = recorded_clock()
    with running_sandbox("training_oom", rule=_slowly(succeed_if_memory_at_least("4Gi"), reads=1000)) as (
        _,
        gateway,
    ):
        ctx = make_context(
            gateway, Category.TRAINING_CRASH, JOB, clock, allowed={RerunWithMoreMemory.name: CAPS}
        )
        ctx.findings.append(TrainingJobPodsCheck().run(ctx))
        remediation = RerunWithMoreMemory()
        plan = remediation.plan(ctx, CAPS)
        assert plan is not None
        deadline = clock.now() + timedelta(seconds=12)
        verdict = remediation.verify(ctx, plan, remediation.apply(ctx, plan), deadline)

    assert verdict.fixed is False
    assert verdict.summary.endswith("still running at the verification deadline")
    assert clock.slept == [5.0, 5.0, 2.0] and clock.now() == deadline


def test_the_cap_refuses_a_raise_and_clamps_the_step() -> None:
    with running_sandbox("training_oom") as (sandbox, gateway):
        ctx = make_context(gateway, Category.TRAINING_CRASH, JOB, recorded_clock())
        ctx.findings.append(TrainingJobPodsCheck().run(ctx))

        at_cap = RerunWithMoreMemory().plan(ctx, RerunWithMoreMemoryCaps(max_memory="2Gi"))
        clamped = RerunWithMoreMemory().plan(
            ctx, RerunWithMoreMemoryCaps(max_memory="3Gi", memory_step_factor=4)
        )

    assert at_cap is not None and at_cap.refused == "memory 2Gi is already at the cap 2Gi"
    assert clamped is not None and clamped.refused is None and clamped.params["memory_limit"] == "3Gi"
    assert sandbox.writes() == []


def test_nothing_is_planned_without_an_oom_kill() -> None:
    with running_sandbox("pipeline_failed") as (_, gateway):
        ctx = make_context(gateway, Category.TRAINING_CRASH, "feature-build-daily", recorded_clock())
        ctx.findings.append(TrainingJobPodsCheck().run(ctx))

        assert RerunWithMoreMemory().plan(ctx, CAPS) is None


def test_a_namespace_outside_the_policy_is_skipped_and_refused() -> None:
    with running_sandbox("training_oom") as (sandbox, gateway):
        ctx = make_context(
            gateway, Category.TRAINING_CRASH, JOB, recorded_clock(), namespaces=("ml-serving",)
        )
        result = TrainingJobPodsCheck().run(ctx)
        oom = CheckResult(
            "job_pods_oom", CheckStatus.FAIL, "OOMKilled", facts={"oom_killed": True, "memory_limit": "2Gi"}
        )
        ctx.findings.append(oom)
        plan = RerunWithMoreMemory().plan(ctx, CAPS)

    assert result.status is CheckStatus.SKIPPED
    assert result.summary == f"namespace {NS} is not in the allowed namespaces"
    assert plan is not None and plan.refused == f"namespace {NS} is not in the allowed namespaces"
    assert sandbox.requests == []


def test_an_alert_without_a_job_is_skipped() -> None:
    ctx = make_context(None, Category.TRAINING_CRASH, None, recorded_clock())

    results = [check().run(ctx) for check in CHECKS]

    assert {r.status for r in results} == {CheckStatus.SKIPPED}
    assert results[0].summary == "the alert names no Kubernetes job to inspect"


def test_a_forbidden_api_call_becomes_an_error_result() -> None:
    with running_sandbox("training_oom") as (sandbox, gateway):
        sandbox.fail(f"/jobs/{JOB}", status=403)
        result = TrainingJobPodsCheck().run(
            make_context(gateway, Category.TRAINING_CRASH, JOB, recorded_clock())
        )

    assert result.status is CheckStatus.ERROR
    assert result.evidence["call"] == f"GET /apis/batch/v1/namespaces/{NS}/jobs/{JOB}"
    assert result.evidence["status"] == 403
    assert result.summary.startswith(f"kubernetes: GET job {NS}/{JOB}: 403 Forbidden (")
    assert "forbidden" in result.evidence["error"]


def test_the_module_lists_its_checks_and_remediations() -> None:
    assert [c.name for c in CHECKS] == ["job_pods_oom", "warning_events", "mlflow_run"]
    assert [r.name for r in REMEDIATIONS] == ["rerun_job_with_more_memory"]
    assert [c.needs for c in CHECKS] == [("kube",), ("kube",), ("mlflow",)]


def test_the_runner_raises_memory_step_by_step_until_the_job_completes() -> None:
    clock = recorded_clock()
    with running_sandbox("training_oom", rule=succeed_if_memory_at_least("8Gi")) as (sandbox, gateway):
        ctx = make_context(
            gateway, Category.TRAINING_CRASH, JOB, clock, allowed={RerunWithMoreMemory.name: CAPS}
        )
        runner = Runner(clock.now)
        limits = Limits(max_attempts=2, budget_s=300, check_timeout_s=20)

        attempts = runner.run(CategoryDiagnostics(CHECKS, REMEDIATIONS), ctx, limits, started=clock.now())
        limits_sent = [
            w.body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
            for w in sandbox.writes()
        ]

    assert [a.status for a in attempts] == [AttemptStatus.FAILED, AttemptStatus.FIXED]
    assert "was OOMKilled again (container trainer) with memory limit 4Gi" in attempts[0].summary
    assert attempts[1].summary.endswith("completed with memory limit 8Gi")
    assert [lim["memory"] for lim in limits_sent] == ["4Gi", "8Gi"]


def test_a_rerun_that_fails_for_another_reason_is_not_repeated() -> None:
    clock = recorded_clock()
    with running_sandbox("training_oom", rule=always("failed")) as (sandbox, gateway):
        ctx = make_context(
            gateway, Category.TRAINING_CRASH, JOB, clock, allowed={RerunWithMoreMemory.name: CAPS}
        )
        limits = Limits(max_attempts=2, budget_s=300, check_timeout_s=20)

        attempts = Runner(clock.now).run(
            CategoryDiagnostics(CHECKS, REMEDIATIONS), ctx, limits, started=clock.now()
        )

    assert [a.status for a in attempts] == [AttemptStatus.FAILED]
    assert "not from lack of memory" in attempts[0].summary
    assert len(sandbox.writes()) == 1
