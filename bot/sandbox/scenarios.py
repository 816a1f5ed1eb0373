"""The demo's Level 1 scenarios: for each category one incident Level 1 fixes and one it escalates
(the escalated pipeline step is the demo's first part, which goes on to a decision).

Everything they run against lives in the sandbox (bot/sandbox/scenario_cluster.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.sandbox.mlflow_api import SandboxMlflowAPI
from bot.sandbox.scenario_cluster import NS


@dataclass(frozen=True)
class Scenario:
    category: str
    title: str
    expect_fixed: bool
    alert: dict[str, Any]
    prepare: Callable[[SandboxMlflowAPI], None] | None = None  # e.g. take the tracking server down


def _registration(model: str, fingerprint: str) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": "ModelRegistrationFailed",
            "model": model,
            "model_version": "2",
            "severity": "warning",
        },
        "annotations": {"summary": f"Model version {model}/2 is FAILED_REGISTRATION"},
        "fingerprint": fingerprint,
    }


def _tracking(summary: str, fingerprint: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": "MLflowTrackingDown", "namespace": "ml-platform", "severity": "warning"},
        "annotations": {"summary": summary},
        "fingerprint": fingerprint,
    }


def _alert(name: str, summary: str, fingerprint: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "namespace": NS, "severity": "warning", **labels},
        "annotations": {"summary": summary},
        "fingerprint": fingerprint,
    }


SCENARIOS: list[Scenario] = [
    Scenario(
        "training crash",
        "train-churn-model OOM-killed at 2Gi",
        True,
        _alert(
            "TrainingJobOOMKilled",
            "train-churn-model was OOMKilled (exit 137)",
            "d0000000000000a1",
            job_name="train-churn-model",
        ),
    ),
    Scenario(
        "training crash",
        "train-fraud-model needs more than the 16Gi cap",
        False,
        _alert(
            "TrainingJobOOMKilled",
            "train-fraud-model was OOMKilled (exit 137)",
            "d0000000000000a2",
            job_name="train-fraud-model",
        ),
    ),
    Scenario(
        "pipeline step failed",
        "feature-build-hourly failed once (a flaky network)",
        True,
        _alert(
            "KubeJobFailed",
            "Job feature-build-hourly failed: BackoffLimitExceeded",
            "d0000000000000b1",
            job_name="feature-build-hourly",
        ),
    ),
    Scenario(
        "feature store issue",
        "user_features is 9 hours stale",
        True,
        _alert(
            "FeatureTableStale",
            "feature table user_features is stale",
            "d0000000000000c1",
            feature_table="user_features",
        ),
    ),
    Scenario(
        "feature store issue",
        "item_features is stale and its materialization fails",
        False,
        _alert(
            "FeatureTableStale",
            "feature table item_features is stale",
            "d0000000000000c2",
            feature_table="item_features",
        ),
    ),
    Scenario(
        "orchestration timeout",
        "nightly-training-dag hit its deadline (checkpointed)",
        True,
        _alert(
            "KubeJobDeadlineExceeded",
            "Job nightly-training-dag failed: DeadlineExceeded",
            "d0000000000000d1",
            job_name="nightly-training-dag",
        ),
    ),
    Scenario(
        "orchestration timeout",
        "nightly-eval-dag hit its deadline (no checkpoint)",
        False,
        _alert(
            "KubeJobDeadlineExceeded",
            "Job nightly-eval-dag failed: DeadlineExceeded",
            "d0000000000000d2",
            job_name="nightly-eval-dag",
        ),
    ),
    Scenario(
        "version incompatibility",
        "train-ranker-model pins numpy 1.24 on image 1.4.2",
        True,
        _alert(
            "TrainingJobFailed",
            "train-ranker-model failed on start: ImportError: numpy.core.multiarray failed to import",
            "d0000000000000g1",
            job_name="train-ranker-model",
        ),
    ),
    Scenario(
        "version incompatibility",
        "score-ranker-model has no known-good image to go back to",
        False,
        _alert(
            "TrainingJobFailed",
            "score-ranker-model failed on start: ImportError: numpy.core.multiarray failed to import",
            "d0000000000000g2",
            job_name="score-ranker-model",
        ),
    ),
    Scenario(
        "model registration failed",
        "churn v2 failed to register; its artifacts are intact",
        True,
        _registration("churn", "d0000000000000e1"),
    ),
    Scenario(
        "model registration failed",
        "fraud v2 failed to register; its MLmodel is missing",
        False,
        _registration("fraud", "d0000000000000e2"),
    ),
    Scenario(
        "tracking disconnected",
        "MLflow answers 503 until its Deployment is restarted",
        True,
        _tracking("MLflow tracking server unreachable: /health answers 503", "d0000000000000f1"),
        prepare=lambda mlflow: mlflow.down(503),
    ),
    Scenario(
        "tracking disconnected",
        "MLflow refuses the bot's credentials (401)",
        False,
        _tracking("MLflow tracking API answers 401 Unauthorized", "d0000000000000f2"),
        prepare=lambda mlflow: mlflow.down(401),
    ),
]

# Part 3: alerts that name only their target; Level 1 reads it and classifies from what it finds.
TRIAGE_SCENARIOS: list[Scenario] = [
    Scenario(
        "pipeline step failed",
        "a bare KubeJobFailed for train-churn-weekly",
        True,
        _alert(
            "KubeJobFailed",
            "Job ml-pipelines/train-churn-weekly failed to complete.",
            "d0000000000000h1",
            job_name="train-churn-weekly",
            condition="true",
        ),
    ),
    Scenario(
        "pipeline step failed",
        "Argo Workflow churn-training-pipeline-x8k2q failed",
        True,
        {
            "labels": {
                "alertname": "ArgoWorkflowFailed",
                "namespace": NS,
                "workflow": "churn-training-pipeline-x8k2q",
                "severity": "warning",
            },
            "annotations": {"summary": "Argo Workflow ml-pipelines/churn-training-pipeline-x8k2q failed"},
            "fingerprint": "d0000000000000h2",
        },
    ),
]
