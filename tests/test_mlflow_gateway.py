"""The MLflow adapter against a real `mlflow server` on loopback."""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient

from bot.core.errors import IntegrationError
from bot.integrations.mlflow import MlflowGateway
from tests.mlflow_server import MlflowServer, _free_port

pytestmark = pytest.mark.slow


def test_the_gateway_reads_runs_artifacts_and_model_versions(mlflow_server: MlflowServer) -> None:
    client = MlflowClient(tracking_uri=mlflow_server.url)
    exp = client.create_experiment(f"gateway-{time.monotonic_ns()}")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "loss", 0.9)
    client.log_text(run.info.run_id, "numpy==1.24.0\nmlflow==3.17.2\n", "model/requirements.txt")
    client.set_terminated(run.info.run_id, "FAILED")
    gateway = MlflowGateway(mlflow_server.url, timeout_s=5, max_retries=0)

    assert gateway.probe("/health").ok and gateway.probe("/version").body == "3.17.2"
    assert gateway.get_run(run.info.run_id).info.status == "FAILED"
    assert "numpy==1.24.0" in (gateway.read_artifact_text(run.info.run_id, "model/requirements.txt") or "")
    assert gateway.read_artifact_text(run.info.run_id, "model/missing.txt") is None
    with pytest.raises(IntegrationError, match="RESOURCE_DOES_NOT_EXIST"):
        gateway.get_model_version("no-such-model", "1")


def test_a_dead_tracking_server_fails_in_seconds_not_minutes() -> None:
    gateway = MlflowGateway(f"http://127.0.0.1:{_free_port()}", timeout_s=2, max_retries=0)
    started = time.monotonic()
    with pytest.raises(IntegrationError):
        gateway.get_run("0123456789abcdef")
    probe = gateway.probe("/health")
    assert not probe.ok and probe.error and "Connection" in probe.error
    print(f"dead server: get_run and /health failed after {time.monotonic() - started:.2f}s")
