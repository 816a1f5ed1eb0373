"""Level 1 for a disconnected tracking server: probe it, call its API, look at its Deployment; re-check
with backoff, then restart the Deployment (what `kubectl rollout restart` does) and verify.

A transient outage is handled by a remediation of its own (`recheck_tracking`), not by retries inside
the check: a check that quietly succeeds on its third try would leave nothing to report as fixed, and
the incident would go to Level 2 with a healthy server.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.config import RecheckTrackingCaps, RestartTrackingServerCaps
from bot.core.causes import tracking_address
from bot.core.errors import IntegrationError
from bot.core.models import AttemptStatus, CheckResult, CheckStatus, Risk
from bot.core.redact import redact, redact_obj
from bot.diagnostics.base import Check, Context, Plan, Remediation, Verification
from bot.integrations.mlflow import MlflowGateway, Probe

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
DEFAULT_LATENCY_WARN = timedelta(seconds=2)
MAX_BACKOFF_S = 60.0
# What a person can act on, most specific first: (kind, words that give it away in an error text).
_TEXT_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dns", ("gaierror", "NameResolutionError", "Name or service not known", "nodename nor servname")),
    ("connection", ("Connection refused", "ConnectionRefusedError", "NewConnectionError")),
    ("timeout", ("timed out", "TimeoutError", "ReadTimeout", "ConnectTimeout")),
    ("tls", ("SSLError", "CERTIFICATE_VERIFY_FAILED")),
    ("connection", ("ConnectionResetError", "RemoteDisconnected", "Connection aborted", "ConnectionError")),
    ("auth", ("UNAUTHENTICATED", "PERMISSION_DENIED")),
)
_LABELS = {
    "dns": "DNS lookup failed",
    "timeout": "timed out",
    "tls": "TLS handshake failed",
    "auth": "authentication failed",
    "server_error": "server error",
    "http_error": "unexpected HTTP answer",
    "unknown": "unreachable",
}
RESTARTABLE = frozenset({"connection", "timeout", "server_error"})


def classify(status: int | None, text: str) -> str:
    """The kind of failure: dns, connection, timeout, tls, auth, server_error, http_error or unknown."""
    for kind, clues in _TEXT_KINDS:
        if any(clue in text for clue in clues):
            return kind
    if status in (401, 403):
        return "auth"
    if status is not None and status >= 500:
        return "server_error"
    if status is not None:
        return "http_error"
    return "unknown"


def describe_failure(kind: str, status: int | None, text: str) -> str:
    """The kind in words, with the HTTP status when there was one ("server error (HTTP 503)")."""
    if kind == "connection":
        words = "connection refused" if "refused" in text.lower() else "connection failed"
    else:
        words = _LABELS.get(kind, kind)
    # Transport failures carry a status MLflow's client made up (500); only real answers show theirs.
    answered = kind in ("auth", "server_error", "http_error") and status is not None
    return f"{words} (HTTP {status})" if answered else words


def _latency_warn(ctx: Context) -> timedelta:
    mlflow = getattr(ctx.config, "mlflow", None)
    return mlflow.latency_warn if mlflow is not None else DEFAULT_LATENCY_WARN


def _probe_summary(probe: Probe) -> str:
    answer = probe.error or f"HTTP {probe.status}"
    return f"{probe.evidence()['call']} → {answer} after {probe.latency_ms} ms"


def _probe_facts(probe: Probe) -> dict[str, Any]:
    kind = None if probe.ok else classify(probe.status, probe.error or "")
    return {"tracking_ok": probe.ok, "tracking_failure": kind, "tracking_status": probe.status}


class TrackingHealthCheck(Check):
    """Does the tracking server answer /health (and /version), and how fast?"""

    name = "tracking_health"
    needs = ("mlflow",)
    timeout_s = 15.0

    def run(self, ctx: Context) -> CheckResult:
        """GET /health and /version; classify a failure, warn on a slow answer."""
        gateway: MlflowGateway = ctx.deps.mlflow
        health = gateway.probe("/health")
        probes = [health.evidence()]
        facts = {**_probe_facts(health), "latency_ms": health.latency_ms}
        if not health.ok:
            facts["tracking_address"] = tracking_address(gateway.tracking_uri)  # incidents may share it
            kind = facts["tracking_failure"]
            summary = (
                f"MLflow tracking server {describe_failure(kind, health.status, health.error or '')}: "
                f"{_probe_summary(health)}"
            )
            found = redact_obj({**health.evidence(), "probes": probes})
            return self.result(CheckStatus.FAIL, redact(summary), found, facts)
        version = gateway.probe("/version")
        probes.append(version.evidence())
        facts["tracking_version"] = version.body if version.ok else None
        found = redact_obj({**health.evidence(), "probes": probes})
        limit = _latency_warn(ctx)
        where = f"MLflow {version.body if version.ok else '(version unknown)'} at {gateway.tracking_uri}"
        if health.latency_ms > limit.total_seconds() * 1000:
            summary = (
                f"{where} is slow: GET /health took {health.latency_ms} ms "
                f"(warning above {int(limit.total_seconds() * 1000)} ms)"
            )
            return self.result(CheckStatus.WARN, redact(summary), found, facts)
        summary = (
            f"{where} is healthy: GET /health → {health.status} {health.body[:20]} in {health.latency_ms} ms"
        )
        return self.result(CheckStatus.OK, redact(summary), found, facts)


class TrackingApiCheck(Check):
    """Does an authenticated API call work (the /health probe does not see credentials)?"""

    name = "tracking_api"
    needs = ("mlflow",)
    timeout_s = 20.0

    def run(self, ctx: Context) -> CheckResult:
        """Search for one experiment, the cheapest call that needs the bot's credentials."""
        gateway: MlflowGateway = ctx.deps.mlflow
        call = "POST /api/2.0/mlflow/experiments/search {max_results: 1}"
        try:
            experiments = gateway.search_experiments(max_results=1)
        except IntegrationError as exc:
            text = str(exc)
            kind = classify(exc.status, text)
            summary = f"MLflow API call failed, {describe_failure(kind, exc.status, text)}: {text}"
            found = redact_obj({"call": call, "error": text, "status": exc.status})
            return self.result(
                CheckStatus.FAIL, redact(summary), found, {"api_ok": False, "api_failure": kind}
            )
        names = [e.name for e in experiments]
        found = redact_obj({"call": call, "response": {"experiments": names}})
        summary = (
            f"MLflow API answers with the bot's credentials: search_experiments returned {names or 'none'}"
        )
        return self.result(CheckStatus.OK, redact(summary), found, {"api_ok": True, "api_failure": None})


