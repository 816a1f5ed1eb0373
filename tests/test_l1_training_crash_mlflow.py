"""The MLflow side of a training crash: how the run ended, its last metrics and its stderr, redacted."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from mlflow import MlflowClient

from bot.core.models import Category, CheckStatus, Target
from bot.diagnostics.base import Context, Deps
from bot.diagnostics.training_crash import CHECKS, MlflowRunCheck
from bot.integrations.mlflow import MlflowGateway
from bot.sandbox.world import OOM_ALERT, SandboxWorld, alertmanager_payload
from tests.kube_fixtures import NS, SECRETS, make_context, recorded_clock
from tests.mlflow_server import MlflowServer
from tests.shown import shown, step

TOKEN = SECRETS[0]
STDERR = "".join(f"epoch 3 step {i}: loss=0.4{i % 10}\n" for i in range(60)) + (
    f"fetching shard 7 with token={TOKEN}\n"
    "Traceback (most recent call last):\n"
    '  File "/app/train.py", line 88, in <module>\n'
    "RuntimeError: CUDA error: an illegal memory access was encountered\n"
)


def new_run(server: MlflowServer, status: str, artifacts: dict[str, str]) -> str:
    """A run with two loss values (latest 0.42), an accuracy, params and tags, ended with `status`."""
    client = MlflowClient(tracking_uri=server.url)
    exp = client.create_experiment(f"training-{time.monotonic_ns()}")
    run_id: str = client.create_run(exp, run_name="churn-train", tags={"team": "churn"}).info.run_id
    client.log_metric(run_id, "loss", 0.9, step=1)
    client.log_metric(run_id, "loss", 0.42, step=2)
    client.log_metric(run_id, "accuracy", 0.71, step=2)
    client.log_param(run_id, "lr", "0.001")
    client.log_param(run_id, "batch_size", "512")
    for path, text in artifacts.items():
        client.log_text(run_id, text, path)
    client.set_terminated(run_id, status)
    return run_id


def run_context(server: MlflowServer, run_id: str | None) -> Context:
    ctx = make_context(None, Category.TRAINING_CRASH, "train-churn-model", recorded_clock())
    target = Target(namespace=NS, job="train-churn-model", run_id=run_id)
    return replace(
        ctx, target=target, deps=Deps(mlflow=MlflowGateway(server.url, timeout_s=5, max_retries=0))
    )


@pytest.mark.slow
def test_a_failed_run_reports_its_last_metrics_and_a_redacted_stderr_tail(
    mlflow_server: MlflowServer,
) -> None:
    run_id = new_run(mlflow_server, "FAILED", {"logs/stderr.log": STDERR, "logs/other.log": "unrelated\n"})

    result = MlflowRunCheck().run(run_context(mlflow_server, run_id))

    assert result.status is CheckStatus.FAIL
    assert result.summary.startswith(f"MLflow run churn-train ({run_id}) is FAILED since ")
    assert result.summary.endswith(
        "; last metrics: accuracy=0.71, loss=0.42; "
        "logs/stderr.log: RuntimeError: CUDA error: an illegal memory access was encountered"
    )
    assert result.evidence["call"] == f"GET /api/2.0/mlflow/runs/get?run_id={run_id}"
    run = result.evidence["response"]
    assert (run["status"], run["run_name"]) == ("FAILED", "churn-train")
    assert run["metrics"] == {"accuracy": 0.71, "loss": 0.42}
    assert run["params"] == {"batch_size": "512", "lr": "0.001"}
    assert run["tags"] == {"team": "churn"}  # mlflow.* system tags are hidden
    assert run["end_time"] is not None
    log = result.evidence["log"]
    assert log["path"] == "logs/stderr.log"
    assert log["call"] == f"download runs:/{run_id}/logs/stderr.log"
    tail = log["tail"].splitlines()
    assert len(tail) == 40 and tail[-1].startswith("RuntimeError: CUDA error")
    assert "epoch 3 step 0:" not in log["tail"]  # only the tail
    assert "token=[REDACTED]" in log["tail"] and TOKEN not in repr(result)
    assert result.facts["run_status"] == "FAILED"
    assert result.facts["last_metrics"] == {"accuracy": 0.71, "loss": 0.42}


@pytest.mark.slow
def test_a_killed_run_falls_back_to_a_top_level_log(mlflow_server: MlflowServer) -> None:
    run_id = new_run(mlflow_server, "KILLED", {"train.log": "ERROR: preempted by the scheduler\n"})

    result = MlflowRunCheck().run(run_context(mlflow_server, run_id))

    assert result.status is CheckStatus.FAIL
    assert "is KILLED since" in result.summary
    assert result.summary.endswith("train.log: ERROR: preempted by the scheduler")
    assert result.evidence["log"]["path"] == "train.log"


@pytest.mark.slow
def test_a_finished_run_without_logs_is_ok(mlflow_server: MlflowServer) -> None:
    run_id = new_run(mlflow_server, "FINISHED", {})

    result = MlflowRunCheck().run(run_context(mlflow_server, run_id))

    assert result.status is CheckStatus.OK
    assert (
        result.summary
        == f"MLflow run churn-train ({run_id}) is FINISHED; last metrics: accuracy=0.71, loss=0.42"
    )
    assert result.evidence["log"] == {}


@pytest.mark.slow
def test_an_unknown_run_is_an_error_naming_the_call(mlflow_server: MlflowServer) -> None:
    result = MlflowRunCheck().run(run_context(mlflow_server, "fedcba9876543210fedcba9876543210"))

    assert result.status is CheckStatus.ERROR
    assert "RESOURCE_DOES_NOT_EXIST" in result.summary
    assert result.evidence["call"] == "GET /api/2.0/mlflow/runs/get?run_id=fedcba9876543210fedcba9876543210"


def test_without_a_run_id_the_check_is_skipped() -> None:
    ctx = make_context(None, Category.TRAINING_CRASH, "train-churn-model", recorded_clock())

    result = MlflowRunCheck().run(ctx)

    assert result.status is CheckStatus.SKIPPED
    assert result.summary.startswith("the alert names no MLflow run")
    assert MlflowRunCheck in CHECKS and MlflowRunCheck.needs == ("mlflow",)


@pytest.mark.slow
def test_the_l1_report_of_an_oom_kill_quotes_the_failed_mlflow_run(mlflow_server: MlflowServer) -> None:
    run_id = new_run(mlflow_server, "FAILED", {"logs/stderr.log": STDERR})
    alert: dict[str, Any] = {**OOM_ALERT, "labels": {**OOM_ALERT["labels"], "run_id": run_id}}
    with SandboxWorld(mlflow_url=mlflow_server.url) as world:
        assert world.post_alerts(alertmanager_payload([alert])).status == 202
        world.settle()
        [root] = world.slack.messages("#ml-alerts")
        [report] = world.slack.thread("#ml-alerts", root["ts"])

    assert "✅ fixed at Level 1" in report["text"]
    run = step(report, "MLflow run")
    assert run.startswith(f"• ❌ *MLflow run*: MLflow run churn-train ({run_id[:8]}…) is FAILED")
    assert "last metrics: accuracy=0.71, loss=0.42" in run
    assert TOKEN not in shown(report)
    # the run links to its page in the MLflow UI
    assert f"<{mlflow_server.url}/#/experiments/" in shown(report)
    assert f"/runs/{run_id}|MLflow run {run_id[:8]}>" in shown(report)
