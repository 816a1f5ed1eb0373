"""Level 1 for an orchestration timeout, against the sandbox Kubernetes API through the real client."""

from __future__ import annotations

import copy
import json
from typing import Any

from bot.config import NoCaps, parse_config
from bot.core.clock import FakeClock
from bot.core.models import AttemptStatus, Category, CheckStatus
from bot.diagnostics.base import Context
from bot.diagnostics.orchestration import (
    CHECKS,
    REMEDIATIONS,
    JobDeadlineCheck,
    PendingPodsCheck,
    RerunFromCheckpoint,
    SilentStepCheck,
    UpstreamCheck,
    parse_log_time,
)
from bot.diagnostics.registry import CategoryDiagnostics
from bot.diagnostics.runner import Limits, Runner
from bot.integrations.kubernetes import KubeGateway
from bot.sandbox.kube_api import FIXTURES, SandboxKubeAPI, always
from bot.sandbox.world import SandboxWorld, alertmanager_payload
from tests.kube_fixtures import NS, SECRETS, assert_no_secrets, make_context, recorded_clock, running_sandbox
from tests.shown import field, shown, step

JOB = "nightly-training-dag"
POD = "nightly-training-dag-m4n8p"
CHECKPOINT = "s3://ml-checkpoints/nightly/step-3"
ALLOWED: dict[str, dict[str, Any]] = {RerunFromCheckpoint.name: {}}


def _objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = json.loads((FIXTURES / "orchestration_timeout.json").read_text())
    return objects


def _fixture(kind: str, name: str) -> dict[str, Any]:
    return copy.deepcopy(next(o for o in _objects() if o["kind"] == kind and o["metadata"]["name"] == name))


def _context(
    gateway: KubeGateway | None,
    clock: FakeClock | None = None,
    job: str | None = JOB,
    config: dict[str, Any] | None = None,
) -> Context:
    ctx = make_context(
        gateway, Category.ORCHESTRATION_TIMEOUT, job, clock or recorded_clock(), allowed=ALLOWED
    )
    ctx.config = parse_config(config or {})
    return ctx


def _without_checkpoint(sandbox: SandboxKubeAPI) -> None:
    job = _fixture("Job", JOB)
    del job["metadata"]["annotations"]["escalation-bot/checkpoint"]
    sandbox.load(job)


def _running(sandbox: SandboxKubeAPI, last_line: str) -> None:
    """Make the DAG's Job and pod still running, with `last_line` as the pod's last log line."""
    job = _fixture("Job", JOB)
    job["status"] = {"startTime": "2026-11-26T02:00:00Z", "active": 1, "ready": 1}
    pod = _fixture("Pod", POD)
    pod["status"] = {
        "phase": "Running",
        "startTime": "2026-11-26T02:00:01Z",
        "containerStatuses": [
            {
                "name": "dag",
                "image": "registry.local/ml/training-dag:2.3.1",
                "imageID": "registry.local/ml/training-dag@sha256:5d6e",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": "2026-11-26T02:00:04Z"}},
            }
        ],
    }
    sandbox.load(job)
    sandbox.load(pod)
    sandbox.load({"kind": "PodLog", "namespace": NS, "pod": POD, "container": "dag", "text": last_line})


def _run_l1(ctx: Context, clock: FakeClock) -> list[Any]:
    limits = Limits(max_attempts=2, budget_s=300, check_timeout_s=20)
    return Runner(clock.now).run(CategoryDiagnostics(CHECKS, REMEDIATIONS), ctx, limits, started=clock.now())


# -- checks --------------------------------------------------------------------------------------------
def test_a_job_that_hit_its_deadline_is_found_with_its_run_time_and_checkpoint() -> None:
    with running_sandbox("orchestration_timeout") as (_, gateway):
        result = JobDeadlineCheck().run(_context(gateway))

    assert result.status is CheckStatus.FAIL
    assert result.summary == (
        f"job {JOB} hit its deadline: it ran 2h5s against activeDeadlineSeconds 7200 "
        f"(Job was active longer than specified deadline); it can resume from checkpoint {CHECKPOINT}"
    )
    assert result.facts == {
        "job_name": JOB,
        "deadline_exceeded": True,
        "active_deadline_s": 7200,
        "checkpoint": CHECKPOINT,
        "ran_s": 7205.0,
    }
    assert result.evidence["call"] == f"GET /apis/batch/v1/namespaces/{NS}/jobs/{JOB}"
    assert result.evidence["response"]["conditions"][-1]["reason"] == "DeadlineExceeded"


