"""Triage: before a category's checks, read the target as it is and say which category its evidence
points at, and why.

The Job (or the pod the alert names, and the Job that owns it), its pods, their events and the failed
container's log tail, and the stderr of the MLflow run the alert names or the Job carries (its
`mlflow.org/run-id` annotation or an `MLFLOW_RUN_ID` env). The reads are the ones the category checks make
next (same calls, same arguments), so with `ReadOnce` they reach the cluster once. The result is a finding
like any other; its facts carry `triage_category` / `triage_reason`, and `target` for what the reads
found that the alert did not say (the owning Job, the MLflow run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.core.errors import IntegrationError
from bot.core.models import Category, CheckResult, CheckStatus, Classification
from bot.core.redact import redact
from bot.core.triage import JobEvidence, triage
from bot.diagnostics import kube_common as kc
from bot.diagnostics import mlflow_common as mc
from bot.diagnostics import workflows as wf
from bot.diagnostics.base import Check, Context
from bot.integrations.kubernetes import KubeGateway, V1Pod, to_wire

TAIL_LINES = 50  # what the pipeline-step and workflow log reads take, so they share one read
RUN_ID_ENV = "MLFLOW_RUN_ID"


@dataclass
class _Read:
    """What triage read so far, the calls it made and the first error it met."""

    job: dict[str, Any] = field(default_factory=dict)
    pods: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    read: list[str] = field(default_factory=list)  # what was read, for the summary
    target: dict[str, str] = field(default_factory=dict)
    error: tuple[str, IntegrationError] | None = None
    messages: list[str] = field(default_factory=list)  # what Argo said about the failed nodes
    deadline_s: int | None = None
    failed_workflow: Classification | None = None  # for an alert no rule placed: a failed step
    log_source: tuple[str, str, bool] | None = None  # (pod, container, previous) whose log explains it

    def failed(self, call: str, exc: IntegrationError) -> None:
        self.error = self.error or (call, exc)


class TriageCheck(Check):
    """Which category does the target's own evidence point at?"""

    name = "triage"
    timeout_s = 20.0

    def run(self, ctx: Context) -> CheckResult:
        found = _Read()
        kube: KubeGateway | None = ctx.deps.kube
        t = ctx.target
        if kube is not None and t.namespace and (t.job or t.pod or t.workflow):
            refusal = kc.namespace_refusal(ctx)
            if refusal:
                return self.result(CheckStatus.SKIPPED, f"triage did not read the target: {refusal}")
            if t.workflow:
                _read_workflow(kube, str(t.namespace), t.workflow, found)
            else:
                _read_kube(ctx, kube, str(t.namespace), found)
        # what Kubernetes recorded (a kill, a deadline, a scheduling failure, an image pull) is the strongest
        # evidence; only without it are the log tail and the MLflow run's stderr read
        verdict = _verdict(found)
        if verdict is None:
            if kube is not None and found.log_source is not None:
                _read_log(kube, str(t.namespace), found)
            _read_run(ctx, found)
            verdict = _verdict(found)
        if not found.read:
            if found.error is not None and t.workflow:  # the only read: the Workflow itself
                return wf.unread_result(self, str(t.namespace), t.workflow, found.error[1])
            if found.error is not None:
                return kc.error_result(self, *found.error)
            return self.result(
                CheckStatus.SKIPPED, "the alert names no Job, pod or MLflow run whose evidence could be read"
            )
        if verdict is None and ctx.category is Category.UNCLASSIFIED:
            verdict = _failed_job(found.job) or found.failed_workflow
        read = ", ".join(found.read)
        evidence = kc.evidence(found.calls[0], {"read": found.read}, found.calls)
        if found.error is not None:
            evidence["error"] = redact(f"{found.error[0]}: {found.error[1]}")
        facts: dict[str, Any] = {
            "triage_category": verdict.category.value if verdict else None,
            "triage_reason": redact(verdict.reason) if verdict else None,
            "target": found.target,
        }
        if verdict is None:
            summary = f"read {read}: no known failure signature"
            return self.result(CheckStatus.OK, summary, evidence, facts)
        summary = f"the evidence points at {verdict.category.label}: {verdict.reason} (read {read})"
        return self.result(CheckStatus.FAIL, redact(summary), evidence, facts)


