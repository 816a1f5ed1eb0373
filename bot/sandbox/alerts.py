"""Alerts as the outside world sends them: Alertmanager's webhook body, and the two alerts the demo and the
tests start from (an OOM-killed training job and a failed pipeline step)."""

from __future__ import annotations

from typing import Any


def alertmanager_payload(
    alerts: list[dict[str, Any]], group_key: str = '{}:{alertname="x"}'
) -> dict[str, Any]:
    """A webhook body as Alertmanager v0.34 sends it (version 4)."""
    status = "firing" if any(a.get("status", "firing") == "firing" for a in alerts) else "resolved"
    full = []
    for a in alerts:
        full.append(
            {
                "status": a.get("status", "firing"),
                "labels": a["labels"],
                "annotations": a.get("annotations", {}),
                "startsAt": a.get("startsAt", "2026-11-26T09:00:00Z"),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.local/graph",
                "fingerprint": a.get("fingerprint", ""),
            }
        )
        if not full[-1]["fingerprint"]:
            del full[-1]["fingerprint"]
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "escalation-bot",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local",
        "alerts": full,
    }


OOM_ALERT = {
    "labels": {
        "alertname": "TrainingJobOOMKilled",
        "namespace": "ml-pipelines",
        "job_name": "train-churn-model",
        "severity": "warning",
        "team": "ml-platform",
    },
    "annotations": {"summary": "train-churn-model was OOMKilled (exit 137)"},
    "fingerprint": "a1b2c3d4e5f60001",
}
PIPELINE_ALERT = {
    "labels": {
        "alertname": "KubeJobFailed",
        "namespace": "ml-pipelines",
        "job_name": "feature-build-daily",
        "severity": "critical",
        "reason": "BackoffLimitExceeded",
    },
    "annotations": {
        "summary": "Job ml-pipelines/feature-build-daily failed: BackoffLimitExceeded",
        "impact": "Daily features for the churn and fraud models are not refreshed",
    },
    "fingerprint": "a1b2c3d4e5f60002",
}