def test_without_a_checkpoint_the_finding_says_so_and_nothing_is_planned() -> None:
    with running_sandbox("orchestration_timeout") as (sandbox, gateway):
        _without_checkpoint(sandbox)
        ctx = _context(gateway)
        result = JobDeadlineCheck().run(ctx)
        ctx.findings.append(result)
        plan = RerunFromCheckpoint().plan(ctx, NoCaps())

    assert result.status is CheckStatus.FAIL
    assert result.summary.endswith(
        "; no checkpoint is configured (annotation escalation-bot/checkpoint), so a re-run would start over"
    )
    assert result.facts["checkpoint"] is None
    assert plan is None


def test_a_job_failed_for_another_reason_or_running_is_not_a_deadline() -> None:
    with running_sandbox("orchestration_timeout") as (sandbox, gateway):
        other = JobDeadlineCheck().run(_context(gateway, job="validate-data-nightly"))
        done = JobDeadlineCheck().run(_context(gateway, job="feature-build-nightly"))
        _running(sandbox, "2026-11-26T04:59:00.000000000Z dag.run: step 4/5 evaluate 99%\n")
        near = JobDeadlineCheck().run(_context(gateway))

    assert other.status is CheckStatus.WARN
    assert other.summary == "job validate-data-nightly failed with BackoffLimitExceeded, not on its deadline"
    assert done.status is CheckStatus.OK and done.summary == "job feature-build-nightly completed"
    assert near.status is CheckStatus.WARN
    assert near.summary == f"job {JOB} has run 3h of its 2h deadline"


def test_pending_pods_that_cannot_be_scheduled_are_reported() -> None:
    with running_sandbox("orchestration_timeout") as (sandbox, gateway):
        others = PendingPodsCheck().run(_context(gateway))
        own = PendingPodsCheck().run(_context(gateway, job="batch-scoring-hourly"))
        pending_query = next(
            r for r in sandbox.requests if r.query.get("fieldSelector") == "status.phase=Pending"
        )

    message = (
        "0/5 nodes are available: 5 Insufficient cpu. preemption: 0/5 nodes are available: "
        "5 No preemption victims found for incoming pod."
    )
    assert others.status is CheckStatus.WARN
    assert others.summary == (
        f"1 pending pod(s) in {NS} cannot be scheduled; pod batch-scoring-hourly-k2j9d of job "
        f"batch-scoring-hourly: {message}"
    )
    assert others.evidence["call"] == f"GET /api/v1/namespaces/{NS}/pods?fieldSelector=status.phase=Pending"
    assert others.evidence["unschedulable"][0]["count"] == 11
    assert own.status is CheckStatus.FAIL
    assert (
        own.summary
        == f"pod batch-scoring-hourly-k2j9d of job batch-scoring-hourly cannot be scheduled: {message}"
    )
    assert own.facts == {"unschedulable_pods": ["batch-scoring-hourly-k2j9d"], "job_unschedulable": True}
    assert pending_query.path == f"/api/v1/namespaces/{NS}/pods"


def test_a_running_step_that_went_silent_is_found_from_its_timestamped_last_line() -> None:
    last = "2026-11-26T03:59:58.310000000Z dag.run: step 4/5 evaluate 61% (token=S3cretPass)\n"
    with running_sandbox("orchestration_timeout") as (sandbox, gateway):
        finished = SilentStepCheck().run(_context(gateway))
        _running(sandbox, last)
        silent = SilentStepCheck().run(_context(gateway))
        patient = SilentStepCheck().run(
            _context(gateway, config={"orchestration": {"silent_step_after": "2h"}})
        )
        log_request = sandbox.requests[-1]

    assert finished.status is CheckStatus.OK
    assert finished.summary == f"job {JOB} has no running pod that could be silent"
    assert silent.status is CheckStatus.FAIL
    assert silent.summary == (
        f"pod {POD} of job {JOB} has logged nothing for 1h2s, longer than orchestration.silent_step_after "
        "30m; last line at 2026-11-26T03:59:58Z: dag.run: step 4/5 evaluate 61% (token=[REDACTED]"
    )
    assert silent.facts["stuck"] is True and silent.facts["silent_pod"] == POD
    assert silent.evidence["call"] == (
        f"GET /api/v1/namespaces/{NS}/pods/{POD}/log?container=dag&tailLines=1&timestamps=true"
    )
    assert log_request.query == {"container": "dag", "tailLines": "1", "timestamps": "true"}
    assert patient.status is CheckStatus.OK
    assert_no_secrets([silent])


def test_log_timestamps_with_nanoseconds_are_parsed() -> None:
    at, text = parse_log_time("2026-11-26T03:59:58.310000999Z hello world")
    assert at is not None and at.isoformat() == "2026-11-26T03:59:58.310000+00:00"
    assert text == "hello world"
    assert parse_log_time("not a timestamp") == (None, "not a timestamp")