def _deployment_ref(ctx: Context) -> tuple[str, str] | None:
    ref = getattr(getattr(ctx.config, "mlflow", None), "server_deployment", None)
    if not ref:
        return None
    ns, name = str(ref).split("/", 1)
    return ns, name


def deployment_call(ns: str, name: str) -> str:
    return f"GET /apis/apps/v1/namespaces/{ns}/deployments/{name}"


class TrackingServerPodsCheck(Check):
    """Are the tracking server Deployment's replicas ready (when app.yaml names the Deployment)?"""

    name = "tracking_server_pods"
    needs = ("kube",)
    timeout_s = 15.0

    def run(self, ctx: Context) -> CheckResult:
        """Read the Deployment named by mlflow.server_deployment and compare ready with desired replicas."""
        ref = _deployment_ref(ctx)
        if ref is None:
            return self.result(
                CheckStatus.SKIPPED,
                "mlflow.server_deployment is not set in app.yaml, so no Deployment to read",
            )
        ns, name = ref
        call = deployment_call(ns, name)
        try:
            deployment = ctx.deps.kube.read_deployment(ns, name)
        except IntegrationError as exc:
            found = redact_obj({"call": call, "error": str(exc), "status": exc.status})
            return self.result(CheckStatus.ERROR, redact(str(exc)), found)
        spec, status = deployment.spec, deployment.status
        desired = spec.replicas if spec and spec.replicas is not None else 1
        ready = (status.ready_replicas if status else None) or 0
        conditions = [
            {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message}
            for c in (status.conditions if status else None) or []
        ]
        response = {"replicas": desired, "readyReplicas": ready, "conditions": conditions}
        found = redact_obj({"call": call, "response": response})
        facts = {"server_replicas": desired, "server_ready_replicas": ready}
        if desired == 0:
            summary = f"tracking server Deployment {ns}/{name} is scaled to 0 replicas"
            return self.result(CheckStatus.FAIL, summary, found, facts)
        if ready < desired:
            why = next((c for c in conditions if c["status"] == "False"), None)
            summary = f"tracking server Deployment {ns}/{name} has {ready} of {desired} replicas ready" + (
                f" ({why['reason']}: {why['message']})" if why else ""
            )
            return self.result(CheckStatus.FAIL, redact(summary), found, facts)
        summary = f"tracking server Deployment {ns}/{name} has {ready} of {desired} replicas ready"
        return self.result(CheckStatus.OK, summary, found, facts)


