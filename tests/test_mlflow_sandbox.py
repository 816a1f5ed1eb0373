"""The sandbox MLflow server, driven by the real MlflowClient over loopback HTTP."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from bot.integrations.kubernetes import KubeGateway
from bot.sandbox.kube_api import SandboxKubeAPI
from bot.sandbox.mlflow_api import FIXTURES, RESTARTED_AT, SandboxMlflowAPI
from bot.sandbox.world import http

CHURN_RUN = "5f3e2a1b9c8d4e7f8a6b5c4d3e2f1a0b"
FRAUD_RUN = "9a8b7c6d5e4f40312a1b0c9d8e7f6a5b"


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxMlflowAPI]:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with SandboxMlflowAPI() as s:
        yield s


def test_health_and_version_answer_like_the_real_server(sandbox: SandboxMlflowAPI) -> None:
    health = http("GET", sandbox.url + "/health")
    version = http("GET", sandbox.url + "/version")

    assert (health.status, health.body) == (200, b"OK")
    assert (version.status, version.body) == (200, b"3.17.2")


def test_the_real_client_reads_runs_and_searches(sandbox: SandboxMlflowAPI) -> None:
    client = MlflowClient(sandbox.url)

    run = client.get_run(CHURN_RUN)
    finished = client.search_runs(["1"], "attributes.status = 'FINISHED'", max_results=10)
    failed = client.search_runs(["1"], "attributes.status = 'FAILED'")
    experiments = client.search_experiments(max_results=1)

    assert (run.info.status, run.info.run_name) == ("FINISHED", "train-churn-model")
    assert run.data.metrics == {"auc": 0.912, "loss": 0.231}
    assert run.info.artifact_uri == f"mlflow-artifacts:/1/{CHURN_RUN}/artifacts"
    assert {r.info.run_id for r in finished} == {CHURN_RUN, FRAUD_RUN}
    assert list(failed) == []
    assert [e.name for e in experiments] == ["Default"]


def test_the_real_client_lists_and_downloads_artifacts_through_the_proxy(sandbox: SandboxMlflowAPI) -> None:
    client = MlflowClient(sandbox.url)

    top = [(f.path, f.is_dir) for f in client.list_artifacts(CHURN_RUN)]
    model = [f.path for f in client.list_artifacts(CHURN_RUN, "model")]
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(CHURN_RUN, "model/MLmodel", tmp)
        mlmodel = yaml.safe_load(Path(local).read_text())

    assert top == [("logs", True), ("model", True)]
    assert "model/MLmodel" in model and "model/model.pkl" in model
    assert sorted(mlmodel["flavors"]) == ["python_function", "sklearn"]
    assert any(r.path.startswith("/api/2.0/mlflow-artifacts/artifacts/1/") for r in sandbox.requests)


def test_the_registry_serves_recorded_states_the_oss_server_cannot_produce(sandbox: SandboxMlflowAPI) -> None:
    client = MlflowClient(sandbox.url)

    failed = client.get_model_version("churn", "2")
    model = client.get_registered_model("churn")
    champion = client.get_model_version_by_alias("churn", "champion")
    with pytest.raises(MlflowException) as missing:
        client.get_model_version("no-such-model", "1")

    assert failed.status == "FAILED_REGISTRATION"
    assert "503 Service Unavailable" in (failed.status_message or "")
    assert failed.source == f"runs:/{CHURN_RUN}/model"
    assert model.aliases == {"champion": "1"}
    assert (champion.version, champion.status) == ("1", "READY")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_a_created_version_is_pending_then_ready(sandbox: SandboxMlflowAPI) -> None:
    client = MlflowClient(sandbox.url)

    created = client.create_model_version(
        "churn", f"runs:/{CHURN_RUN}/model", run_id=CHURN_RUN, await_creation_for=0
    )
    first = client.get_model_version("churn", created.version)
    second = client.get_model_version("churn", created.version)

    assert (created.version, created.status) == ("3", "PENDING_REGISTRATION")
    assert (first.status, second.status) == ("PENDING_REGISTRATION", "READY")
    [create] = [r for r in sandbox.requests if r.path.endswith("/model-versions/create")]
    assert create.body["source"] == f"runs:/{CHURN_RUN}/model"


def test_a_registration_rule_can_fail_new_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with SandboxMlflowAPI(pending_reads=0, on_version_created=lambda _v: "FAILED_REGISTRATION") as sandbox:
        client = MlflowClient(sandbox.url)
        created = client.create_model_version("fraud", f"runs:/{FRAUD_RUN}/model", await_creation_for=0)

        assert client.get_model_version("fraud", created.version).status == "FAILED_REGISTRATION"


def test_down_answers_every_request_with_the_error_until_up(sandbox: SandboxMlflowAPI) -> None:
    sandbox.down(503)
    down = http("GET", sandbox.url + "/health")
    with pytest.raises(MlflowException):
        MlflowClient(sandbox.url).get_run(CHURN_RUN)
    sandbox.up()
    up = http("GET", sandbox.url + "/health")

    assert down.status == 503 and b"Service Unavailable" in down.body
    assert up.status == 200


def test_a_limited_outage_ends_by_itself(sandbox: SandboxMlflowAPI) -> None:
    sandbox.down(502, requests=2)

    statuses = [http("GET", sandbox.url + "/health").status for _ in range(3)]

    assert statuses == [502, 502, 200]
    assert not sandbox.is_down


def test_a_rollout_restart_in_the_kube_sandbox_brings_it_back(sandbox: SandboxMlflowAPI) -> None:
    deployment = json.loads((FIXTURES / "tracking_server_deployment.json").read_text())[0]
    with SandboxKubeAPI([deployment]) as kube:
        sandbox.recover_on_restart(kube, "ml-platform/mlflow-server")
        sandbox.down(503)
        gateway = KubeGateway.for_url(kube.url)
        try:
            gateway.patch_deployment("ml-platform", "mlflow-server", {"metadata": {"labels": {"x": "y"}}})
            still_down = http("GET", sandbox.url + "/health").status
            body = {
                "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2026-11-26T09:00:00Z"}}}}
            }
            gateway.patch_deployment("ml-platform", "mlflow-server", body)
        finally:
            gateway.close()

    assert still_down == 503
    assert http("GET", sandbox.url + "/health").status == 200


def test_every_request_is_recorded(sandbox: SandboxMlflowAPI) -> None:
    http("GET", sandbox.url + "/version")

    seen = sandbox.wait_for(lambda r: r.path == "/version")

    assert (seen.method, seen.query) == ("GET", {})
