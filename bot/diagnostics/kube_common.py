"""What the Kubernetes-backed Level 1 checks share: target guards, the calls they report, container
states, re-running a Job and waiting for it; plus the warning-events check both categories use."""

from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.core.errors import IntegrationError
from bot.core.models import CheckResult, CheckStatus
from bot.core.redact import redact, redact_obj
from bot.diagnostics.base import Check, Context
from bot.integrations.kubernetes import (
    CoreV1Event,
    KubeGateway,
    V1Job,
    V1JobCondition,
    V1Pod,
    job_rerun_body,
    to_wire,
)

OOM_EXIT_CODE = 137  # 128 + SIGKILL
MAX_EVENTS = 10
ERROR_LINE = re.compile(r"Traceback|Error|Exception|ERROR|FATAL")
INCIDENT_LABEL = "escalation-bot/incident"
REMEDIATION_ANNOTATION = "escalation-bot/remediation"  # which remediation created a re-run Job
_EPOCH = datetime.min.replace(tzinfo=UTC)


# -- the exact calls, as reported in evidence ---------------------------------------------------------
def job_call(ns: str, name: str) -> str:
    return f"GET /apis/batch/v1/namespaces/{ns}/jobs/{name}"


def create_job_call(ns: str) -> str:
    return f"POST /apis/batch/v1/namespaces/{ns}/jobs"


def pods_call(ns: str, job: str) -> str:
    return f"GET /api/v1/namespaces/{ns}/pods?labelSelector=job-name={job}"


def log_call(ns: str, pod: str, container: str, tail_lines: int, previous: bool) -> str:
    extra = "&previous=true" if previous else ""
    return f"GET /api/v1/namespaces/{ns}/pods/{pod}/log?container={container}&tailLines={tail_lines}{extra}"


def events_call(ns: str, name: str, kind: str) -> str:
    selector = f"involvedObject.name={name},involvedObject.kind={kind}"
    return f"GET /api/v1/namespaces/{ns}/events?fieldSelector={selector}"


# -- guards and results -------------------------------------------------------------------------------
def namespace_refusal(ctx: Context) -> str | None:
    """Why L1 may not touch the target's namespace, or None when it may."""
    ns = ctx.target.namespace
    if not ns:
        return "the alert names no Kubernetes namespace"
    if ctx.policy.namespaces and ns not in ctx.policy.namespaces:
        return f"namespace {ns} is not in the allowed namespaces"
    return None


def skip_reason(ctx: Context) -> str | None:
    """Why a Job check cannot run against this target, or None when it can."""
    refusal = namespace_refusal(ctx)
    if refusal:
        return refusal
    if not ctx.target.job:
        return "the alert names no Kubernetes job to inspect"
    if ctx.deps.kube is None:
        return "no Kubernetes cluster is configured"
    return None


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


# -- reading Jobs and pods ----------------------------------------------------------------------------
def name_of(obj: V1Job | V1Pod | CoreV1Event) -> str:
    """The object's metadata.name ("" when the API left it out)."""
    return (obj.metadata.name if obj.metadata else None) or ""


def condition(job: V1Job, kind: str) -> V1JobCondition | None:
    """The Job's condition of type `kind` when it is True."""
    for cond in (job.status.conditions if job.status else None) or []:
        if cond.type == kind and cond.status == "True":
            return cond
    return None


def failed_condition(job: V1Job) -> V1JobCondition | None:
    """The condition that says the Job failed (Failed, or FailureTarget while it terminates)."""
    return condition(job, "Failed") or condition(job, "FailureTarget")


@dataclass(frozen=True)
class Termination:
    pod: str
    container: str
    reason: str
    exit_code: int
    restart_count: int

    @property
    def oom(self) -> bool:
        return self.reason == "OOMKilled" or self.exit_code == OOM_EXIT_CODE


@dataclass(frozen=True)
class Waiting:
    pod: str
    container: str
    image: str
    reason: str
    message: str
    restart_count: int


def terminations(pod: V1Pod) -> list[Termination]:
    """Every terminated state (current and last) of the pod's containers."""
    found = []
    for cs in (pod.status.container_statuses if pod.status else None) or []:
        for state in (cs.state, cs.last_state):
            term = state.terminated if state else None
            if term is not None:
                found.append(
                    Termination(name_of(pod), cs.name, term.reason or "", term.exit_code, cs.restart_count)
                )
    return found


def waiting(pod: V1Pod) -> list[Waiting]:
    """Containers (init ones included) that are waiting, with the reason."""
    status = pod.status
    statuses = [
        *((status.init_container_statuses or []) if status else []),
        *((status.container_statuses or []) if status else []),
    ]
    return [
        Waiting(
            name_of(pod),
            cs.name,
            cs.image,
            cs.state.waiting.reason or "",
            cs.state.waiting.message or "",
            cs.restart_count,
        )
        for cs in statuses
        if cs.state and cs.state.waiting
    ]


def memory_limit(job: V1Job, container: str | None, pod: V1Pod | None = None) -> str | None:
    """The memory limit of `container` (else the first) as the pod ran it, else as the Job sets it."""
    for spec in (pod.spec if pod else None, job.spec.template.spec if job.spec else None):
        for c in (spec.containers if spec else None) or []:
            if container in (None, c.name):
                limits = c.resources.limits if c.resources else None
                return (limits or {}).get("memory")
    return None


def main_container(ctx: Context, job: V1Job) -> str | None:
    """The container the alert names, else the Job's first container."""
    containers = (job.spec.template.spec.containers if job.spec and job.spec.template.spec else None) or []
    return ctx.target.container or (containers[0].name if containers else None)


