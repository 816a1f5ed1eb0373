"""Level 1 for a failed pipeline step: why the Job failed, what its log says, one retry with debug logs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.config import RetryWithDebugCaps
from bot.core.errors import IntegrationError
from bot.core.models import AttemptStatus, CheckResult, CheckStatus, Risk
from bot.core.redact import redact, redact_obj
from bot.diagnostics import kube_common as kc
from bot.diagnostics.base import Check, Context, Plan, Remediation, Verification
from bot.integrations.kubernetes import KubeGateway

TAIL_LINES = 50
DEBUG_ENV = {"LOG_LEVEL": "DEBUG", "DEBUG": "1"}
IMAGE_PULL_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"})


class FailedJobCheck(kc.JobCheck):
    """Has the Job failed, and with which condition reason?"""

    name = "job_failed"
    timeout_s = 15.0

    def inspect(self, ctx: Context, gateway: KubeGateway, ns: str, name: str) -> CheckResult:
        """Read the Job and report its Failed condition (BackoffLimitExceeded, DeadlineExceeded, …)."""
        call = kc.job_call(ns, name)
        try:
            job = gateway.read_job(ns, name)
        except IntegrationError as exc:
            return kc.error_result(self, call, exc)
        found = kc.evidence(call, kc.job_brief(job))
        failed = kc.failed_condition(job)
        if failed is not None:
            cause = failed.reason or "Failed"
            summary = f"job {name} failed: {cause}" + (f" ({failed.message})" if failed.message else "")
            facts = {"job_failed": True, "failure_reason": cause, "job_name": name}
            return self.result(CheckStatus.FAIL, redact(summary), found, facts)
        facts = {"job_failed": False, "failure_reason": None, "job_name": name}
        if kc.condition(job, "Complete"):
            return self.result(CheckStatus.OK, f"job {name} completed", found, facts)
        active = (job.status.active if job.status else None) or 0
        return self.result(
            CheckStatus.OK, f"job {name} has not failed ({active} active pod(s))", found, facts
        )


class PodLogsTailCheck(kc.JobCheck):
    """The last lines of the failed pod's main container, redacted."""

    name = "pod_logs_tail"
    timeout_s = 20.0

    def inspect(self, ctx: Context, gateway: KubeGateway, ns: str, name: str) -> CheckResult:
        """Read the failed container's log tail and name its last error-looking line."""
        log = kc.read_failed_log(self, gateway, ctx, ns, name, TAIL_LINES)
        if isinstance(log, CheckResult):
            return log
        pod_name, container, call, tail = log.pod, log.container, log.call, log.tail
        found = redact_obj({"call": call, "tail": tail, "pod": pod_name, "container": container})
        line = kc.last_error_line(tail)
        facts = {"error_line": line, "pod": pod_name, "container": container, "job_name": name}
        if line:
            return self.result(CheckStatus.FAIL, line, found, facts)
        where = f"the last {TAIL_LINES} lines of {pod_name}/{container}"
        summary = f"no error-looking line in {where}" if tail.strip() else f"{where} are empty"
        return self.result(CheckStatus.OK, summary, found, facts)


class ImagePullCheck(kc.JobCheck):
    """Is a pod of the Job stuck pulling its image?"""

    name = "image_pull"
    timeout_s = 15.0

    def inspect(self, ctx: Context, gateway: KubeGateway, ns: str, name: str) -> CheckResult:
        """Look for containers waiting with ImagePullBackOff or ErrImagePull."""
        call = kc.pods_call(ns, name)
        try:
            pods = kc.newest_first(gateway.list_job_pods(ns, name))
        except IntegrationError as exc:
            return kc.error_result(self, call, exc)
        found = kc.evidence(call, {"pods": [kc.pod_brief(p) for p in pods]})
        stuck = [w for pod in pods for w in kc.waiting(pod) if w.reason in IMAGE_PULL_REASONS]
        if stuck:
            w = stuck[0]
            summary = f"container {w.container} of pod {w.pod} cannot pull image {w.image}: {w.reason}" + (
                f" ({w.message})" if w.message else ""
            )
            facts = {"image_pull_failed": True, "image": w.image, "container": w.container, "job_name": name}
            return self.result(CheckStatus.FAIL, redact(summary), found, facts)
        facts = {"image_pull_failed": False, "job_name": name}
        return self.result(CheckStatus.OK, f"no pod of job {name} is waiting on an image pull", found, facts)


class RetryJobWithDebug(Remediation[RetryWithDebugCaps]):
    """Re-run a failed Job once as a new Job with debug logging switched on."""

    name = "retry_job_with_debug"
    risk = Risk.SAFE
    needs = ("kube",)
    caps_model = RetryWithDebugCaps

    def plan(self, ctx: Context, caps: RetryWithDebugCaps) -> Plan | None:
        """Retry when the Job failed, at most `max_retries` times per incident."""
        ns, job = ctx.target.namespace, ctx.target.job
        if not any(f.facts.get("job_failed") for f in ctx.findings) or not ns or not job:
            return None
        describe = f"re-run job {ns}/{job} as a new job with LOG_LEVEL=DEBUG and DEBUG=1"
        refusal = kc.namespace_refusal(ctx)
        if refusal:
            return Plan(self.name, describe, refused=refusal)
        max_retries = caps.max_retries
        earlier = [a for a in ctx.attempts if a.name == self.name and a.status is not AttemptStatus.REFUSED]
        if len(earlier) >= max_retries:
            return Plan(self.name, describe, refused=f"retry cap {max_retries} reached")
        return Plan(self.name, describe, {"namespace": ns, "job": job, "env": dict(DEBUG_ENV)})

    def apply(self, ctx: Context, plan: Plan) -> dict[str, Any]:
        """Create the new Job; raises IntegrationError when the API refuses it."""
        params = plan.params
        return kc.rerun(ctx, self.name, params["namespace"], params["job"], extra_env=params["env"])

    def verify(self, ctx: Context, plan: Plan, applied: dict[str, Any], deadline: datetime) -> Verification:
        """Wait for the retried Job; when it fails again, report its reason and last error line."""
        ns, name = plan.params["namespace"], applied["facts"]["job_name"]
        end = kc.wait_for_job(ctx, ns, name, deadline)
        facts: dict[str, Any] = {"job_name": name}
        call = kc.job_call(ns, name)
        if end.state == "complete":
            return Verification(
                True, f"job {name} completed when re-run with debug logging", {"call": call, "facts": facts}
            )
        if end.state != "failed":
            return Verification(False, f"job {name}: {end.detail}", {"call": call, "facts": facts})
        facts.update(job_failed=True, failure_reason=end.detail.split(":")[0])
        line = self._last_error(ctx, ns, name)
        summary = f"job {name} failed again with debug logging ({end.detail})"
        if line:
            facts["error_line"] = line
            summary += f"; last error: {line}"
        return Verification(False, summary, {"call": call, "facts": facts})

    @staticmethod
    def _last_error(ctx: Context, ns: str, job: str) -> str | None:
        gateway: KubeGateway = ctx.deps.kube
        chosen = kc.failed_container(ctx, kc.job_pods(ctx, ns, job))
        if chosen is None:
            return None
        pod, container, previous = chosen
        try:
            return kc.last_error_line(
                redact(gateway.read_pod_log(ns, kc.name_of(pod), container, TAIL_LINES, previous))
            )
        except IntegrationError:
            return None


CHECKS: list[type[Check]] = [FailedJobCheck, PodLogsTailCheck, ImagePullCheck, kc.WarningEventsCheck]
REMEDIATIONS: list[type[Remediation[Any]]] = [RetryJobWithDebug]