def _read_kube(ctx: Context, kube: KubeGateway, ns: str, found: _Read) -> None:
    """The Job (or the named pod and its owning Job), its pods, their events and the failed log tail."""
    job_name = ctx.target.job
    pods: list[V1Pod] = []
    if not job_name and ctx.target.pod:
        call = f"GET /api/v1/namespaces/{ns}/pods/{ctx.target.pod}"
        found.calls.append(call)
        try:
            pod = kube.read_pod(ns, ctx.target.pod)
        except IntegrationError as exc:
            found.failed(call, exc)
            return
        found.read.append(f"pod {ctx.target.pod}")
        owners = (pod.metadata.owner_references if pod.metadata else None) or []
        job_name = next((o.name for o in owners if o.kind == "Job"), None)
        if job_name:
            found.target["job"] = job_name
        else:
            pods = [pod]
            found.calls.append(kc.events_call(ns, ctx.target.pod, "Pod"))
            _events(kube, ns, ctx.target.pod, "Pod", found)
    if job_name:
        found.calls.append(kc.job_call(ns, job_name))
        try:
            job = kube.read_job(ns, job_name)
            found.job = to_wire(job)
            found.read.append(f"job {job_name}")
        except IntegrationError as exc:
            found.failed(found.calls[-1], exc)
        found.calls.append(kc.pods_call(ns, job_name))
        try:
            pods = kc.newest_first(kube.list_job_pods(ns, job_name))
        except IntegrationError as exc:
            found.failed(found.calls[-1], exc)
        found.calls.append(kc.events_call(ns, job_name, "Job"))
        _events(kube, ns, job_name, "Job", found)
        for pod in pods:
            found.calls.append(kc.events_call(ns, kc.name_of(pod), "Pod"))
            _events(kube, ns, kc.name_of(pod), "Pod", found)
    found.pods = [to_wire(p) for p in pods]
    if pods:
        found.read.append(f"{len(pods)} pod(s)")
    run_id = _run_id_of(found)
    if run_id and not ctx.target.run_id:
        found.target["run_id"] = run_id
    chosen = kc.failed_container(ctx, pods) if pods else None
    if chosen is not None:
        pod, container, previous = chosen
        found.log_source = (kc.name_of(pod), container, previous)


def _verdict(found: _Read) -> Classification | None:
    return triage(
        JobEvidence(
            found.job, found.pods, found.events, "\n".join(found.logs), found.messages, found.deadline_s
        )
    )


def _read_log(kube: KubeGateway, ns: str, found: _Read) -> None:
    """The tail of the failed container's log (the same read the pipeline-step log check makes)."""
    if found.log_source is None:
        return
    pod, container, previous = found.log_source
    call = kc.log_call(ns, pod, container, TAIL_LINES, previous)
    found.calls.append(call)
    try:
        found.logs.append(redact(kube.read_pod_log(ns, pod, container, TAIL_LINES, previous)))
        found.read.append(f"the log tail of {pod}/{container}")
    except IntegrationError as exc:
        found.failed(call, exc)


def _read_workflow(kube: KubeGateway, ns: str, name: str, found: _Read) -> None:
    """The Workflow's failed node, its pod and `main` log tail, and what Argo said about the failure."""
    found.calls.append(wf.workflow_call(ns, name))
    try:
        failure, calls = wf.read_failure(kube, ns, name)
    except IntegrationError as exc:
        found.failed(found.calls[-1], exc)
        return
    found.calls[-1:] = calls
    found.read.append(f"workflow {name}")
    found.messages = failure.messages
    found.deadline_s = failure.workflow.get("spec", {}).get("activeDeadlineSeconds")
    if failure.node is not None:
        node = failure.node.get("displayName") or failure.node.get("name")
        found.failed_workflow = Classification(
            Category.PIPELINE_STEP_FAILED,
            f"workflow {name} failed at node {node} and nothing read names a known cause",
        )
    elif (failure.workflow.get("status") or {}).get("phase") in wf.FAILED:
        found.failed_workflow = Classification(
            Category.PIPELINE_STEP_FAILED,
            f"workflow {name} failed and its nodes cannot be read (offloaded to Argo's database)",
        )
    if failure.pod is None:
        return
    found.pods = [failure.pod]
    found.log_source = (str(failure.pod["metadata"]["name"]), "main", False)


def _failed_job(job: dict[str, Any]) -> Classification | None:
    """For an alert no rule could place: a Job that failed with no known cause is a failed step."""
    for condition in job.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            name = job.get("metadata", {}).get("name", "?")
            why = condition.get("reason") or "Failed"
            return Classification(
                Category.PIPELINE_STEP_FAILED,
                f"job {name} failed ({why}) and nothing read names a known cause",
            )
    return None


def _events(kube: KubeGateway, ns: str, name: str, kind: str, found: _Read) -> None:
    try:
        found.events += [to_wire(e) for e in kube.list_events(ns, name, kind)]
    except IntegrationError as exc:
        found.failed(found.calls[-1], exc)


def _run_id_of(found: _Read) -> str | None:
    """The MLflow run the Job carries: its `mlflow.org/run-id` annotation or a container's MLFLOW_RUN_ID."""
    annotations = found.job.get("metadata", {}).get("annotations") or {}
    if annotations.get(mc.RUN_ID_ANNOTATION):
        return str(annotations[mc.RUN_ID_ANNOTATION])
    template = found.job.get("spec", {}).get("template", {}).get("spec", {})
    for container in template.get("containers", []) or []:
        for env in container.get("env", []) or []:
            if env.get("name") == RUN_ID_ENV and env.get("value"):
                return str(env["value"])
    return None


def _read_run(ctx: Context, found: _Read) -> None:
    """The stderr tail of the MLflow run the alert names (or the Job carries). Not for an alert about a
    model version: its run trained the model, and that log says nothing of why registering it failed."""
    if ctx.target.model_version:
        return
    run_id = ctx.target.run_id or found.target.get("run_id")
    if not run_id:
        run_id = next((ctx.labels[k] for k in mc.RUN_ID_LABELS if ctx.labels.get(k)), None)
    if not run_id or ctx.deps.mlflow is None:
        return
    log, calls = mc.stderr_tail(ctx.deps.mlflow, run_id)
    found.calls += calls
    if log.get("tail"):
        found.logs.append(str(log["tail"]))
        found.read.append(f"MLflow run {run_id}'s {log['path']}")
