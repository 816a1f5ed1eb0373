"""Level 1 for an orchestration timeout: the Job's deadline, pods that cannot be scheduled, a step that
went silent, the upstream Jobs it waits on; a Job that hit its deadline is re-run from its checkpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.config import NoCaps, OrchestrationSettings, format_duration
from bot.core.errors import IntegrationError
from bot.core.models import AttemptStatus, CheckResult, CheckStatus, Risk
from bot.core.redact import redact
from bot.diagnostics import kube_common as kc
from bot.diagnostics.base import Check, Context, Plan, Remediation, Verification
from bot.integrations.kubernetes import CoreV1Event, KubeGateway, V1Job, V1Pod, to_wire

DEADLINE_REASON = "DeadlineExceeded"
NEAR_DEADLINE = 0.8  # a running Job past this share of activeDeadlineSeconds is reported as WARN
MAX_PENDING_PODS = 10
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


def settings(ctx: Context) -> OrchestrationSettings:
    """The orchestration section of the live config (its defaults when none is attached)."""
    return ctx.config.orchestration if ctx.config is not None else OrchestrationSettings()


def _took(seconds: float) -> str:
    return format_duration(timedelta(seconds=max(0, round(seconds))))


def _annotations(job: V1Job) -> dict[str, str]:
    return dict((job.metadata.annotations if job.metadata else None) or {})


def pending_call(ns: str) -> str:
    return f"GET /api/v1/namespaces/{ns}/pods?fieldSelector=status.phase=Pending"


def last_line_call(ns: str, pod: str, container: str) -> str:
    return f"GET /api/v1/namespaces/{ns}/pods/{pod}/log?container={container}&tailLines=1&timestamps=true"


class JobDeadlineCheck(kc.JobCheck):
    """Did the Job fail on its activeDeadlineSeconds, and how long had it run?"""

    name = "job_deadline"
    timeout_s = 15.0

    def inspect(self, ctx: Context, gateway: KubeGateway, ns: str, name: str) -> CheckResult:
        """Read the Job: its Failed condition, deadline, run time and checkpoint annotation."""
        call = kc.job_call(ns, name)
        try:
            job = gateway.read_job(ns, name)
        except IntegrationError as exc:
            return kc.error_result(self, call, exc)
        config = settings(ctx)
        checkpoint = _annotations(job).get(config.checkpoint_annotation) or None
        deadline = job.spec.active_deadline_seconds if job.spec else None
        started = job.status.start_time if job.status else None
        brief = {**kc.job_brief(job), "activeDeadlineSeconds": deadline, "checkpoint": checkpoint}
        found = kc.evidence(call, brief)
        facts: dict[str, Any] = {
            "job_name": name,
            "deadline_exceeded": False,
            "active_deadline_s": deadline,
            "checkpoint": checkpoint,
        }
        failed = kc.failed_condition(job)
        if failed is not None and failed.reason == DEADLINE_REASON:
            ended = failed.last_transition_time or ctx.now()
            ran = (ended - started).total_seconds() if started else None
            facts.update(deadline_exceeded=True, ran_s=ran)
            ran_text = f"it ran {_took(ran)}" if ran is not None else "its start time is unknown"
            summary = f"job {name} hit its deadline: {ran_text} against activeDeadlineSeconds {deadline}"
            if failed.message:
                summary += f" ({failed.message})"
            if checkpoint:
                summary += f"; it can resume from checkpoint {checkpoint}"
            else:
                summary += (
                    f"; no checkpoint is configured (annotation {config.checkpoint_annotation}), "
                    "so a re-run would start over"
                )
            return self.result(CheckStatus.FAIL, redact(summary), found, facts)
        if failed is not None:
            summary = f"job {name} failed with {failed.reason or 'Failed'}, not on its deadline"
            return self.result(CheckStatus.WARN, summary, found, facts)
        if kc.condition(job, "Complete"):
            return self.result(CheckStatus.OK, f"job {name} completed", found, facts)
        ran = (ctx.now() - started).total_seconds() if started else 0.0
        facts["ran_s"] = ran
        if not deadline:
            summary = f"job {name} has run {_took(ran)} and has no activeDeadlineSeconds"
            return self.result(CheckStatus.OK, summary, found, facts)
        summary = f"job {name} has run {_took(ran)} of its {_took(deadline)} deadline"
        status = CheckStatus.WARN if ran >= NEAR_DEADLINE * deadline else CheckStatus.OK
        return self.result(status, summary, found, facts)


def _job_of(pod: V1Pod) -> str | None:
    labels = (pod.metadata.labels if pod.metadata else None) or {}
    return next((labels[k] for k in JOB_NAME_LABELS if labels.get(k)), None)


def _seen(event: CoreV1Event) -> datetime | None:
    """When the event was last seen (the API fills different fields depending on the reporter)."""
    series = event.series.last_observed_time if event.series else None
    meta = event.metadata.creation_timestamp if event.metadata else None
    return event.last_timestamp or series or event.event_time or event.first_timestamp or meta


def _failed_scheduling(events: list[CoreV1Event]) -> CoreV1Event | None:
    hits = [e for e in events if e.type == "Warning" and e.reason == "FailedScheduling"]
    return max(hits, key=lambda e: _seen(e) or datetime.min.replace(tzinfo=UTC)) if hits else None


class PendingPodsCheck(kc.JobCheck):
    """Are pods in the Job's namespace Pending because the scheduler finds no room for them?"""

    name = "pods_pending"
    timeout_s = 20.0

    def inspect(self, ctx: Context, gateway: KubeGateway, ns: str, name: str) -> CheckResult:
        """List Pending pods in the namespace and their FailedScheduling warning events."""
        calls = [pending_call(ns)]
        try:
            pending = kc.newest_first(gateway.list_pods(ns, field_selector="status.phase=Pending"))
            unschedulable = []
            for pod in pending[:MAX_PENDING_PODS]:
                calls.append(kc.events_call(ns, kc.name_of(pod), "Pod"))
                event = _failed_scheduling(gateway.list_events(ns, kc.name_of(pod), "Pod"))
                if event is not None:
                    unschedulable.append(
                        {
                            "pod": kc.name_of(pod),
                            "job": _job_of(pod),
                            "reason": event.reason,
                            "message": event.message,
                            "count": event.count,
                            "last_seen": to_wire(_seen(event)),
                        }
                    )
        except IntegrationError as exc:
            return kc.error_result(self, calls[-1], exc)
        found = kc.evidence(
            calls[0], {"pending": [kc.name_of(p) for p in pending]}, calls, unschedulable=unschedulable
        )
        own = [u for u in unschedulable if u["job"] == name]
        facts = {"unschedulable_pods": [u["pod"] for u in unschedulable], "job_unschedulable": bool(own)}
        if own:
            first = own[0]
            summary = f"pod {first['pod']} of job {name} cannot be scheduled: {first['message']}"
            return self.result(CheckStatus.FAIL, redact(summary), found, facts)
        if unschedulable:
            first = unschedulable[0]
            summary = (
                f"{len(unschedulable)} pending pod(s) in {ns} cannot be scheduled; pod {first['pod']}"
                + (f" of job {first['job']}" if first["job"] else "")
                + f": {first['message']}"
            )
            return self.result(CheckStatus.WARN, redact(summary), found, facts)
        if pending:
            summary = f"{len(pending)} pod(s) are Pending in {ns}, none with a FailedScheduling event"
            return self.result(CheckStatus.OK, summary, found, facts)
        return self.result(CheckStatus.OK, f"no pod is Pending in {ns}", found, facts)


