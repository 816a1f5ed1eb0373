"""Level 1 for a version incompatibility, against the sandbox Kubernetes API and a real MLflow server."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pytest
from mlflow import MlflowClient

from bot.config import NoCaps, parse_config
from bot.core.clock import FakeClock
from bot.core.models import ActionId, AttemptStatus, Category, CheckStatus, Target
from bot.diagnostics.base import Context, Deps
from bot.diagnostics.mlflow_common import pins_in_environment, pins_in_requirements
from bot.diagnostics.registry import CategoryDiagnostics
from bot.diagnostics.runner import Limits, Runner, outcome_of
from bot.diagnostics.versions import (
    CHECKS,
    REMEDIATIONS,
    ImageVersionsCheck,
    ImportErrorLogCheck,
    RerunWithKnownGoodImage,
    RunRequirementsCheck,
)
from bot.integrations.kubernetes import KubeGateway
from bot.integrations.mlflow import MlflowGateway
from bot.sandbox.kube_api import FIXTURES, JobRule, Outcome
from bot.sandbox.world import COORDINATOR, SandboxWorld, alertmanager_payload
from tests.kube_fixtures import NS, assert_no_secrets, make_context, recorded_clock, running_sandbox
from tests.mlflow_server import MlflowServer
from tests.shown import field, shown

JOB = "train-fraud-model"
TRAIN_IMAGE = "registry.local/ml/train"
NUMPY_RULE = {
    "package": "numpy",
    "allowed": ">=1.26,<3",
    "reason": "training images are built against NumPy 2 ABI",
}
MATRIX = [NUMPY_RULE, {"package": "mlflow", "allowed": ">=3.0,<4"}]
NUMPY_CONFLICT = "numpy==1.24.0 (allowed >=1.26,<3: training images are built against NumPy 2 ABI)"
IN_SLACK = NUMPY_CONFLICT.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # mrkdwn-escaped
IMPORT_ERROR_LOG = "Traceback (most recent call last):\nImportError: numpy.core.multiarray failed to import\n"


def settings(known_good: dict[str, str] | None = None, matrix: list[dict[str, Any]] | None = None) -> Any:
    """An AppConfig with the versions section and the remediation on the allowlist."""
    return parse_config(
        {
            "levels": {"l1": {"verify_poll_interval": "1s"}},
            "versions": {
                "matrix": MATRIX if matrix is None else matrix,
                "known_good_images": known_good or {},
            },
            "remediation": {"allowlist": {"rerun_with_known_good_image": {}}},
        }
    )


def context(gateway: KubeGateway | None, clock: FakeClock, config: Any, **target: str) -> Context:
    ctx = make_context(
        gateway,
        Category.VERSION_INCOMPATIBILITY,
        JOB,
        clock,
        allowed={RerunWithKnownGoodImage.name: {}},
    )
    ctx.config = config
    if target:
        ctx = replace(ctx, target=replace(ctx.target, **target))
    return ctx


def succeed_on_tag(tag: str) -> JobRule:
    """A rule that completes a created Job only when every container runs `tag`; it fails on import."""

    def rule(job: dict[str, Any]) -> Outcome:
        containers = job["spec"]["template"]["spec"]["containers"]
        if all(c["image"].endswith(f":{tag}") for c in containers):
            return Outcome("succeeded")
        return Outcome("failed", IMPORT_ERROR_LOG)

    return rule


# -- the pod spec and the log --------------------------------------------------------------------------
def test_the_pod_spec_pins_are_checked_against_the_matrix_and_the_known_good_image() -> None:
    config = settings({TRAIN_IMAGE: "1.4.1"})
    with running_sandbox("version_conflict") as (_, gateway):
        result = ImageVersionsCheck().run(context(gateway, recorded_clock(), config))

    assert result.status is CheckStatus.FAIL
    assert result.summary == (
        f"job {JOB}: 1 version(s) outside the compatibility matrix: {NUMPY_CONFLICT} in env NUMPY_VERSION "
        f"of container trainer; container trainer runs {TRAIN_IMAGE}:1.4.2, the known-good tag is 1.4.1"
    )
    assert result.evidence["call"] == f"GET /apis/batch/v1/namespaces/{NS}/jobs/{JOB}"
    assert result.evidence["response"]["images"] == [
        {"container": "trainer", "image": f"{TRAIN_IMAGE}:1.4.2"}
    ]
    pins = {p["package"]: p["version"] for p in result.evidence["response"]["pins"]}
    assert pins == {TRAIN_IMAGE: "1.4.2", "numpy": "1.24.0", "mlflow": "3.17.2"}
    assert result.facts["images"] == [
        {"container": "trainer", "image": f"{TRAIN_IMAGE}:1.4.2", "repository": TRAIN_IMAGE, "tag": "1.4.2"}
    ]


def test_a_matrix_rule_on_an_image_repository_checks_the_image_tag() -> None:
    config = settings(matrix=[{"package": TRAIN_IMAGE, "allowed": "!=1.4.2", "reason": "broken NumPy build"}])
    with running_sandbox("version_conflict") as (_, gateway):
        result = ImageVersionsCheck().run(context(gateway, recorded_clock(), config))

    assert result.status is CheckStatus.FAIL
    assert f"{TRAIN_IMAGE}==1.4.2 (allowed !=1.4.2: broken NumPy build) in image of container trainer" in (
        result.summary
    )


def test_pins_that_fit_and_no_known_good_image_are_ok() -> None:
    config = settings(matrix=[{"package": "numpy", "allowed": ">=1.20"}])
    with running_sandbox("version_conflict") as (_, gateway):
        result = ImageVersionsCheck().run(context(gateway, recorded_clock(), config))

    assert result.status is CheckStatus.OK
    assert (
        result.summary
        == f"job {JOB} runs {TRAIN_IMAGE}:1.4.2; its 3 pinned version(s) fit the compatibility matrix"
    )


def test_the_import_error_lines_of_the_failed_pod_are_quoted_without_secrets() -> None:
    with running_sandbox("version_conflict") as (_, gateway):
        result = ImportErrorLogCheck().run(context(gateway, recorded_clock(), settings()))

    assert result.status is CheckStatus.FAIL
    assert result.summary == (
        "train-fraud-model-m4q8t/trainer: ImportError: numpy.core.multiarray failed to import "
        "(and 2 more such line(s))"
    )
    assert result.evidence["call"] == (
        f"GET /api/v1/namespaces/{NS}/pods/train-fraud-model-m4q8t/log?container=trainer&tailLines=100"
    )
    lines = result.evidence["response"]["lines"]
    assert lines[0].endswith("but you have numpy 1.24.0 which is incompatible.")
    assert lines[1].startswith("ValueError: numpy.dtype size changed, may indicate binary incompatibility")
    assert "[REDACTED]" in result.evidence["response"]["tail"]
    assert_no_secrets([result])


def test_a_log_without_import_errors_is_ok() -> None:
    with running_sandbox("training_oom") as (_, gateway):
        ctx = context(gateway, recorded_clock(), settings())
        result = ImportErrorLogCheck().run(replace(ctx, target=replace(ctx.target, job="train-churn-model")))

    assert result.status is CheckStatus.OK
    assert result.summary.startswith("no import or version error in the last 100 lines of train-churn-model-")


def test_a_forbidden_job_read_becomes_an_error_result() -> None:
    with running_sandbox("version_conflict") as (sandbox, gateway):
        sandbox.fail(f"/jobs/{JOB}", status=403)
        result = ImageVersionsCheck().run(context(gateway, recorded_clock(), settings()))

    assert result.status is CheckStatus.ERROR
    assert result.evidence["status"] == 403
    assert result.summary.startswith(f"kubernetes: GET job {NS}/{JOB}: 403 Forbidden")


def test_requirements_and_environment_files_yield_exact_pins() -> None:
    pins, unparsed = pins_in_requirements(
        "# pinned by the trainer\n-r base.txt\nnumpy==1.24.0  # ABI\npandas>=2\ntorch===2.5.1\nnot a req!\n",
        "model/requirements.txt",
    )
    conda, _ = pins_in_environment(
        "name: env\ndependencies:\n- python=3.11.7\n- pip<=24.0\n"
        "- pip:\n  - mlflow==3.17.2\n  - numpy==1.24.0\n",
        "model/conda.yaml",
    )
    python_env, _ = pins_in_environment(
        "python: 3.11.7\nbuild_dependencies:\n- pip==24.0\ndependencies:\n- -r requirements.txt\n",
        "model/python_env.yaml",
    )
    broken, problems = pins_in_environment("dependencies: [unclosed", "model/conda.yaml")

    assert [(p.package, p.version) for p in pins] == [("numpy", "1.24.0"), ("torch", "2.5.1")]
    assert unparsed == ["not a req!"]
    assert [(p.package, p.version) for p in conda] == [
        ("python", "3.11.7"),
        ("mlflow", "3.17.2"),
        ("numpy", "1.24.0"),
    ]
    assert [(p.package, p.version) for p in python_env] == [("python", "3.11.7"), ("pip", "24.0")]
    assert broken == [] and problems[0].startswith("not YAML")


def test_the_module_lists_its_checks_and_remediation() -> None:
    assert [c.name for c in CHECKS] == ["image_versions", "run_requirements", "import_errors"]
    assert [r.name for r in REMEDIATIONS] == ["rerun_with_known_good_image"]
    assert RunRequirementsCheck.needs == ("mlflow",)


# -- the remediation -----------------------------------------------------------------------------------
def run_l1(gateway: KubeGateway, clock: FakeClock, config: Any) -> Context:
    ctx = context(gateway, clock, config)
    limits = Limits(max_attempts=2, budget_s=300, check_timeout_s=20)
    Runner(clock.now).run(CategoryDiagnostics(CHECKS, REMEDIATIONS), ctx, limits, started=clock.now())
    return ctx


def test_the_job_is_rerun_on_the_known_good_image_and_completes() -> None:
    clock = recorded_clock()
    with running_sandbox("version_conflict", rule=succeed_on_tag("1.4.1")) as (sandbox, gateway):
        ctx = run_l1(gateway, clock, settings({TRAIN_IMAGE: "1.4.1"}))
        writes = sandbox.writes()
        created = ctx.attempts[0].evidence["facts"]["job_name"]

    [attempt] = ctx.attempts
    assert attempt.status is AttemptStatus.FIXED
    assert attempt.plan == (
        f"re-run job {NS}/{JOB} as a new job on the known-good image "
        f"(trainer {TRAIN_IMAGE}:1.4.2 → {TRAIN_IMAGE}:1.4.1)"
    )
    assert attempt.summary == f"job {created} completed on the known-good image {TRAIN_IMAGE}:1.4.1"
    [post] = writes
    assert (post.method, post.path) == ("POST", f"/apis/batch/v1/namespaces/{NS}/jobs")
    [trainer] = post.body["spec"]["template"]["spec"]["containers"]
    assert trainer["image"] == f"{TRAIN_IMAGE}:1.4.1"
    assert {"name": "NUMPY_VERSION", "value": "1.24.0"} in trainer["env"]
    assert post.body["metadata"]["generateName"] == f"{JOB}-l1-"
    assert post.body["metadata"]["annotations"]["escalation-bot/remediation"] == "rerun_with_known_good_image"
    assert "selector" not in post.body["spec"]
    assert outcome_of(ctx, "ImportError", False, 2).result.startswith("✅ fixed at Level 1")


def test_a_known_good_image_that_fails_too_is_tried_once_and_quoted() -> None:
    clock = recorded_clock()
    with running_sandbox("version_conflict", rule=succeed_on_tag("9.9.9")) as (sandbox, gateway):
        ctx = run_l1(gateway, clock, settings({TRAIN_IMAGE: "1.4.1"}))
        writes = sandbox.writes()

    [attempt] = ctx.attempts
    assert attempt.status is AttemptStatus.FAILED
    assert attempt.summary.endswith(
        "too (BackoffLimitExceeded: Job has reached the specified backoff limit); "
        "ImportError: numpy.core.multiarray failed to import"
    )
    assert len(writes) == 1


def test_without_a_known_good_image_nothing_is_rerun() -> None:
    clock = recorded_clock()
    with running_sandbox("version_conflict") as (sandbox, gateway):
        ctx = run_l1(gateway, clock, settings())
        writes = sandbox.writes()

    assert ctx.attempts == [] and writes == []
    outcome = outcome_of(ctx, "ImportError", False, 2)
    assert outcome.action.startswith("no remediation applied")
    assert "run_requirements (skipped)" in outcome.attempted


def test_a_namespace_outside_the_policy_refuses_the_rerun() -> None:
    clock = recorded_clock()
    with running_sandbox("version_conflict") as (sandbox, gateway):
        ctx = context(gateway, clock, settings({TRAIN_IMAGE: "1.4.1"}))
        ctx.findings.append(ImageVersionsCheck().run(ctx))
        ctx = replace(ctx, policy=replace(ctx.policy, namespaces=("ml-serving",)))
        plan = RerunWithKnownGoodImage().plan(ctx, NoCaps())

    assert plan is not None and plan.refused == f"namespace {NS} is not in the allowed namespaces"
    assert sandbox.writes() == []


# -- the MLflow run --------------------------------------------------------------------------------------
def failed_run(server: MlflowServer, requirements: str = "numpy==1.24.0\nmlflow==3.17.2\n") -> str:
    """A FAILED run that logged a model environment pinning an old NumPy."""
    client = MlflowClient(tracking_uri=server.url)
    exp = client.create_experiment(f"versions-{time.monotonic_ns()}")
    run_id: str = client.create_run(exp, run_name="fraud-nightly").info.run_id
    client.set_tag(run_id, "mlflow.source.git.commit", "4f9c2e1")
    client.set_tag(run_id, "numpy_version", "1.24.0")
    client.log_text(run_id, requirements, "model/requirements.txt")
    client.log_text(
        run_id,
        "python: 3.11.7\nbuild_dependencies:\n- pip==24.0\ndependencies:\n- -r requirements.txt\n",
        "model/python_env.yaml",
    )
    client.log_text(run_id, "pip install --index-url https://u:S3cretPass@pypi.internal\n", "logs/pip.log")
    client.set_terminated(run_id, "FAILED")
    return run_id


@pytest.mark.slow
def test_the_runs_logged_requirements_conflict_with_the_matrix(mlflow_server: MlflowServer) -> None:
    run_id = failed_run(mlflow_server)
    mlflow = MlflowGateway(mlflow_server.url, timeout_s=5, max_retries=0)
    ctx = replace(
        context(None, recorded_clock(), settings()),
        target=Target(namespace=NS, job=JOB, run_id=run_id),
        deps=Deps(mlflow=mlflow),
    )

    result = RunRequirementsCheck().run(ctx)

    assert result.status is CheckStatus.FAIL
    assert result.summary == (
        f"run {run_id}: 1 pinned version(s) outside the compatibility matrix: "
        f"{NUMPY_CONFLICT} in run tag numpy_version, model/requirements.txt"
    )
    assert result.evidence["call"] == f"GET /api/2.0/mlflow/runs/get?run_id={run_id}"
    response = result.evidence["response"]
    assert response["tags"] == {
        "mlflow.runName": "fraud-nightly",
        "mlflow.source.git.commit": "4f9c2e1",
        "numpy_version": "1.24.0",
    }
    assert response["artifacts"]["model/requirements.txt"]["pins"] == ["numpy==1.24.0", "mlflow==3.17.2"]
    assert response["artifacts"]["model/python_env.yaml"]["pins"] == ["python==3.11.7", "pip==24.0"]
    assert f"download runs:/{run_id}/model/requirements.txt" in result.evidence["calls"]
    assert result.facts["run_conflicts"] == [
        f"{NUMPY_CONFLICT} in run tag numpy_version, model/requirements.txt"
    ]
    assert result.facts["git_commit"] == "4f9c2e1"


@pytest.mark.slow
def test_the_run_id_is_read_from_the_jobs_annotation(mlflow_server: MlflowServer) -> None:
    run_id = failed_run(mlflow_server, requirements="numpy==2.1.3\n")
    job = json.loads((FIXTURES / "version_conflict.json").read_text())[0]
    job["metadata"]["annotations"]["mlflow.org/run-id"] = run_id
    with running_sandbox("version_conflict") as (sandbox, gateway):
        sandbox.load(job)
        ctx = context(gateway, recorded_clock(), settings())
        ctx = replace(ctx, deps=Deps(kube=gateway, mlflow=MlflowGateway(mlflow_server.url, 5, 0)))
        result = RunRequirementsCheck().run(ctx)

    assert result.evidence["run_id_from"] == f"annotation mlflow.org/run-id of job {NS}/{JOB}"
    assert result.status is CheckStatus.FAIL  # the run's numpy_version tag still says 1.24.0
    assert "model/requirements.txt" not in result.summary


@pytest.mark.slow
def test_an_unknown_run_is_an_error_result(mlflow_server: MlflowServer) -> None:
    ctx = replace(
        context(None, recorded_clock(), settings()),
        target=Target(namespace=NS, job=JOB, run_id="0123456789abcdef0123456789abcdef"),
        deps=Deps(mlflow=MlflowGateway(mlflow_server.url, timeout_s=5, max_retries=0)),
    )

    result = RunRequirementsCheck().run(ctx)

    assert result.status is CheckStatus.ERROR
    assert "RESOURCE_DOES_NOT_EXIST" in result.summary
    assert result.evidence["call"] == "GET /api/2.0/mlflow/runs/get?run_id=0123456789abcdef0123456789abcdef"


def test_without_a_run_id_the_run_check_is_skipped() -> None:
    result = RunRequirementsCheck().run(context(None, recorded_clock(), settings()))

    assert result.status is CheckStatus.SKIPPED
    assert result.summary.startswith("the alert names no MLflow run")


# -- end to end ------------------------------------------------------------------------------------------
def version_alert(run_id: str) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": "TrainingJobImportError",
            "namespace": NS,
            "job_name": JOB,
            "run_id": run_id,
            "severity": "warning",
        },
        "annotations": {
            "summary": f"{JOB} failed on start: ImportError: numpy.core.multiarray failed to import"
        },
        "fingerprint": "a1b2c3d4e5f60103",
    }


def world_config(known_good: dict[str, str]) -> dict[str, Any]:
    return {
        "levels": {"l1": {"verify_poll_interval": "1s"}},
        "versions": {"matrix": MATRIX, "known_good_images": known_good},
        "remediation": {"allowlist": {"rerun_with_known_good_image": {}}},
    }


@pytest.mark.slow
def test_a_version_conflict_is_fixed_by_the_known_good_image_and_the_thread_says_so(
    mlflow_server: MlflowServer,
) -> None:
    run_id = failed_run(mlflow_server)
    with SandboxWorld(
        config=world_config({TRAIN_IMAGE: "1.4.1"}),
        mlflow_url=mlflow_server.url,
        job_rule=succeed_on_tag("1.4.1"),
    ) as world:
        world.kube.load_fixture("version_conflict")
        assert world.post_alerts(alertmanager_payload([version_alert(run_id)])).status == 202
        world.settle()

        [root] = world.slack.messages("#ml-alerts")
        [report] = world.slack.thread("#ml-alerts", root["ts"])
        [post] = [w for w in world.kube.writes() if w.method == "POST"]
        coordinator = world.slack.messages("#data-coordinator")

    assert "version incompatibility" in root["text"]
    assert "✅ fixed at Level 1" in report["text"]
    assert f"completed on the known-good image {TRAIN_IMAGE}:1.4.1" in report["text"]
    assert IN_SLACK in shown(report)
    assert post.body["spec"]["template"]["spec"]["containers"][0]["image"] == f"{TRAIN_IMAGE}:1.4.1"
    assert coordinator == []


@pytest.mark.slow
def test_without_a_known_good_image_the_conflicts_go_to_l2_asking_for_a_versioning_strategy(
    mlflow_server: MlflowServer,
) -> None:
    run_id = failed_run(mlflow_server)
    with SandboxWorld(config=world_config({}), mlflow_url=mlflow_server.url) as world:
        world.kube.load_fixture("version_conflict")
        assert world.post_alerts(alertmanager_payload([version_alert(run_id)])).status == 202
        world.settle()

        [l2] = world.slack.messages("#data-coordinator")
        writes = world.kube.writes()
        world.click(COORDINATOR, ActionId.DETAILS, "#data-coordinator", l2["ts"])
        world.settle()
        details = json.dumps(world.slack.views[-1]["blocks"], ensure_ascii=False)

    assert "Request: Guidance on a versioning strategy" in l2["text"]
    attempted = field(l2, "Attempted:")
    assert "• ❌ *Image versions*" in attempted and "• ❌ *Import errors*" in attempted
    assert f"• ❌ *Run requirements*: run {run_id[:8]}…" in attempted
    assert "numpy==1.24.0" in attempted
    assert IN_SLACK in details  # the whole conflict, with what is allowed, is one click away
    assert "S3cretPass" not in shown(l2) and "S3cretPass" not in details
    assert writes == []
