"""The Kubernetes rights the bot needs for a given app.yaml, and no more: reads in every namespace it
watches, writes only for the remediations on the allowlist. `doctor` asks the API server about each of
them (a SelfSubjectAccessReview), and the shipped RBAC is tested against them."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import AppConfig

ARGO = "argoproj.io"


@dataclass(frozen=True)
class Permission:
    """One verb on one resource in one namespace (optionally one named object), and why it is needed."""

    namespace: str
    group: str  # "" is the core API group
    resource: str  # with its subresource, e.g. "pods/log"
    verb: str
    why: str
    name: str | None = None

    def describe(self) -> str:
        kind = f"{self.resource}.{self.group}" if self.group else self.resource
        target = f"{kind}/{self.name}" if self.name else kind
        return f"{self.verb} {target} in {self.namespace}"


# what every Level 1 check and the pollers read, in each watched namespace
_READS = (
    ("", "pods", ("get", "list")),
    ("", "pods/log", ("get",)),
    ("", "events", ("list",)),
    ("batch", "jobs", ("get", "list")),
    ("batch", "cronjobs", ("get", "list")),
    (ARGO, "workflows", ("get", "list")),
)

# the writes each remediation makes, in the watched namespaces
_WRITES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "rerun_job_with_more_memory": (("batch", "jobs", "create"),),
    "retry_job_with_debug": (("batch", "jobs", "create"),),
    "trigger_materialization": (("batch", "jobs", "create"),),
    "rerun_from_checkpoint": (("batch", "jobs", "create"),),
    "rerun_with_known_good_image": (("batch", "jobs", "create"),),
    # `argo retry` deletes the failed pods and replaces the Workflow; a resubmission creates a new one
    "retry_workflow": ((ARGO, "workflows", "update"), (ARGO, "workflows", "create"), ("", "pods", "delete")),
}


def required(config: AppConfig) -> list[Permission]:
    """Every permission the bot needs with this config, reads first, each once."""
    found: dict[tuple[str, str, str, str, str | None], Permission] = {}

    def need(p: Permission) -> None:
        found.setdefault((p.namespace, p.group, p.resource, p.verb, p.name), p)

    allow = config.remediation.allowlist
    for ns in config.kubernetes.namespaces:
        for group, resource, verbs in _READS:
            for verb in verbs:
                need(Permission(ns, group, resource, verb, "Level 1 checks and the pollers read it"))
        for action, writes in _WRITES.items():
            if action in allow:
                for group, resource, verb in writes:
                    need(Permission(ns, group, resource, verb, f"remediation {action}"))
    ref = config.mlflow.server_deployment
    if ref:
        ns, name = ref.split("/", 1)
        need(Permission(ns, "apps", "deployments", "get", "the tracking server check reads it", name))
        if "restart_tracking_server" in allow:
            need(Permission(ns, "apps", "deployments", "patch", "remediation restart_tracking_server", name))
    return list(found.values())