def newest_first(pods: list[V1Pod]) -> list[V1Pod]:
    return sorted(
        pods, key=lambda p: (p.metadata.creation_timestamp if p.metadata else None) or _EPOCH, reverse=True
    )


def last_error_line(text: str) -> str | None:
    """The last line of a log that looks like an error (Traceback, Error, Exception)."""
    lines = [line.strip() for line in text.splitlines() if ERROR_LINE.search(line)]
    return lines[-1][:500] if lines else None


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


def verified_fact(ctx: Context, remediation: str, key: str) -> Any:
    """What the latest verified attempt of `remediation` recorded for `key` (None when nothing did)."""
    for attempt in reversed(ctx.attempts):
        if attempt.name == remediation and "verification" in attempt.evidence:
            return attempt.evidence["verification"].get("facts", {}).get(key)
    return None


# -- warning events -----------------------------------------------------------------------------------
def _event_time(event: CoreV1Event) -> datetime:
    series = event.series.last_observed_time if event.series else None
    return (
        event.last_timestamp
        or series
        or event.event_time
        or event.first_timestamp
        or event.metadata.creation_timestamp
        or _EPOCH
    )


def failed_container(ctx: Context, pods: list[V1Pod]) -> tuple[V1Pod, str, bool] | None:
    """The pod and container whose log explains the failure, and whether to read its previous run.

    The pod the alert names wins, then the newest pod with a container that exited non-zero, then the
    newest pod; the container is the alert's, else the one that exited non-zero, else the first.
    """
    named = [p for p in pods if name_of(p) == ctx.target.pod] if ctx.target.pod else []
    pool = named or pods
    if not pool:
        return None
    broken = [(p, t) for p in pool for t in terminations(p) if t.exit_code != 0]
    pod = broken[0][0] if broken else pool[0]
    spec = pod.spec.containers if pod.spec and pod.spec.containers else []
    container = ctx.target.container or (broken[0][1].container if broken else (spec[0].name if spec else ""))
    statuses = (pod.status.container_statuses if pod.status else None) or []
    status = next((cs for cs in statuses if cs.name == container), None)
    # A restarted container's own log starts afresh; the failure is in the previous run's log.
    previous = bool(
        status
        and not (status.state and status.state.terminated)
        and status.last_state
        and status.last_state.terminated
    )
    return pod, container, previous


@dataclass(frozen=True)
class FailedLog:
    pod: str
    container: str
    call: str
    tail: str  # redacted


def read_failed_log(
    check: Check, gateway: KubeGateway, ctx: Context, ns: str, job: str, lines: int
) -> FailedLog | CheckResult:
    """The redacted log tail of the container that failed the Job, or the result to report instead."""
    try:
        chosen = failed_container(ctx, newest_first(gateway.list_job_pods(ns, job)))
    except IntegrationError as exc:
        return error_result(check, pods_call(ns, job), exc)
    if chosen is None:
        return check.result(CheckStatus.SKIPPED, f"job {job} has no pods whose logs could be read")
    pod, container, previous = chosen
    call = log_call(ns, name_of(pod), container, lines, previous)
    try:
        tail = redact(gateway.read_pod_log(ns, name_of(pod), container, lines, previous))
    except IntegrationError as exc:
        return error_result(check, call, exc)
    return FailedLog(name_of(pod), container, call, tail)


class JobCheck(Check):
    """A check about the Job the alert names; it skips, saying why, when it may not or cannot look."""

    needs = ("kube",)

    def run(self, ctx: Context) -> CheckResult:
        reason = skip_reason(ctx)
        if reason:
            return self.result(CheckStatus.SKIPPED, reason)
        return self.inspect(ctx, ctx.deps.kube, str(ctx.target.namespace), str(ctx.target.job))

    @abstractmethod
    def inspect(self, ctx: Context, gateway: KubeGateway, ns: str, job: str) -> CheckResult:
        """Look at Job `ns`/`job` through `gateway`."""


class WarningEventsCheck(JobCheck):
    """Warning events of the Job and its pods, newest first."""

    name = "warning_events"
    timeout_s = 20.0

    def inspect(self, ctx: Context, gateway: KubeGateway, ns: str, job: str) -> CheckResult:
        """List the Warning events of the target Job and its pods."""
        calls = [events_call(ns, job, "Job")]
        try:
            events = gateway.list_events(ns, job, "Job")
            calls.append(pods_call(ns, job))
            for pod in gateway.list_job_pods(ns, job):
                calls.append(events_call(ns, name_of(pod), "Pod"))
                events += gateway.list_events(ns, name_of(pod), "Pod")
        except IntegrationError as exc:
            return error_result(self, calls[-1], exc)
        warnings = sorted((e for e in events if e.type == "Warning"), key=_event_time, reverse=True)[
            :MAX_EVENTS
        ]
        briefs = [
            {
                "object": f"{e.involved_object.kind}/{e.involved_object.name}",
                "reason": e.reason,
                "message": e.message,
                "count": e.count,
                "last_seen": to_wire(_event_time(e)),
            }
            for e in warnings
        ]
        found = evidence(calls[0], {"events": briefs}, calls)
        facts = {"warning_reasons": sorted({str(e.reason) for e in warnings}), "job_name": job}
        if not warnings:
            return self.result(CheckStatus.OK, f"no warning events for job {job} or its pods", found, facts)
        newest = warnings[0]
        summary = (
            f"{len(warnings)} warning event(s) for job {job} and its pods; newest: {newest.reason} on "
            f"{newest.involved_object.kind} {newest.involved_object.name}: {(newest.message or '')[:200]}"
        )
        return self.result(CheckStatus.WARN, redact(summary), found, facts)


# -- re-running a Job and waiting for the new one --------------------------------------------------
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