def parse_log_time(line: str) -> tuple[datetime | None, str]:
    """Split a `timestamps=true` log line into its RFC 3339 timestamp (aware) and its text."""
    stamp, _, text = line.partition(" ")
    head, dot, rest = stamp.rstrip("Z").partition(".")
    # The API server writes nanoseconds; fromisoformat takes at most microseconds.
    iso = f"{head}.{rest[:6]}+00:00" if dot else f"{head}+00:00"
    try:
        return datetime.fromisoformat(iso), text
    except ValueError:
        return None, line


class SilentStepCheck(kc.JobCheck):
    """Has a running pod of the Job written nothing to its log for longer than silent_step_after?"""

    name = "step_silent"
    timeout_s = 20.0

    def inspect(self, ctx: Context, gateway: KubeGateway, ns: str, name: str) -> CheckResult:
        """Read the last log line (with its timestamp) of each running pod's main container."""
        calls = [kc.pods_call(ns, name)]
        try:
            pods = kc.newest_first(gateway.list_job_pods(ns, name))
        except IntegrationError as exc:
            return kc.error_result(self, calls[0], exc)
        running = [p for p in pods if p.status and p.status.phase == "Running"]
        limit = settings(ctx).silent_step_after
        facts: dict[str, Any] = {"job_name": name, "stuck": False}
        if not running:
            found = kc.evidence(calls[0], {"pods": [kc.pod_brief(p) for p in pods]})
            return self.result(
                CheckStatus.OK, f"job {name} has no running pod that could be silent", found, facts
            )
        now = ctx.now()
        steps: list[dict[str, Any]] = []
        for pod in running:
            container = ctx.target.container or (pod.spec.containers[0].name if pod.spec else "")
            calls.append(last_line_call(ns, kc.name_of(pod), container))
            try:
                line = redact(gateway.read_last_log_line(ns, kc.name_of(pod), container))
            except IntegrationError as exc:
                return kc.error_result(self, calls[-1], exc)
            at, text = parse_log_time(line) if line else (None, "")
            since = at or (pod.status.start_time if pod.status else None)
            silent_s = (now - since).total_seconds() if since else None
            steps.append(
                {
                    "pod": kc.name_of(pod),
                    "container": container,
                    "last_line": text,
                    "last_line_at": to_wire(at) if at else None,
                    "silent_for_s": silent_s,
                }
            )
        found = kc.evidence(calls[-1], {"steps": steps}, calls, silent_step_after=format_duration(limit))
        silent = [
            s for s in steps if s["silent_for_s"] is not None and s["silent_for_s"] > limit.total_seconds()
        ]
        if not silent:
            summary = f"every running pod of job {name} logged within the last {format_duration(limit)}"
            return self.result(CheckStatus.OK, summary, found, facts)
        step = max(silent, key=lambda s: s["silent_for_s"])
        last = (
            f"last line at {step['last_line_at']}: {step['last_line'][:200]}"
            if step["last_line_at"]
            else "no log line since it started"
        )
        # The log line goes last: redaction may swallow punctuation that follows a secret.
        summary = (
            f"pod {step['pod']} of job {name} has logged nothing for {_took(step['silent_for_s'])}, "
            f"longer than orchestration.silent_step_after {format_duration(limit)}; {last}"
        )
        facts.update(stuck=True, silent_pod=step["pod"], silent_for_s=step["silent_for_s"])
        return self.result(CheckStatus.FAIL, redact(summary), found, facts)


