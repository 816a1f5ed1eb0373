"""Re-running a Job as a new one marked as Level 1's, waiting for it, and what earlier re-runs found."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core.errors import IntegrationError
from bot.core.redact import redact, redact_obj
from bot.diagnostics.base import Context
from bot.diagnostics.kube_common.evidence import create_job_call
from bot.diagnostics.kube_common.objects import condition, failed_condition, name_of, newest_first
from bot.integrations.kubernetes import KubeGateway, V1Job, V1Pod, job_rerun_body

INCIDENT_LABEL = "escalation-bot/incident"
REMEDIATION_ANNOTATION = "escalation-bot/remediation"  # which remediation created a re-run Job


def rerun(ctx: Context, remediation: str, ns: str, job: str, **changes: Any) -> dict[str, Any]:
    """Create a new Job from `job` with `changes` (memory_limit, extra_env); return the evidence."""
    gateway: KubeGateway = ctx.deps.kube
    source = gateway.read_job(ns, job)
    body = job_rerun_body(
        source,
        suffix="l1",
        labels={INCIDENT_LABEL: str(ctx.incident_id)},
        annotations={"escalation-bot/rerun-of": job, REMEDIATION_ANNOTATION: remediation},
        **changes,
    )
    created = gateway.create_job(ns, body)
    name = name_of(created)
    response = {"name": name, "uid": created.metadata.uid if created.metadata else None}
    return {
        "call": create_job_call(ns),
        "request": redact_obj(body),
        "response": response,
        "facts": {"job_name": name},
    }


@dataclass(frozen=True)
class JobEnd:
    """How a Job stood when waiting for it stopped: complete, failed, running (deadline) or error."""

    state: str
    job: V1Job | None = None
    detail: str = ""


def wait_for_job(ctx: Context, ns: str, name: str, deadline: datetime) -> JobEnd:
    """Poll the Job until it completes or fails, or `deadline` passes."""
    gateway: KubeGateway = ctx.deps.kube
    while True:
        try:
            job = gateway.read_job(ns, name)
        except IntegrationError as exc:
            return JobEnd("error", None, redact(str(exc)))
        if condition(job, "Complete"):
            return JobEnd("complete", job)
        failed = failed_condition(job)
        if failed is not None:
            return JobEnd("failed", job, f"{failed.reason or 'Failed'}: {failed.message or ''}".rstrip(": "))
        remaining = (deadline - ctx.now()).total_seconds()
        if remaining <= 0:
            return JobEnd("running", job, "still running at the verification deadline")
        ctx.sleep(min(ctx.verify_poll_seconds, remaining))


def job_pods(ctx: Context, ns: str, job: str) -> list[V1Pod]:
    """The Job's pods, newest first; empty when they cannot be read (used only to enrich a verdict)."""
    gateway: KubeGateway = ctx.deps.kube
    try:
        return newest_first(gateway.list_job_pods(ns, job))
    except IntegrationError:
        return []


def verified_fact(ctx: Context, remediation: str, key: str) -> Any:
    """What the latest verified attempt of `remediation` recorded for `key` (None when nothing did)."""
    for attempt in reversed(ctx.attempts):
        if attempt.name == remediation and "verification" in attempt.evidence:
            return attempt.evidence["verification"].get("facts", {}).get(key)
    return None