# -- remediations ----------------------------------------------------------------------------------
def _failure(ctx: Context) -> str | None:
    """The kind of the tracking failure the checks found (None when the server looked fine)."""
    for finding in ctx.findings:
        if finding.facts.get("tracking_ok") is False:
            return str(finding.facts.get("tracking_failure"))
    for finding in ctx.findings:
        if finding.facts.get("api_ok") is False:
            return str(finding.facts.get("api_failure"))
    return None


def _tried(ctx: Context, name: str) -> int:
    return sum(1 for a in ctx.attempts if a.name == name and a.status is not AttemptStatus.REFUSED)


def probe_until_healthy(
    ctx: Context, deadline: datetime, checks: int | None, what: str
) -> tuple[bool, str, dict[str, Any]]:
    """Re-probe /health with exponential backoff until it answers, `checks` run out or `deadline`."""
    gateway: MlflowGateway = ctx.deps.mlflow
    delay, waited, done = max(ctx.verify_poll_seconds, 0.001), 0.0, 0
    probes: list[dict[str, Any]] = []
    last: Probe | None = None
    while checks is None or done < checks:
        remaining = (deadline - ctx.now()).total_seconds()
        if remaining <= 0:
            break
        pause = min(delay, remaining, MAX_BACKOFF_S)
        ctx.sleep(pause)
        waited += pause
        delay *= 2
        last, done = gateway.probe("/health"), done + 1
        probes.append(last.evidence())
        if last.ok:
            summary = (
                f"tracking server answers again {what}: {_probe_summary(last)} (probe {done}, {waited:g}s)"
            )
            return True, redact(summary), redact_obj({"probes": probes, "facts": _probe_facts(last)})
    if last is None:
        return False, f"no time was left to probe the tracking server {what}", {"probes": probes}
    kind = classify(last.status, last.error or "")
    summary = (
        f"tracking server still failing {what} after {done} probe(s) over {waited:g}s: "
        f"{describe_failure(kind, last.status, last.error or '')}: {_probe_summary(last)}"
    )
    return False, redact(summary), redact_obj({"probes": probes, "facts": _probe_facts(last)})


