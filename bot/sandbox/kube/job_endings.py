"""How a created Job looks once it has ended: its status and conditions, the pod it ran in, the event
the Job controller recorded, and the pod's log."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from bot.sandbox.kube.job_rules import Outcome, default_log

Logs = dict[tuple[str, str, str | None, bool], str]  # (namespace, pod, container, previous) -> text

_EXIT = {"succeeded": (0, "Completed"), "oom_killed": (137, "OOMKilled"), "failed": (1, "Error")}


def ending(
    job: dict[str, Any], labels: dict[str, str], outcome: Outcome, now: str, pod_name: str, pod_version: str
) -> tuple[list[dict[str, Any]], Logs]:
    """The Job, its pod and its event as they are once the Job has ended, and the pod's log."""
    ok = outcome.result == "succeeded"
    pod = _pod(job, labels, outcome, now, pod_name, pod_version)
    ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
    text = outcome.log or default_log(name, outcome.result)
    logs = {(ns, pod_name, c["name"], False): text for c in pod["spec"]["containers"]}
    return [_ended(job, ok, now), pod, _event(job, ok, now)], logs


def _ended(job: dict[str, Any], ok: bool, now: str) -> dict[str, Any]:
    settled = copy.deepcopy(job)
    if ok:
        conditions = [{"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}]
        settled["status"] = {
            "startTime": now,
            "completionTime": now,
            "succeeded": 1,
            "ready": 0,
            "conditions": conditions,
        }
        return settled
    failed = {
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "lastProbeTime": now,
        "message": "Job has reached the specified backoff limit",
        "lastTransitionTime": now,
    }
    settled["status"] = {
        "startTime": now,
        "failed": 1,
        "ready": 0,
        "conditions": [{"type": "FailureTarget", **failed}, {"type": "Failed", **failed}],
    }
    return settled


def _pod(
    job: dict[str, Any], labels: dict[str, str], outcome: Outcome, now: str, name: str, version: str
) -> dict[str, Any]:
    meta, spec = job["metadata"], job["spec"]
    exit_code, reason = _EXIT[outcome.result]
    pod_spec = copy.deepcopy(spec["template"]["spec"])
    pod_spec["nodeName"] = "sandbox-node-1"
    terminated = {"exitCode": exit_code, "reason": reason, "startedAt": now, "finishedAt": now}
    statuses = [
        {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": f"{c.get('image', '')}@sha256:{uuid.uuid4().hex}",
            "ready": False,
            "started": False,
            "restartCount": 0,
            "state": {"terminated": dict(terminated)},
        }
        for c in pod_spec["containers"]
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "uid": str(uuid.uuid4()),
            "creationTimestamp": now,
            "resourceVersion": version,
            "labels": {**spec["template"]["metadata"].get("labels", {}), **labels},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": pod_spec,
        "status": {
            "phase": "Succeeded" if outcome.result == "succeeded" else "Failed",
            "startTime": now,
            "containerStatuses": statuses,
        },
    }


def _event(job: dict[str, Any], ok: bool, now: str) -> dict[str, Any]:
    meta = job["metadata"]
    ns, name = meta["namespace"], meta["name"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{uuid.uuid4().hex[:16]}", "namespace": ns, "creationTimestamp": now},
        "involvedObject": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": name,
            "namespace": ns,
            "uid": meta["uid"],
        },
        "type": "Normal" if ok else "Warning",
        "reason": "Completed" if ok else "BackoffLimitExceeded",
        "message": "Job completed" if ok else "Job has reached the specified backoff limit",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "source": {"component": "job-controller"},
    }
