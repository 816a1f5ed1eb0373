"""Level 1 for a training crash: was the trainer OOM-killed or crash-looping, how did its MLflow run end;
re-run it with more memory."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from bot.config import RerunWithMoreMemoryCaps, parse_memory
from bot.core.errors import IntegrationError
from bot.core.models import CheckResult, CheckStatus, Risk
from bot.core.redact import redact
from bot.diagnostics import kube_common as kc
from bot.diagnostics import mlflow_common as mc
from bot.diagnostics.base import Check, Context, Plan, Remediation, Verification
from bot.integrations.kubernetes import KubeGateway, format_memory
from bot.integrations.mlflow import MlflowGateway

MIB = 2**20
SUMMARY_METRICS = 6


class TrainingJobPodsCheck(kc.JobCheck):
    """Did a container of the training Job run out of memory (or crash-loop)?"""

    name = "job_pods_oom"
    timeout_s = 20.0

    def inspect(self, ctx: Context, gateway: KubeGateway, ns: str, name: str) -> CheckResult:
        """Read the Job and its pods and look for OOMKilled / exit 137 and CrashLoopBackOff."""
        calls = [kc.job_call(ns, name), kc.pods_call(ns, name)]
        try:
            job = gateway.read_job(ns, name)
        except IntegrationError as exc:
            return kc.error_result(self, calls[0], exc)
        try:
            pods = kc.newest_first(gateway.list_job_pods(ns, name))
        except IntegrationError as exc:
            return kc.error_result(self, calls[1], exc)
        main = kc.main_container(ctx, job)
        found = kc.evidence(calls[1], {"pods": [kc.pod_brief(p) for p in pods]}, calls, job=kc.job_brief(job))
        facts: dict[str, Any] = {
            "oom_killed": False,
            "crash_loop": False,
            "memory_limit": kc.memory_limit(job, main),
            "container": main,
            "job_name": name,
        }
        ooms = [t for pod in pods for t in kc.terminations(pod) if t.oom]
        loops = [w for pod in pods for w in kc.waiting(pod) if w.reason == "CrashLoopBackOff"]
        if ooms:
            hit = next((t for t in ooms if t.container == main and ctx.target.pod in (None, t.pod)), ooms[0])
            pod = next(p for p in pods if kc.name_of(p) == hit.pod)
            limit = kc.memory_limit(job, hit.container, pod)
            how = (
                "was OOMKilled" if hit.reason == "OOMKilled" else f"was killed ({hit.reason or 'no reason'})"
            )
            summary = f"container {hit.container} of pod {hit.pod} {how} (exit {hit.exit_code}) with " + (
                f"memory limit {limit}" if limit else "no memory limit"
            )
            if loops:
                summary += f"; it is in CrashLoopBackOff after {loops[0].restart_count} restarts"
            facts.update(oom_killed=True, crash_loop=bool(loops), memory_limit=limit, container=hit.container)
            return self.result(CheckStatus.FAIL, summary, found, {**facts, "pod": hit.pod})
        if loops:
            loop = loops[0]
            summary = (
                f"container {loop.container} of pod {loop.pod} is in CrashLoopBackOff after "
                f"{loop.restart_count} restarts; nothing points at memory"
            )
            facts.update(crash_loop=True, container=loop.container)
            return self.result(CheckStatus.FAIL, summary, found, {**facts, "pod": loop.pod})
        if not pods:
            return self.result(CheckStatus.WARN, f"job {name} has no pods left to inspect", found, facts)
        summary = f"no container of job {name} was OOMKilled or is crash-looping ({len(pods)} pod(s) checked)"
        return self.result(CheckStatus.OK, summary, found, facts)


class RerunWithMoreMemory(Remediation[RerunWithMoreMemoryCaps]):
    """Re-run an OOM-killed Job as a new Job with its memory limit raised by a step, up to a cap."""

    name = "rerun_job_with_more_memory"
    risk = Risk.SAFE
    needs = ("kube",)
    caps_model = RerunWithMoreMemoryCaps

    def plan(self, ctx: Context, caps: RerunWithMoreMemoryCaps) -> Plan | None:
        """Raise the last limit tried by `memory_step_factor`, clamped to `max_memory`."""
        ns, job = ctx.target.namespace, ctx.target.job
        # When the last re-run failed for another reason, more memory will not help.
        oom = kc.verified_fact(ctx, self.name, "oom_killed")
        if not (ctx.fact("oom_killed") if oom is None else oom) or not ns or not job:
            return None
        refusal = kc.namespace_refusal(ctx)
        if refusal:
            return Plan(self.name, f"re-run job {ns}/{job} with more memory", refused=refusal)
        current, ceiling, factor = ctx.fact("memory_limit"), caps.max_memory, caps.memory_step_factor
        describe = f"re-run job {ns}/{job} with more memory"
        if not current:
            return Plan(self.name, describe, refused=f"job {job} sets no memory limit to raise")
        try:
            current_bytes, ceiling_bytes = parse_memory(str(current)), parse_memory(ceiling)
        except ValueError as exc:
            return Plan(self.name, describe, refused=str(exc))
        if current_bytes >= ceiling_bytes:
            return Plan(self.name, describe, refused=f"memory {current} is already at the cap {ceiling}")
        new = format_memory(min(math.ceil(current_bytes * factor / MIB) * MIB, ceiling_bytes))
        return Plan(
            self.name,
            f"re-run job {ns}/{job} as a new job with memory limit {new} (was {current}, cap {ceiling})",
            {"namespace": ns, "job": job, "memory_limit": new, "previous_memory_limit": current},
        )

    def apply(self, ctx: Context, plan: Plan) -> dict[str, Any]:
        """Create the new Job; raises IntegrationError when the API refuses it."""
        params = plan.params
        applied = kc.rerun(
            ctx, self.name, params["namespace"], params["job"], memory_limit=params["memory_limit"]
        )
        applied["facts"]["memory_limit"] = params["memory_limit"]
        return applied

    def verify(self, ctx: Context, plan: Plan, applied: dict[str, Any], deadline: datetime) -> Verification:
        """Wait for the new Job to complete; when it fails, say whether it ran out of memory again."""
        ns, limit = plan.params["namespace"], plan.params["memory_limit"]
        name = applied["facts"]["job_name"]
        end = kc.wait_for_job(ctx, ns, name, deadline)
        facts: dict[str, Any] = {"job_name": name, "memory_limit": limit}
        call = kc.job_call(ns, name)
        if end.state == "complete":
            return Verification(
                True, f"job {name} completed with memory limit {limit}", {"call": call, "facts": facts}
            )
        if end.state != "failed":
            return Verification(False, f"job {name}: {end.detail}", {"call": call, "facts": facts})
        oom = next((t for pod in kc.job_pods(ctx, ns, name) for t in kc.terminations(pod) if t.oom), None)
        facts["oom_killed"] = oom is not None
        if oom is not None:
            summary = f"job {name} was OOMKilled again (container {oom.container}) with memory limit {limit}"
        else:
            summary = f"job {name} failed with memory limit {limit} ({end.detail}), not from lack of memory"
        return Verification(False, summary, {"call": call, "facts": facts})


class MlflowRunCheck(mc.RunCheck):
    """Did the training run fail in MLflow, with which last metrics, and what did it write to stderr?"""

    name = "mlflow_run"
    timeout_s = 20.0

    def inspect(
        self, ctx: Context, gateway: MlflowGateway, run_id: str, source: str | None, run: Any, call: str
    ) -> CheckResult:
        """Read the run's status, end time, latest metrics and params, and its stderr log's tail."""
        brief = mc.run_brief(run)
        log, calls = mc.stderr_tail(gateway, run_id)
        found = kc.evidence(call, brief, [call, *calls], run_id_from=source, log=log)
        error_line = kc.last_error_line(log.get("tail", "")) if log else None
        status = str(brief["status"])
        facts = {
            "run_id": run_id,
            "run_status": status,
            "last_metrics": brief["metrics"],
            "stderr_error_line": error_line,
        }
        metrics = ", ".join(f"{k}={v:g}" for k, v in list(brief["metrics"].items())[:SUMMARY_METRICS])
        who = f"MLflow run {brief['run_name']} ({run_id})" if brief["run_name"] else f"MLflow run {run_id}"
        if status in mc.FAILED_STATUSES:
            summary = f"{who} is {status}" + (f" since {brief['end_time']}" if brief["end_time"] else "")
            summary += f"; last metrics: {metrics}" if metrics else "; it logged no metrics"
            if error_line:
                summary += f"; {log['path']}: {error_line}"
            return self.result(CheckStatus.FAIL, redact(summary), found, facts)
        if status in ("RUNNING", "SCHEDULED"):
            summary = (
                f"{who} is still {status} (started {brief['start_time']}): the trainer may have died "
                "without ending it"
            )
            return self.result(CheckStatus.WARN, redact(summary), found, facts)
        summary = f"{who} is {status}" + (f"; last metrics: {metrics}" if metrics else "")
        return self.result(CheckStatus.OK, redact(summary), found, facts)


CHECKS: list[type[Check]] = [TrainingJobPodsCheck, kc.WarningEventsCheck, MlflowRunCheck]
REMEDIATIONS: list[type[Remediation[Any]]] = [RerunWithMoreMemory]