class RecheckTracking(Remediation[RecheckTrackingCaps]):
    """Change nothing; probe the tracking server again with backoff, for an outage that passes by itself."""

    name = "recheck_tracking"
    risk = Risk.SAFE
    needs = ("mlflow",)
    caps_model = RecheckTrackingCaps

    def plan(self, ctx: Context, caps: RecheckTrackingCaps) -> Plan | None:
        """Re-check once per incident when the server failed for any reason but credentials."""
        kind = _failure(ctx)
        if kind is None or kind == "auth" or _tried(ctx, self.name):
            return None
        checks = caps.max_checks
        first = ctx.verify_poll_seconds
        return Plan(
            self.name,
            f"probe /health again up to {checks} times, {first:g}s apart and doubling (no change is made)",
            {"max_checks": checks},
        )

    def apply(self, ctx: Context, plan: Plan) -> dict[str, Any]:
        """Nothing to apply: the re-check is the verification."""
        return {"call": "none: read-only re-check", "facts": {}}

    def verify(self, ctx: Context, plan: Plan, applied: dict[str, Any], deadline: datetime) -> Verification:
        """Probe with backoff; fixed when /health answers 2xx again."""
        fixed, summary, found = probe_until_healthy(
            ctx, deadline, int(plan.params["max_checks"]), "on re-check"
        )
        return Verification(fixed, summary, found)


class RestartTrackingServer(Remediation[RestartTrackingServerCaps]):
    """Restart the tracking server's Deployment (a rollout restart) and wait for /health to answer."""

    name = "restart_tracking_server"
    risk = Risk.SAFE
    needs = ("kube", "mlflow")
    caps_model = RestartTrackingServerCaps

    def plan(self, ctx: Context, caps: RestartTrackingServerCaps) -> Plan | None:
        """Restart when the server refuses, times out or answers 5xx; within `max_restarts`."""
        kind = _failure(ctx)
        not_ready = any(
            f.facts.get("server_ready_replicas", 1) < f.facts.get("server_replicas", 1) for f in ctx.findings
        )
        # A restart does not fix credentials, a name that does not resolve or a wrong URL.
        if (kind is not None and kind not in RESTARTABLE) or (kind is None and not not_ready):
            return None
        ref = _deployment_ref(ctx)
        if ref is None:
            return Plan(
                self.name,
                "restart the tracking server Deployment",
                refused="mlflow.server_deployment is not set in app.yaml: no Deployment to restart",
            )
        ns, name = ref
        describe = f"restart Deployment {ns}/{name} (rollout restart) and wait for /health"
        if ctx.policy.namespaces and ns not in ctx.policy.namespaces:
            return Plan(self.name, describe, refused=f"namespace {ns} is not in the allowed namespaces")
        cap = caps.max_restarts
        if _tried(ctx, self.name) >= cap:
            return Plan(self.name, describe, refused=f"restart cap {cap} reached")
        stamp = ctx.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        return Plan(self.name, describe, {"namespace": ns, "deployment": name, "restarted_at": stamp})

    def apply(self, ctx: Context, plan: Plan) -> dict[str, Any]:
        """PATCH the pod template's restartedAt annotation; raises IntegrationError when refused."""
        ns, name, stamp = plan.params["namespace"], plan.params["deployment"], plan.params["restarted_at"]
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        patched = ctx.deps.kube.patch_deployment(ns, name, body)
        meta = patched.metadata
        response = {
            "name": meta.name if meta else name,
            "generation": meta.generation if meta else None,
            "resourceVersion": meta.resource_version if meta else None,
        }
        return {
            "call": f"PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}",
            "request": body,
            "response": response,
            "facts": {"restarted_at": stamp},
        }

    def verify(self, ctx: Context, plan: Plan, applied: dict[str, Any], deadline: datetime) -> Verification:
        """Probe /health with backoff until it answers or the deadline passes."""
        ref = f"{plan.params['namespace']}/{plan.params['deployment']}"
        fixed, summary, found = probe_until_healthy(ctx, deadline, None, f"after restarting Deployment {ref}")
        return Verification(fixed, summary, found)


CHECKS: list[type[Check]] = [TrackingHealthCheck, TrackingApiCheck, TrackingServerPodsCheck]
REMEDIATIONS: list[type[Remediation[Any]]] = [RecheckTracking, RestartTrackingServer]