def _state(job: V1Job) -> tuple[str, str | None]:
    if kc.condition(job, "Complete"):
        return "Complete", None
    failed = kc.failed_condition(job)
    if failed is not None:
        return "Failed", failed.reason or None
    return "running", None


class UpstreamCheck(kc.JobCheck):
    """Did the upstream Jobs this Job waits on (its upstream annotation) complete?"""

    name = "upstream_jobs"
    timeout_s = 20.0

    def inspect(self, ctx: Context, gateway: KubeGateway, ns: str, name: str) -> CheckResult:
        """Read each upstream Job the annotation lists and report Complete / Failed / running / missing."""
        calls = [kc.job_call(ns, name)]
        try:
            job = gateway.read_job(ns, name)
        except IntegrationError as exc:
            return kc.error_result(self, calls[0], exc)
        annotation = settings(ctx).upstream_annotation
        listed = [e.strip() for e in _annotations(job).get(annotation, "").split(",") if e.strip()]
        if not listed:
            return self.result(
                CheckStatus.SKIPPED, f"job {name} lists no upstream jobs (annotation {annotation})"
            )
        upstream: list[dict[str, Any]] = []
        for entry in listed:
            up_ns, _, up_name = entry.rpartition("/")
            up_ns = up_ns or ns
            record: dict[str, Any] = {"job": f"{up_ns}/{up_name}"}
            upstream.append(record)
            if ctx.policy.namespaces and up_ns not in ctx.policy.namespaces:
                record["state"] = "not inspected (namespace not allowed)"
                continue
            calls.append(kc.job_call(up_ns, up_name))
            try:
                record["state"], reason = _state(gateway.read_job(up_ns, up_name))
            except IntegrationError as exc:
                if exc.status != 404:
                    return kc.error_result(self, calls[-1], exc)
                record["state"], reason = "missing", None
            if reason:
                record["reason"] = reason
        found = kc.evidence(calls[0], {"annotation": annotation, "upstream": upstream}, calls)
        states = {r["job"]: r["state"] for r in upstream}
        broken = [r["job"] for r in upstream if r["state"] in ("Failed", "missing")]
        facts = {"upstream": states, "failed_upstream": broken}
        listing = ", ".join(
            f"{r['job'].rpartition('/')[2]} {r['state']}" + (f" ({r['reason']})" if r.get("reason") else "")
            for r in upstream
        )
        if broken:
            return self.result(CheckStatus.FAIL, f"upstream of job {name}: {listing}", found, facts)
        if any(r["state"] == "running" for r in upstream):
            return self.result(
                CheckStatus.WARN, f"upstream of job {name} still running: {listing}", found, facts
            )
        return self.result(CheckStatus.OK, f"upstream of job {name}: {listing}", found, facts)