def test_upstream_jobs_are_reported_complete_failed_or_missing() -> None:
    with running_sandbox("orchestration_timeout") as (sandbox, gateway):
        result = UpstreamCheck().run(_context(gateway))
        job = _fixture("Job", JOB)
        job["metadata"]["annotations"]["escalation-bot/upstream"] = "feature-build-nightly, ml-pipelines/gone"
        sandbox.load(job)
        missing = UpstreamCheck().run(_context(gateway))
        none = UpstreamCheck().run(_context(gateway, job="feature-build-nightly"))

    assert result.status is CheckStatus.FAIL
    assert result.summary == (
        f"upstream of job {JOB}: feature-build-nightly Complete, "
        "validate-data-nightly Failed (BackoffLimitExceeded)"
    )
    assert result.facts["failed_upstream"] == [f"{NS}/validate-data-nightly"]
    assert result.evidence["calls"] == [
        f"GET /apis/batch/v1/namespaces/{NS}/jobs/{JOB}",
        f"GET /apis/batch/v1/namespaces/{NS}/jobs/feature-build-nightly",
        f"GET /apis/batch/v1/namespaces/{NS}/jobs/validate-data-nightly",
    ]
    assert missing.facts["upstream"] == {f"{NS}/feature-build-nightly": "Complete", f"{NS}/gone": "missing"}
    assert none.status is CheckStatus.SKIPPED
    assert (
        none.summary
        == "job feature-build-nightly lists no upstream jobs (annotation escalation-bot/upstream)"
    )


def test_a_forbidden_or_failing_api_becomes_an_error_result() -> None:
    with running_sandbox("orchestration_timeout") as (sandbox, gateway):
        sandbox.fail(f"/jobs/{JOB}", status=403)
        deadline = JobDeadlineCheck().run(_context(gateway))
        sandbox.fail("/pods", status=500)
        pending = PendingPodsCheck().run(_context(gateway))

    assert deadline.status is CheckStatus.ERROR and deadline.evidence["status"] == 403
    assert 'cannot get resource "jobs" in API group "batch"' in deadline.summary
    assert pending.status is CheckStatus.ERROR and "500 InternalError" in pending.summary


def test_no_finding_of_any_check_carries_a_secret() -> None:
    with running_sandbox("orchestration_timeout") as (_, gateway):
        ctx = _context(gateway)
        results = [check().run(ctx) for check in CHECKS]

    assert [r.status for r in results] == [
        CheckStatus.FAIL,
        CheckStatus.WARN,
        CheckStatus.OK,
        CheckStatus.FAIL,
    ]
    assert_no_secrets(results)
    assert all(secret not in json.dumps(r.evidence) for r in results for secret in SECRETS)


