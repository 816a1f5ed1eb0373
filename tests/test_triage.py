"""A failed Job's own evidence (its conditions, pods, events and log tail, in the API's wire format) names
its category and says why; evidence Kubernetes recorded wins over what the log says."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core.models import Category
from bot.core.triage import JobEvidence, triage


def job(conditions: list[dict[str, Any]] | None = None, deadline: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"backoffLimit": 1, "template": {"spec": {"containers": []}}}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train-churn", "namespace": "ml-pipelines"},
        "spec": spec,
        "status": {"failed": 2, "conditions": conditions or []},
    }


def pod(
    state: dict[str, Any] | None = None,
    last: dict[str, Any] | None = None,
    memory: str | None = "2Gi",
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    resources = {"limits": {"memory": memory}} if memory else {}
    status: dict[str, Any] = {
        "name": "trainer",
        "image": "registry.example.com/churn:1.4.2",
        "ready": False,
        "restartCount": 1,
        "state": state or {},
    }
    if last:
        status["lastState"] = last
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "train-churn-x7k2p",
            "namespace": "ml-pipelines",
            "labels": {"job-name": "train-churn"},
        },
        "spec": {
            "containers": [
                {"name": "trainer", "image": "registry.example.com/churn:1.4.2", "resources": resources}
            ]
        },
        "status": {"phase": "Failed", "containerStatuses": [status], "conditions": conditions or []},
    }


def terminated(reason: str, code: int) -> dict[str, Any]:
    return {"terminated": {"reason": reason, "exitCode": code, "startedAt": "2026-12-04T09:00:00Z"}}


FAILED = [
    {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    }
]


@pytest.mark.parametrize(
    ("evidence", "category", "reason"),
    [
        (
            JobEvidence(job(FAILED), [pod(state=terminated("OOMKilled", 137))]),
            Category.TRAINING_CRASH,
            "pod train-churn-x7k2p container trainer OOMKilled with limit 2Gi",
        ),
        (
            JobEvidence(job(FAILED), [pod(last=terminated("Error", 137), memory=None)]),
            Category.TRAINING_CRASH,
            "pod train-churn-x7k2p container trainer killed with exit code 137 (no memory limit set)",
        ),
        (
            JobEvidence(
                job([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}], deadline=3600),
                [pod(state=terminated("Error", 143))],
            ),
            Category.ORCHESTRATION_TIMEOUT,
            "the Job ran past its activeDeadlineSeconds (3600 s)",
        ),
        (
            JobEvidence(
                job(FAILED),
                [],
                [
                    {
                        "reason": "FailedScheduling",
                        "type": "Warning",
                        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                        "involvedObject": {"kind": "Pod", "name": "train-churn-x7k2p"},
                    }
                ],
            ),
            Category.ORCHESTRATION_TIMEOUT,
            "train-churn-x7k2p could not be scheduled: "
            "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        ),
        (
            JobEvidence(
                job(FAILED),
                [
                    pod(
                        conditions=[
                            {
                                "type": "PodScheduled",
                                "status": "False",
                                "reason": "Unschedulable",
                                "message": "no node",
                            }
                        ]
                    )
                ],
            ),
            Category.ORCHESTRATION_TIMEOUT,
            "pod train-churn-x7k2p could not be scheduled: no node",
        ),
        (
            JobEvidence(
                job(FAILED), [pod(state={"waiting": {"reason": "ImagePullBackOff", "message": "Back-off"}})]
            ),
            Category.PIPELINE_STEP_FAILED,
            "pod train-churn-x7k2p container trainer cannot pull "
            "registry.example.com/churn:1.4.2 (ImagePullBackOff)",
        ),
    ],
)
def test_what_kubernetes_recorded_names_the_category(
    evidence: JobEvidence, category: Category, reason: str
) -> None:
    found = triage(evidence)
    assert found is not None and (found.category, found.reason) == (category, reason)


@pytest.mark.parametrize(
    ("log", "category", "quoted"),
    [
        (
            "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
            Category.TRAINING_CRASH,
            "CUDA out of memory",
        ),
        (
            "ImportError: cannot import name 'Booster' from 'xgboost'",
            Category.VERSION_INCOMPATIBILITY,
            "ImportError",
        ),
        (
            "pkg_resources.VersionConflict: (numpy 2.0.1, Requirement.parse('numpy<2'))",
            Category.VERSION_INCOMPATIBILITY,
            "VersionConflict",
        ),
        (
            "requests.exceptions.ConnectionError: HTTPConnectionPool(host='mlflow.mlops', port=5000): "
            "Max retries exceeded with url: /api/2.0/mlflow/runs/create",
            Category.TRACKING_DISCONNECTED,
            "Max retries exceeded",
        ),
        (
            "pyspark.errors.AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] features.daily",
            Category.FEATURE_STORE_ISSUE,
            "TABLE_OR_VIEW_NOT_FOUND",
        ),
        (
            "FileNotFoundError: [Errno 2] No such file or directory: '/data/in/2026-12-03.parquet'",
            Category.FEATURE_STORE_ISSUE,
            "FileNotFoundError",
        ),
        ("KeyError: 'customer_tenure'", Category.FEATURE_STORE_ISSUE, "KeyError: 'customer_tenure'"),
    ],
)
def test_the_log_tail_names_the_category_and_quotes_the_line(
    log: str, category: Category, quoted: str
) -> None:
    tail = f"2026-12-04 09:01:02 INFO loading data\n{log}\n"
    found = triage(JobEvidence(job(FAILED), [pod(state=terminated("Error", 1))], [], tail))
    assert found is not None and found.category == category
    assert quoted in found.reason and found.reason.endswith("in the step's log")


def test_a_kill_recorded_by_kubernetes_wins_over_what_the_log_says() -> None:
    evidence = JobEvidence(
        job(FAILED), [pod(state=terminated("OOMKilled", 137))], [], "ImportError: no module named foo"
    )
    found = triage(evidence)
    assert found is not None and found.category == Category.TRAINING_CRASH


def test_evidence_without_a_known_signature_names_nothing() -> None:
    evidence = JobEvidence(
        job(FAILED), [pod(state=terminated("Error", 1))], [], "ValueError: bad learning rate"
    )
    assert triage(evidence) is None


def test_a_bare_sigkill_at_a_deadline_is_the_deadline_not_memory() -> None:
    deadline = [
        {**FAILED[0], "reason": "DeadlineExceeded", "message": "Job was active longer than specified"}
    ]
    sigkilled = pod(state=terminated("Error", 137))
    found = triage(JobEvidence(job(deadline, deadline=3600), [sigkilled]))
    oom = triage(JobEvidence(job(deadline, deadline=3600), [pod(state=terminated("OOMKilled", 137))]))
    assert found is not None and found.category is Category.ORCHESTRATION_TIMEOUT
    assert oom is not None and oom.category is Category.TRAINING_CRASH  # the kernel said memory
