"""Level 1 for a failed model registration: a real mlflow server for what it can produce, the sandbox
MLflow (recorded JSON) for FAILED_REGISTRATION, through the real MlflowClient."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from mlflow import MlflowClient

from bot.config import parse_config
from bot.core.clock import FakeClock
from bot.core.models import AttemptStatus, Category, CheckStatus, Target
from bot.diagnostics.base import Context, Deps, RemediationPolicy
from bot.diagnostics.registration import (
    CHECKS,
    REMEDIATIONS,
    REREGISTERED_TAG,
    ModelVersionCheck,
    RegisteredModelCheck,
    ReregisterModelVersion,
    RunArtifactsCheck,
    artifact_location,
)
from bot.diagnostics.registry import CategoryDiagnostics
from bot.diagnostics.runner import Limits, Runner
from bot.integrations.mlflow import MlflowGateway
from bot.sandbox.mlflow_api import SandboxMlflowAPI
from bot.sandbox.world import SandboxWorld, alertmanager_payload
from tests.kube_fixtures import recorded_clock
from tests.mlflow_server import MlflowServer
from tests.shown import field

CHURN_RUN = "5f3e2a1b9c8d4e7f8a6b5c4d3e2f1a0b"
FRAUD_RUN = "9a8b7c6d5e4f40312a1b0c9d8e7f6a5b"
ALLOWED = {ReregisterModelVersion.name: {}}
MLMODEL = """artifact_path: model
flavors:
  python_function:
    env:
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
mlflow_version: 3.17.2
"""


def context(
    gateway: MlflowGateway, model: str | None, version: str | None, clock: FakeClock | None = None
) -> Context:
    clock = clock or recorded_clock()
    return Context(
        incident_id=9,
        category=Category.MODEL_REGISTRATION_FAILED,
        target=Target(model=model, model_version=version),
        labels={},
        annotations={},
        deps=Deps(mlflow=gateway),
        policy=RemediationPolicy(allowed=dict(ALLOWED)),
        now=clock.now,
        sleep=clock.sleep,
        verify_poll_seconds=5.0,
        config=parse_config({}),
    )


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxMlflowAPI, MlflowGateway]]:
    with SandboxMlflowAPI() as mlflow:
        yield mlflow, MlflowGateway(mlflow.url, timeout_s=5, max_retries=0)


# -- against a real mlflow server --------------------------------------------------------------------
@dataclass(frozen=True)
class Registered:
    gateway: MlflowGateway
    name: str
    intact_run: str
    broken_run: str


@pytest.fixture(scope="module")
def registered(mlflow_server: MlflowServer) -> Registered:
    """A model with v1 from a run whose MLmodel is intact (alias champion) and v2 from a run without one."""
    client = MlflowClient(mlflow_server.url)
    name = f"churn-{time.monotonic_ns()}"
    experiment = client.create_experiment(name)
    intact, broken = client.create_run(experiment).info.run_id, client.create_run(experiment).info.run_id
    for path, text in (("MLmodel", MLMODEL), ("model.pkl", "pickle"), ("python_env.yaml", "python: 3.11\n")):
        client.log_text(intact, text, f"model/{path}")
    client.log_text(broken, "pickle", "model/model.pkl")
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{intact}/model", run_id=intact)
    client.create_model_version(name, f"runs:/{broken}/model", run_id=broken)
    client.set_registered_model_alias(name, "champion", "1")
    return Registered(MlflowGateway(mlflow_server.url, timeout_s=5, max_retries=0), name, intact, broken)


@pytest.mark.slow
def test_a_ready_version_with_intact_artifacts_is_ok_on_a_real_server(registered: Registered) -> None:
    ctx = context(registered.gateway, registered.name, "1")

    version, artifacts, model = (check().run(ctx) for check in CHECKS)

    assert version.status is CheckStatus.OK
    assert version.summary == f"{registered.name} v1 is READY (source runs:/{registered.intact_run}/model)"
    assert (
        version.evidence["call"] == f"GET /api/2.0/mlflow/model-versions/get?name={registered.name}&version=1"
    )
    assert version.evidence["response"]["aliases"] == ["champion"]
    assert artifacts.status is CheckStatus.OK
    assert artifacts.summary == (
        f"runs:/{registered.intact_run}/model holds an MLmodel with flavors python_function, sklearn "
        "and the 2 file(s) it names"
    )
    assert artifacts.facts["artifacts_intact"] is True
    assert model.status is CheckStatus.OK
    assert model.summary == f"registered model {registered.name} exists (champion → v1)"


@pytest.mark.slow
def test_a_missing_model_is_a_resource_does_not_exist_finding(registered: Registered) -> None:
    ctx = context(registered.gateway, "no-such-model", "1")

    version = ModelVersionCheck().run(ctx)
    model = RegisteredModelCheck().run(ctx)

    assert version.status is CheckStatus.FAIL
    assert version.summary == "model version no-such-model/1 does not exist (RESOURCE_DOES_NOT_EXIST)"
    assert "RESOURCE_DOES_NOT_EXIST" in version.evidence["error"] and version.evidence["status"] == 404
    assert model.status is CheckStatus.FAIL
    assert model.summary == "registered model no-such-model does not exist (RESOURCE_DOES_NOT_EXIST)"


@pytest.mark.slow
def test_a_run_without_an_mlmodel_is_found_on_a_real_server(registered: Registered) -> None:
    result = RunArtifactsCheck().run(context(registered.gateway, registered.name, "2"))

    assert result.status is CheckStatus.FAIL
    assert result.summary == f"no MLmodel under runs:/{registered.broken_run}/model (found: model.pkl)"
    assert result.evidence["call"] == f"list artifacts runs:/{registered.broken_run}/model"
    assert result.facts["artifacts_intact"] is False


# -- recorded FAILED_REGISTRATION from the sandbox ----------------------------------------------------
def test_a_failed_registration_is_reported_with_its_message(sandbox: tuple[SandboxMlflowAPI, Any]) -> None:
    _, gateway = sandbox
    result = ModelVersionCheck().run(context(gateway, "churn", "2"))

    assert result.status is CheckStatus.FAIL
    assert result.summary == (
        f"churn v2 is FAILED_REGISTRATION (source runs:/{CHURN_RUN}/model): Failed to copy model artifacts "
        "to the registry storage: upstream returned 503 Service Unavailable"
    )
    assert result.facts["artifact_run_id"] == CHURN_RUN and result.facts["artifact_path"] == "model"


def test_an_mlmodel_that_does_not_parse_or_names_missing_files_fails(
    sandbox: tuple[SandboxMlflowAPI, Any],
) -> None:
    mlflow, gateway = sandbox
    mlflow.set_artifact(CHURN_RUN, "model/MLmodel", "flavors: [unclosed\n")
    broken = RunArtifactsCheck().run(context(gateway, "churn", "2"))
    mlflow.set_artifact(CHURN_RUN, "model/MLmodel", MLMODEL)
    mlflow.set_artifact(CHURN_RUN, "model/python_env.yaml", None)
    missing = RunArtifactsCheck().run(context(gateway, "churn", "2"))

    assert broken.status is CheckStatus.FAIL
    assert broken.summary.startswith(f"MLmodel under runs:/{CHURN_RUN}/model is not valid YAML (")
    assert missing.status is CheckStatus.FAIL
    assert (
        missing.summary
        == f"MLmodel under runs:/{CHURN_RUN}/model names files that are missing: python_env.yaml"
    )


def test_an_alias_on_a_version_that_is_not_ready_is_reported(sandbox: tuple[SandboxMlflowAPI, Any]) -> None:
    mlflow, gateway = sandbox
    before = RegisteredModelCheck().run(context(gateway, "churn", "2"))
    mlflow.set_alias("churn", "champion", "2")
    after = RegisteredModelCheck().run(context(gateway, "churn", "2"))

    assert before.status is CheckStatus.OK
    assert before.evidence["response"]["aliases"] == {"champion": {"version": "1", "status": "READY"}}
    assert after.status is CheckStatus.FAIL
    assert after.summary == (
        "registered model churn has aliases not on a READY version: champion → v2 (FAILED_REGISTRATION)"
    )
    assert after.facts == {"registered_model_exists": True, "aliases": {"champion": "2"}}


@pytest.mark.parametrize(
    ("source", "run_id", "where"),
    [
        ("runs:/abc/model", "abc", ("abc", "model")),
        ("mlflow-artifacts:/1/abc/artifacts/model", "abc", ("abc", "model")),
        ("s3://bucket/mlflow/1/abc/artifacts/sub/model", "abc", ("abc", "sub/model")),
        ("models:/m-0123456789", "abc", None),
    ],
)
def test_the_artifact_location_of_a_source(source: str, run_id: str, where: tuple[str, str] | None) -> None:
    assert artifact_location(source, run_id) == where


def run_level1(ctx: Context, clock: FakeClock) -> list[Any]:
    limits = Limits(max_attempts=2, budget_s=300, check_timeout_s=20)
    return Runner(clock.now).run(CategoryDiagnostics(CHECKS, REMEDIATIONS), ctx, limits, started=clock.now())


def test_a_failed_version_with_intact_artifacts_is_registered_again_and_becomes_ready(
    sandbox: tuple[SandboxMlflowAPI, Any],
) -> None:
    mlflow, gateway = sandbox
    clock = recorded_clock()
    ctx = context(gateway, "churn", "2", clock)

    attempts = run_level1(ctx, clock)
    [create] = [r for r in mlflow.requests if r.path == "/api/2.0/mlflow/model-versions/create"]

    assert [(a.name, a.status) for a in attempts] == [("reregister_model_version", AttemptStatus.FIXED)]
    assert attempts[0].summary == f"churn v3 registered from runs:/{CHURN_RUN}/model is READY"
    assert create.body["source"] == f"runs:/{CHURN_RUN}/model" and create.body["run_id"] == CHURN_RUN
    assert {"key": REREGISTERED_TAG, "value": "2"} in create.body["tags"]
    assert clock.slept == [5.0]  # one poll while the new version was PENDING_REGISTRATION
    created = mlflow.model_version("churn", "3")
    assert created is not None and created["status"] == "READY"


def test_a_version_that_fails_again_is_not_fixed_and_not_retried(
    sandbox: tuple[SandboxMlflowAPI, Any],
) -> None:
    mlflow, gateway = sandbox
    mlflow.on_version_created = lambda _version: "FAILED_REGISTRATION"
    clock = recorded_clock()
    ctx = context(gateway, "churn", "2", clock)

    attempts = run_level1(ctx, clock)

    assert [(a.name, a.status) for a in attempts] == [
        ("reregister_model_version", AttemptStatus.FAILED),
        ("reregister_model_version", AttemptStatus.REFUSED),
    ]
    assert attempts[0].summary == "churn v3 failed registration too"
    assert attempts[1].summary == "refused: churn v2 was already registered again once"


def test_missing_artifacts_are_not_registered_again(sandbox: tuple[SandboxMlflowAPI, Any]) -> None:
    mlflow, gateway = sandbox
    clock = recorded_clock()
    ctx = context(gateway, "fraud", "2", clock)

    attempts = run_level1(ctx, clock)

    assert attempts == []
    assert [f.status for f in ctx.findings] == [CheckStatus.FAIL, CheckStatus.FAIL, CheckStatus.OK]
    assert not [r for r in mlflow.requests if r.method == "POST" and "model-versions" in r.path]


def test_the_module_lists_its_checks_and_remediations() -> None:
    assert [c.name for c in CHECKS] == ["model_version_status", "run_model_artifacts", "registered_model"]
    assert [r.name for r in REMEDIATIONS] == ["reregister_model_version"]


# -- end to end: an Alertmanager alert through the bot --------------------------------------------
def registration_alert(model: str, fingerprint: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": "ModelRegistrationFailed", "model": model, "model_version": "2"},
        "annotations": {"summary": f"Model version {model}/2 is FAILED_REGISTRATION"},
        "fingerprint": fingerprint,
    }


CONFIG = {
    "mlflow": {"max_retries": 0, "request_timeout": "5s"},
    "levels": {"l1": {"verify_poll_interval": "1s"}},
    "remediation": {"allowlist": {"reregister_model_version": {}}},
}


def test_a_failed_registration_is_fixed_at_level_1() -> None:
    with (
        SandboxMlflowAPI() as mlflow,
        SandboxWorld(config=CONFIG, mlflow_url=mlflow.url, clock=FakeClock()) as world,
    ):
        assert world.post_alerts(alertmanager_payload([registration_alert("churn", "b1")])).status == 202
        world.settle()
        [root] = world.slack.messages("#ml-alerts")
        [report] = world.slack.thread("#ml-alerts", root["ts"])
        created = mlflow.model_version("churn", "3")

    assert "model registration failed" in root["text"]
    assert "✅ fixed at Level 1" in report["text"]
    assert f"churn v3 registered from runs:/{CHURN_RUN[:8]}…/model is READY" in report["text"]
    assert created is not None and created["status"] == "READY"


def test_a_registration_whose_artifacts_are_missing_goes_to_level_2() -> None:
    with (
        SandboxMlflowAPI() as mlflow,
        SandboxWorld(config=CONFIG, mlflow_url=mlflow.url, clock=FakeClock()) as world,
    ):
        assert world.post_alerts(alertmanager_payload([registration_alert("fraud", "b2")])).status == 202
        world.settle()
        [l2] = world.slack.messages("#data-coordinator")

    assert "Request: Guidance on a model registry pattern" in l2["text"]
    attempted = field(l2, "Attempted:")
    assert "• ❌ *Model version status*: fraud v2 is FAILED_REGISTRATION" in attempted
    # a 32-digit run id is shortened in the message; Details has it whole
    assert f"• ❌ *Model artifacts*: no MLmodel under runs:/{FRAUD_RUN[:8]}…/model (found: model.pkl)" in (
        attempted
    )