# -- re-run from the checkpoint ------------------------------------------------------------------------
def test_the_job_is_rerun_from_its_checkpoint_and_verified() -> None:
    clock = recorded_clock()
    with running_sandbox("orchestration_timeout", rule=always("succeeded")) as (sandbox, gateway):
        attempts = _run_l1(_context(gateway, clock), clock)
        writes = sandbox.writes()

    assert [a.status for a in attempts] == [AttemptStatus.FIXED]
    assert attempts[0].plan == (
        f"re-run job {NS}/{JOB} as a new job with RESUME_FROM_CHECKPOINT={CHECKPOINT}"
    )
    assert attempts[0].summary.endswith(f"completed when re-run from checkpoint {CHECKPOINT}")
    [create] = writes
    body = create.body
    assert body["metadata"]["generateName"] == f"{JOB}-l1-"
    env = body["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[0] == {"name": "DAG_RUN_DATE", "value": "2026-11-26"}
    assert env[-1] == {"name": "RESUME_FROM_CHECKPOINT", "value": CHECKPOINT}
    assert body["spec"]["activeDeadlineSeconds"] == 7200 and "selector" not in body["spec"]


def test_the_env_name_and_annotation_come_from_the_config() -> None:
    clock = recorded_clock()
    config = {"orchestration": {"checkpoint_annotation": "ml.platform/ckpt", "checkpoint_env": "CKPT_URI"}}
    with running_sandbox("orchestration_timeout", rule=always("succeeded")) as (sandbox, gateway):
        job = _fixture("Job", JOB)
        job["metadata"]["annotations"]["ml.platform/ckpt"] = "s3://elsewhere/step-2"
        sandbox.load(job)
        attempts = _run_l1(_context(gateway, clock, config=config), clock)
        env = sandbox.writes()[0].body["spec"]["template"]["spec"]["containers"][0]["env"]

    assert attempts[0].status is AttemptStatus.FIXED
    assert {"name": "CKPT_URI", "value": "s3://elsewhere/step-2"} in env


def test_a_rerun_that_fails_is_not_repeated() -> None:
    clock = recorded_clock()
    with running_sandbox("orchestration_timeout", rule=always("failed")) as (sandbox, gateway):
        attempts = _run_l1(_context(gateway, clock), clock)
        writes = sandbox.writes()

    assert [a.status for a in attempts] == [AttemptStatus.FAILED, AttemptStatus.REFUSED]
    assert "failed (BackoffLimitExceeded: Job has reached the specified backoff limit)" in attempts[0].summary
    assert attempts[1].summary == "refused: it was already re-run once from its checkpoint"
    assert len(writes) == 1


def test_a_stuck_job_that_still_runs_is_not_rerun_beside_itself() -> None:
    with running_sandbox("orchestration_timeout") as (sandbox, gateway):
        _running(sandbox, "2026-11-26T03:00:00.000000000Z dag.run: step 4/5 evaluate\n")
        ctx = _context(gateway)
        ctx.findings.extend(check().run(ctx) for check in CHECKS)
        plan = RerunFromCheckpoint().plan(ctx, NoCaps())

    assert plan is not None
    assert plan.refused == f"job {JOB} is still running; a person must stop it before it is re-run"


def test_the_module_lists_its_checks_and_remediations() -> None:
    assert [c.name for c in CHECKS] == ["job_deadline", "pods_pending", "step_silent", "upstream_jobs"]
    assert [r.name for r in REMEDIATIONS] == ["rerun_from_checkpoint"]


# -- end to end ----------------------------------------------------------------------------------------
DEADLINE_ALERT = {
    "labels": {
        "alertname": "KubeJobDeadlineExceeded",
        "namespace": NS,
        "job_name": JOB,
        "severity": "warning",
    },
    "annotations": {"summary": f"Job {NS}/{JOB} failed: DeadlineExceeded"},
    "fingerprint": "0c1d2e3f4a5b0001",
}
WORLD_CONFIG = {
    "levels": {"l1": {"verify_poll_interval": "1s"}},
    "remediation": {"allowlist": ["rerun_from_checkpoint"]},
}


def test_a_timed_out_dag_is_rerun_from_its_checkpoint_at_level_1() -> None:
    with SandboxWorld(config=WORLD_CONFIG, job_rule=always("succeeded")) as world:
        world.kube.load_fixture("orchestration_timeout")
        assert world.post_alerts(alertmanager_payload([DEADLINE_ALERT])).status == 202
        world.settle()

        [root] = world.slack.messages("#ml-alerts")
        [report] = world.slack.thread("#ml-alerts", root["ts"])
        [create] = [r for r in world.kube.writes() if r.method == "POST"]
        coordinator = world.slack.messages("#data-coordinator")

    assert "orchestration timeout" in root["text"]
    assert "✅ fixed at Level 1" in report["text"]
    assert f"• ❌ *Job deadline*: job {JOB} hit its deadline" in shown(report)
    assert step(report, "Re-run from checkpoint").startswith("• ✅ ")
    env = create.body["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "RESUME_FROM_CHECKPOINT", "value": CHECKPOINT} in env
    assert coordinator == []


def test_a_timed_out_dag_without_a_checkpoint_escalates_to_l2() -> None:
    with SandboxWorld(config=WORLD_CONFIG, job_rule=always("succeeded")) as world:
        world.kube.load_fixture("orchestration_timeout")
        _without_checkpoint(world.kube)
        assert world.post_alerts(alertmanager_payload([DEADLINE_ALERT])).status == 202
        world.settle()

        [root] = world.slack.messages("#ml-alerts")
        [report] = world.slack.thread("#ml-alerts", root["ts"])
        [l2] = world.slack.messages("#data-coordinator")
        writes = world.kube.writes()

    assert "❌" in report["text"]
    assert writes == []
    # the Request line is the category's seed ask, as Category.request_text words it
    assert f"Request: {Category.ORCHESTRATION_TIMEOUT.request_text}" in l2["text"]
    assert "Request: Guidance on an orchestration pattern" in l2["text"]
    attempted = field(l2, "Attempted:")
    assert f"• ❌ *Job deadline*: job {JOB} hit its deadline" in attempted
    assert "no checkpoint is configured" in attempted  # the rest of the line is in Details
    assert "• ❌ *Upstream jobs*" in attempted and "• ⚠️ *Pending pods*" in attempted
