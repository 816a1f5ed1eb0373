"""`doctor`'s Kubernetes checks: is a cluster configured when the config needs one, can each watched
namespace be read, and does the bot hold every permission the config needs (one SelfSubjectAccessReview
each, with the Role rule to add for each one denied)."""

from __future__ import annotations

from bot.config import AppConfig, Env
from bot.core.errors import IntegrationError
from bot.doctor.report import Report
from bot.integrations.kube_permissions import Permission, required
from bot.integrations.kubernetes import KubeGateway, connect

_READ_VERBS = ("get", "list", "watch")
_NO_CLUSTER_FIX = (
    "set KUBECONFIG to a kubeconfig file, or run the bot in the cluster with its service account "
    "(deploy/kubernetes/); or turn those off in app.yaml"
)


def needs_kubernetes(config: AppConfig) -> list[str]:
    """What in the config cannot work without a cluster: the Job and Workflow pollers, and remediations
    that write to it."""
    pollers = config.intake.pollers
    needs = [
        f"intake.pollers.{name}"
        for name, on in (
            ("kubernetes_failed_jobs", pollers.kubernetes_failed_jobs.enabled),
            ("argo_failed_workflows", pollers.argo_failed_workflows.enabled),
        )
        if on
    ]
    writers = sorted({p.why for p in required(config) if p.verb not in _READ_VERBS})
    return needs + writers


def kubernetes_checks(config: AppConfig, env: Env, report: Report) -> None:
    """Which cluster, each namespace readable, then the rights; nothing when it is neither configured nor
    needed but a line saying Level 1 skips its Kubernetes checks."""
    found = connect(env.kubeconfig, config.kubernetes)
    if found.gateway is None:
        needs = needs_kubernetes(config)
        if found.configured:
            fix = "fix the kubeconfig file" if env.kubeconfig else "mount the service-account token and CA"
            report.add("Kubernetes", False, f"{found.source}: {found.problem}", fix)
        elif needs:
            detail = f"not configured (no KUBECONFIG, not in a pod), but {', '.join(needs)} need it"
            report.add("Kubernetes", False, detail, _NO_CLUSTER_FIX)
        else:
            report.add(
                "Kubernetes", True, "not configured (no KUBECONFIG, not in a pod): Level 1 skips its checks"
            )
        return
    kube = found.gateway
    try:
        report.add("Kubernetes", True, f"{kube.describe()} from {found.source}")
        if _namespaces_readable(config, kube, report):
            _access_reviews(config, kube, report)
    finally:
        kube.close()


def _namespaces_readable(config: AppConfig, kube: KubeGateway, report: Report) -> bool:
    """One read per watched namespace; False when the API server did not answer or refused the caller."""
    answered = True
    for ns in config.kubernetes.namespaces:
        try:
            kube.list_job_pods(ns, "escalation-bot-doctor-probe")
            report.add(f"Kubernetes namespace {ns}", True, "readable")
        except IntegrationError as exc:
            if exc.status == 403:
                fix = f"let the bot list pods in {ns} (see the permissions below and deploy/kubernetes/)"
            elif exc.status == 401:
                fix = (
                    "the API server refused the credentials: renew the token (KUBECONFIG or service account)"
                )
            else:
                fix = _network_fix(config)
            report.add(f"Kubernetes namespace {ns}", False, str(exc), fix)
            answered = answered and exc.status == 403
    return answered


def _network_fix(config: AppConfig) -> str:
    timeout = config.kubernetes.request_timeout.total_seconds()
    return f"check the API server's address and the network (each call waits {timeout:g}s)"


def _access_reviews(config: AppConfig, kube: KubeGateway, report: Report) -> None:
    needed = required(config)
    denied: list[Permission] = []
    try:
        for permission in needed:
            p = permission
            allowed, _ = kube.may(p.namespace, p.group, p.resource, p.verb, p.name)
            if not allowed:
                denied.append(p)
    except IntegrationError as exc:
        fix = (
            "every authenticated caller may create SelfSubjectAccessReviews unless the cluster forbids it"
            if exc.status == 403
            else _network_fix(config)  # no answer in time, or a server error
        )
        report.add("Kubernetes permissions", False, f"cannot ask the API server: {exc}", fix)
        return
    for p in denied:
        report.add(
            f"Kubernetes permission {p.describe()}", False, f"denied (needed by {p.why})", role_rule(p)
        )
    if not denied:
        report.add("Kubernetes permissions", True, f"all {len(needed)} this config needs are granted")


def role_rule(p: Permission) -> str:
    """The RBAC rule that grants `p`, as one line to add to the bot's Role in its namespace."""
    names = f', resourceNames: ["{p.name}"]' if p.name else ""
    rule = f'{{apiGroups: ["{p.group}"], resources: ["{p.resource}"]{names}, verbs: ["{p.verb}"]}}'
    return f"add the rule {rule} to the bot's Role in namespace {p.namespace}"
