"""The exact Kubernetes calls Level 1 makes, as its evidence names them, and the evidence and error
results that report them (trimmed to what a reader needs, and redacted)."""

from __future__ import annotations

from typing import Any

from bot.core.errors import IntegrationError
from bot.core.models import CheckResult, CheckStatus
from bot.core.redact import redact, redact_obj
from bot.diagnostics.base import Check
from bot.integrations.kubernetes import V1Job, V1Pod, to_wire


def job_call(ns: str, name: str) -> str:
    """Reading one Job."""
    return f"GET /apis/batch/v1/namespaces/{ns}/jobs/{name}"


def create_job_call(ns: str) -> str:
    """Creating a Job."""
    return f"POST /apis/batch/v1/namespaces/{ns}/jobs"


def pods_call(ns: str, job: str) -> str:
    """Listing a Job's pods."""
    return f"GET /api/v1/namespaces/{ns}/pods?labelSelector=job-name={job}"


def log_call(ns: str, pod: str, container: str, tail_lines: int, previous: bool) -> str:
    """Reading the tail of a container's log (of its previous run when `previous`)."""
    extra = "&previous=true" if previous else ""
    return f"GET /api/v1/namespaces/{ns}/pods/{pod}/log?container={container}&tailLines={tail_lines}{extra}"


def events_call(ns: str, name: str, kind: str) -> str:
    """Listing the events of one object."""
    selector = f"involvedObject.name={name},involvedObject.kind={kind}"
    return f"GET /api/v1/namespaces/{ns}/events?fieldSelector={selector}"


def error_result(check: Check, call: str, exc: IntegrationError) -> CheckResult:
    """An ERROR result naming the call that failed and what came back."""
    evidence = {"call": call, "error": str(exc), "status": exc.status}
    return check.result(CheckStatus.ERROR, redact(str(exc)), redact_obj(evidence))


def evidence(call: str, response: Any, calls: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """Redacted evidence: the call that decided the finding, its trimmed response and every call made."""
    out: dict[str, Any] = {"call": call, "response": response, **extra}
    if calls and len(calls) > 1:
        out["calls"] = calls
    return dict(redact_obj(out))


def job_brief(job: V1Job) -> dict[str, Any]:
    """The parts of a Job a reader needs: containers with resources, conditions and counts."""
    wire = to_wire(job)
    spec, status = wire.get("spec", {}), wire.get("status", {})
    containers = spec.get("template", {}).get("spec", {}).get("containers", [])
    return {
        "name": wire["metadata"].get("name"),
        "namespace": wire["metadata"].get("namespace"),
        "backoffLimit": spec.get("backoffLimit"),
        "containers": [{k: c.get(k) for k in ("name", "image", "resources") if k in c} for c in containers],
        "status": {
            k: status[k]
            for k in ("active", "succeeded", "failed", "startTime", "completionTime")
            if k in status
        },
        "conditions": [
            {k: c[k] for k in ("type", "status", "reason", "message") if k in c}
            for c in status.get("conditions", [])
        ],
    }


def pod_brief(pod: V1Pod) -> dict[str, Any]:
    """The parts of a pod a reader needs: phase and each container's state, last state and restarts."""
    wire = to_wire(pod)
    statuses = wire.get("status", {}).get("containerStatuses", [])
    return {
        "name": wire["metadata"].get("name"),
        "phase": wire.get("status", {}).get("phase"),
        "containers": [
            {k: cs[k] for k in ("name", "image", "restartCount", "state", "lastState") if cs.get(k)}
            for cs in statuses
        ],
    }
