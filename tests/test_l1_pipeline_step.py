"""Level 1 for a failed pipeline step, against the sandbox Kubernetes API through the real client."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

from bot.config import RetryWithDebugCaps
from bot.core.models import AttemptStatus, Category, CheckStatus
from bot.core.redact import MASK
from bot.diagnostics.base import Context
from bot.diagnostics.pipeline_step import (
    CHECKS,
    REMEDIATIONS,
    FailedJobCheck,
    ImagePullCheck,
    PodLogsTailCheck,
    RetryJobWithDebug,
)
from bot.diagnostics.registry import CategoryDiagnostics
from bot.diagnostics.runner import Limits, Runner
from bot.integrations.kubernetes import KubeGateway
from bot.sandbox.kube_api import FIXTURES, always
from tests.kube_fixtures import (
    NS,
    SECRETS,
    FakeClock,
    assert_no_secrets,
    make_context,
    record_attempt,
    running_sandbox,
)

JOB = "feature-build-daily"
POD = "feature-build-daily-q9w4z"
ALLOWED = {RetryJobWithDebug.name: {"max_retries": 1}}


def _context(gateway: KubeGateway | None, clock: FakeClock | None = None, job: str | None = JOB) -> Context:
    return make_context(gateway, Category.PIPELINE_STEP_FAILED, job, clock or FakeClock(), allowed=ALLOWED)


def test_the_failure_reason_is_found() -> None:
    with running_sandbox("pipeline_failed") as (_, gateway):
        result = FailedJobCheck().run(_context(gateway))

    assert result.status is CheckStatus.FAIL
    assert (
        result.summary
        == f"job {JOB} failed: BackoffLimitExceeded (Job has reached the specified backoff limit)"
    )
    assert result.facts == {"job_failed": True, "failure_reason": "BackoffLimitExceeded", "job_name": JOB}
    assert result.evidence["call"] == f"GET /apis/batch/v1/namespaces/{NS}/jobs/{JOB}"
    assert result.evidence["response"]["conditions"][-1]["type"] == "Failed"


def test_a_job_that_has_not_failed_is_ok() -> None:
    with running_sandbox("pipeline_failed", rule=always("succeeded")) as (_, gateway):
        ctx = _context(gateway)
        ctx.findings.append(FailedJobCheck().run(ctx))
        plan = RetryJobWithDebug().plan(ctx, RetryWithDebugCaps())
        assert plan is not None
        done = RetryJobWithDebug().apply(ctx, plan)["facts"]["job_name"]

        result = FailedJobCheck().run(_context(gateway, job=done))

    assert result.status is CheckStatus.OK
    assert result.summary == f"job {done} completed"
    assert result.facts["job_failed"] is False


def test_the_log_tail_is_redacted_and_its_last_error_line_is_the_summary() -> None:
    with running_sandbox("pipeline_failed") as (sandbox, gateway):
        result = PodLogsTailCheck().run(_context(gateway))
        log_request = sandbox.requests[-1]

    assert result.status is CheckStatus.FAIL
    assert result.summary == (
        "OSError: Could not open Parquet input source 's3://ml-data/features/2026-11-26/part-0.parquet': "
        "Parquet magic bytes not found in footer. Either the file is corrupted or this is not a parquet file."
    )
    assert (result.facts["pod"], result.facts["container"]) == (POD, "step")
    assert log_request.query == {"container": "step", "tailLines": "50"}
    assert (
        result.evidence["call"] == f"GET /api/v1/namespaces/{NS}/pods/{POD}/log?container=step&tailLines=50"
    )
    tail = result.evidence["tail"]
    assert "Traceback (most recent call last):" in tail
    assert tail.count(MASK) == 3
    assert "postgresql://etl:[REDACTED]@db.internal:5432/features" in tail
    for secret in SECRETS:
        assert secret not in tail


def test_no_finding_of_any_check_carries_a_secret() -> None:
    with running_sandbox("pipeline_failed") as (_, gateway):
        ctx = _context(gateway)
        results = [check().run(ctx) for check in CHECKS]

    assert [r.status for r in results] == [
        CheckStatus.FAIL,
        CheckStatus.FAIL,
        CheckStatus.OK,
        CheckStatus.WARN,
    ]
    assert_no_secrets(results)


def test_an_image_pull_back_off_is_found() -> None:
    objects = json.loads((FIXTURES / "pipeline_failed.json").read_text())
    pod = copy.deepcopy(next(o for o in objects if o["kind"] == "Pod"))
    pod["status"]["phase"] = "Pending"
    pod["status"]["containerStatuses"][0].update(
        image="registry.local/ml/features:0.9.8",
        state={
            "waiting": {
                "reason": "ImagePullBackOff",
                "message": 'Back-off pulling image "registry.local/ml/features:0.9.8"',
            }
        },
        lastState={},
    )
    with running_sandbox("pipeline_failed") as (sandbox, gateway):
        before = ImagePullCheck().run(_context(gateway))
        sandbox.load(pod)
        after = ImagePullCheck().run(_context(gateway))

    assert before.status is CheckStatus.OK
    assert after.status is CheckStatus.FAIL
    assert after.summary == (
        f"container step of pod {POD} cannot pull image registry.local/ml/features:0.9.8: ImagePullBackOff "
        '(Back-off pulling image "registry.local/ml/features:0.9.8")'
    )
    assert after.facts["image"] == "registry.local/ml/features:0.9.8"


def test_retry_runs_the_job_again_with_debug_logging_then_the_cap_refuses_a_second() -> None:
    clock = FakeClock()
    failing_log = "DEBUG features.build: opening partitions\nKeyError: 'event_timestamp'\n"
    with running_sandbox("pipeline_failed", rule=always("failed", log=failing_log)) as (sandbox, gateway):
        ctx = _context(gateway, clock)
        ctx.findings.append(FailedJobCheck().run(ctx))
        remediation = RetryJobWithDebug()

        plan = remediation.plan(ctx, remediation.caps_from(ALLOWED[remediation.name]))
        assert plan is not None and plan.refused is None
        applied = remediation.apply(ctx, plan)
        verdict = remediation.verify(ctx, plan, applied, clock.now() + timedelta(minutes=4))
        record_attempt(ctx, plan, applied, AttemptStatus.FAILED, verdict)
        second = remediation.plan(ctx, remediation.caps_from(ALLOWED[remediation.name]))
        writes = sandbox.writes()

    assert plan.description == f"re-run job {NS}/{JOB} as a new job with LOG_LEVEL=DEBUG and DEBUG=1"
    assert len(writes) == 1 and writes[0].path == f"/apis/batch/v1/namespaces/{NS}/jobs"
    body = writes[0].body
    assert "selector" not in body["spec"]
    env = body["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "LOG_LEVEL", "value": "DEBUG"} in env and {"name": "DEBUG", "value": "1"} in env
    assert env[0] == {"name": "FEATURE_DATE", "value": "2026-11-26"}
    assert env[1]["valueFrom"] == {"secretKeyRef": {"name": "features-db", "key": "url"}}
    assert verdict.fixed is False
    name = applied["facts"]["job_name"]
    assert verdict.summary == (
        f"job {name} failed again with debug logging (BackoffLimitExceeded: Job has reached the specified "
        "backoff limit); last error: KeyError: 'event_timestamp'"
    )
    assert second is not None and second.refused == "retry cap 1 reached"


def test_a_retry_that_completes_is_verified_fixed() -> None:
    clock = FakeClock()
    with running_sandbox("pipeline_failed", rule=always("succeeded")) as (_, gateway):
        ctx = _context(gateway, clock)
        ctx.findings.append(FailedJobCheck().run(ctx))
        remediation = RetryJobWithDebug()
        plan = remediation.plan(ctx, RetryWithDebugCaps())
        assert plan is not None
        applied = remediation.apply(ctx, plan)
        verdict = remediation.verify(ctx, plan, applied, clock.now() + timedelta(minutes=4))

    assert verdict.fixed is True
    assert verdict.summary == f"job {applied['facts']['job_name']} completed when re-run with debug logging"
    assert clock.slept == []


def test_a_refused_plan_does_not_count_against_the_cap() -> None:
    with running_sandbox("pipeline_failed") as (_, gateway):
        ctx = _context(gateway)
        ctx.findings.append(FailedJobCheck().run(ctx))
        outside = make_context(
            gateway, Category.PIPELINE_STEP_FAILED, JOB, FakeClock(), namespaces=("ml-other",)
        )
        outside.findings.extend(ctx.findings)
        remediation = RetryJobWithDebug()
        refused = remediation.plan(outside, RetryWithDebugCaps(max_retries=1))
        assert refused is not None and refused.refused == f"namespace {NS} is not in the allowed namespaces"
        record_attempt(ctx, refused, {}, AttemptStatus.REFUSED)

        plan = remediation.plan(ctx, RetryWithDebugCaps(max_retries=1))

    assert plan is not None and plan.refused is None


def test_a_forbidden_api_call_becomes_an_error_result() -> None:
    with running_sandbox("pipeline_failed") as (sandbox, gateway):
        sandbox.fail("/log", status=403)
        logs = PodLogsTailCheck().run(_context(gateway))
        sandbox.fail(f"/jobs/{JOB}", status=403)
        job = FailedJobCheck().run(_context(gateway))

    assert logs.status is CheckStatus.ERROR
    assert logs.evidence["call"] == f"GET /api/v1/namespaces/{NS}/pods/{POD}/log?container=step&tailLines=50"
    assert logs.summary.startswith(f"kubernetes: GET log {NS}/{POD}/step: 403 Forbidden (")
    assert job.status is CheckStatus.ERROR and job.evidence["status"] == 403
    assert 'cannot get resource "jobs" in API group "batch" in the namespace "ml-pipelines"' in job.summary


def test_a_server_error_is_an_error_result_too() -> None:
    with running_sandbox("pipeline_failed") as (sandbox, gateway):
        sandbox.fail("/pods", status=500)
        result = ImagePullCheck().run(_context(gateway))

    assert result.status is CheckStatus.ERROR
    assert result.evidence["status"] == 500
    assert "500 InternalError" in result.summary


def test_the_module_lists_its_checks_and_remediations() -> None:
    assert [c.name for c in CHECKS] == ["job_failed", "pod_logs_tail", "image_pull", "warning_events"]
    assert [r.name for r in REMEDIATIONS] == ["retry_job_with_debug"]


def test_the_runner_retries_once_and_records_the_cap() -> None:
    clock = FakeClock()
    with running_sandbox("pipeline_failed", rule=always("failed")) as (sandbox, gateway):
        ctx = _context(gateway, clock)
        limits = Limits(max_attempts=2, budget_s=300, check_timeout_s=20)

        attempts = Runner(clock.now).run(
            CategoryDiagnostics(CHECKS, REMEDIATIONS), ctx, limits, started=clock.now()
        )

    assert [a.status for a in attempts] == [AttemptStatus.FAILED, AttemptStatus.REFUSED]
    assert "failed again with debug logging" in attempts[0].summary
    assert attempts[1].summary == "refused: retry cap 1 reached"
    assert len(sandbox.writes()) == 1
    assert_no_secrets(ctx.findings)