class RerunFromCheckpoint(Remediation[NoCaps]):
    """Re-run a Job that hit its deadline as a new Job told (by env) to resume from its last checkpoint."""

    name = "rerun_from_checkpoint"
    risk = Risk.SAFE
    needs = ("kube",)
    caps_model = NoCaps

    def plan(self, ctx: Context, caps: NoCaps) -> Plan | None:
        """Applies when the Job hit its deadline (or is stuck) and has a checkpoint annotation."""
        ns, job = ctx.target.namespace, ctx.target.job
        deadline = any(f.facts.get("deadline_exceeded") for f in ctx.findings)
        stuck = any(f.facts.get("stuck") for f in ctx.findings)
        checkpoint = ctx.fact("checkpoint")
        if not (deadline or stuck) or not checkpoint or not ns or not job:
            return None
        env = settings(ctx).checkpoint_env
        describe = f"re-run job {ns}/{job} as a new job with {env}={checkpoint}"
        refusal = kc.namespace_refusal(ctx)
        if refusal:
            return Plan(self.name, describe, refused=refusal)
        if not deadline:
            # Two copies of one step writing the same checkpoint would corrupt it.
            return Plan(
                self.name,
                describe,
                refused=f"job {job} is still running; a person must stop it before it is re-run",
            )
        if any(a.name == self.name and a.status is not AttemptStatus.REFUSED for a in ctx.attempts):
            return Plan(self.name, describe, refused="it was already re-run once from its checkpoint")
        return Plan(self.name, describe, {"namespace": ns, "job": job, "env": {env: str(checkpoint)}})

    def apply(self, ctx: Context, plan: Plan) -> dict[str, Any]:
        """Create the new Job; raises IntegrationError when the API refuses it."""
        params = plan.params
        return kc.rerun(ctx, self.name, params["namespace"], params["job"], extra_env=params["env"])

    def verify(self, ctx: Context, plan: Plan, applied: dict[str, Any], deadline: datetime) -> Verification:
        """Wait for the re-run Job to complete before `deadline`."""
        ns, name = plan.params["namespace"], applied["facts"]["job_name"]
        checkpoint = next(iter(plan.params["env"].values()))
        end = kc.wait_for_job(ctx, ns, name, deadline)
        found = {"call": kc.job_call(ns, name), "facts": {"job_name": name}}
        if end.state == "complete":
            return Verification(True, f"job {name} completed when re-run from checkpoint {checkpoint}", found)
        return Verification(
            False, f"job {name} re-run from checkpoint {checkpoint}: {end.state} ({end.detail})", found
        )


CHECKS: list[type[Check]] = [JobDeadlineCheck, PendingPodsCheck, SilentStepCheck, UpstreamCheck]
REMEDIATIONS: list[type[Remediation[Any]]] = [RerunFromCheckpoint]
