"""The pod a Workflow node ran in, as Argo's controller builds it and the kubelet leaves it: init, wait
and main containers, the node's labels and annotations, the Workflow as owner, and how `main` ended."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from bot.sandbox.kube import workflow_names as wn
from bot.sandbox.kube.job_rules import Outcome, OutcomeKind, default_log
from bot.sandbox.kube.workflow_rules import main_container

EXECUTOR = "quay.io/argoproj/argoexec:v3.7.3"
HOST = "sandbox-node-1"
_EXEC_FLAGS = ["--loglevel", "info", "--log-format", "text"]
# How `main` ends for each outcome: (exit code, kubelet reason)
_ENDS = {"succeeded": (0, "Completed"), "oom_killed": (137, "OOMKilled"), "failed": (1, "Error")}


@dataclass(frozen=True)
class NodeRun:
    """One run of a node: where it ran and when."""

    workflow: dict[str, Any]
    node_id: str
    node_name: str
    template: dict[str, Any]
    started: str
    finished: str


def failure_message(pod: dict[str, Any]) -> str:
    """The node message Argo (v3.7 and later) infers from a failed pod: the pod's own message when it has
    one, otherwise the first container that exited non-zero, as `<name>: <reason> (exit code N)`."""
    status = pod.get("status") or {}
    if status.get("message"):
        return str(status["message"])
    for group in ("initContainerStatuses", "containerStatuses"):
        for container in sorted(status.get(group) or [], key=lambda c: c["name"] != "main"):
            ended = (container.get("state") or {}).get("terminated") or {}
            if ended.get("exitCode"):
                return f"{container['name']}: {ended.get('reason', 'Error')} (exit code {ended['exitCode']})"
    return "pod failed"


def main_ended(pod: dict[str, Any]) -> tuple[OutcomeKind, int]:
    """How a pod's `main` container ended, and its exit code (a retry that left the pod finds it so)."""
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if container.get("name") == "main":
            ended = (container.get("state") or {}).get("terminated") or {}
            code = int(ended.get("exitCode", 1))
            if ended.get("reason") == "OOMKilled":
                return "oom_killed", code
            return ("succeeded" if code == 0 else "failed"), code
    return "failed", 1


def node_pod(run: NodeRun, name: str, outcome: Outcome, version: str) -> tuple[dict[str, Any], str]:
    """The ended pod of `run` and what its `main` container printed."""
    wf_meta, wf_spec = run.workflow["metadata"], run.workflow.get("spec") or {}
    pod_meta, tmpl_meta = wf_spec.get("podMetadata") or {}, run.template.get("metadata") or {}
    labels = {
        **(pod_meta.get("labels") or {}),
        **(tmpl_meta.get("labels") or {}),
        wn.WORKFLOW_LABEL: wf_meta["name"],
        wn.COMPLETED_LABEL: "true",
    }
    annotations = {
        **(pod_meta.get("annotations") or {}),
        **(tmpl_meta.get("annotations") or {}),
        wn.NODE_NAME_ANNOTATION: run.node_name,
        wn.NODE_ID_ANNOTATION: run.node_id,
        wn.DEFAULT_CONTAINER: "main",
    }
    owner = {"apiVersion": wn.API_VERSION, "kind": "Workflow", "name": wf_meta["name"], "uid": wf_meta["uid"]}
    spec: dict[str, Any] = {
        "initContainers": [_executor("init")],
        "containers": [_executor("wait"), _main(run.template)],
        "restartPolicy": "Never",
        "serviceAccountName": wf_spec.get("serviceAccountName", "default"),
        "nodeName": HOST,
        "schedulerName": "default-scheduler",
    }
    if wf_spec.get("activeDeadlineSeconds"):
        spec["activeDeadlineSeconds"] = wf_spec["activeDeadlineSeconds"]
    code, reason = _ENDS[outcome.result]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": wf_meta["namespace"],
            "uid": str(uuid.uuid4()),
            "resourceVersion": version,
            "creationTimestamp": run.started,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{**owner, "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": spec,
        "status": {
            "phase": "Succeeded" if code == 0 else "Failed",
            "hostIP": "10.0.3.17",
            "podIP": "10.244.3.41",
            "startTime": run.started,
            "initContainerStatuses": [_ended("init", EXECUTOR, 0, "Completed", run)],
            "containerStatuses": [
                _ended("main", _main(run.template).get("image", ""), code, reason, run),
                _ended("wait", EXECUTOR, 0, "Completed", run),
            ],
        },
    }
    task = run.node_name.rsplit(".", 1)[-1]
    return pod, outcome.log or default_log(task, outcome.result)


def _executor(role: str) -> dict[str, Any]:
    return {
        "name": role,
        "image": EXECUTOR,
        "command": ["argoexec", role, *_EXEC_FLAGS],
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}},
    }


def _main(template: dict[str, Any]) -> dict[str, Any]:
    container = {k: v for k, v in main_container(template).items() if k != "name"}
    command = ["/var/run/argo/argoexec", "emissary", *_EXEC_FLAGS, "--", *container.get("command", [])]
    return {"name": "main", **container, "command": command}


def _ended(name: str, image: str, code: int, reason: str, run: NodeRun) -> dict[str, Any]:
    terminated = {"exitCode": code, "reason": reason, "startedAt": run.started, "finishedAt": run.finished}
    return {
        "name": name,
        "image": image,
        "imageID": f"{image.split(':')[0]}@sha256:{uuid.uuid5(uuid.NAMESPACE_URL, image).hex * 2}",
        "containerID": f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}",
        "ready": False,
        "started": False,
        "restartCount": 0,
        "state": {"terminated": terminated},
    }
