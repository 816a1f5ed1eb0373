"""The Argo Workflows poller: Workflows that ended Failed or Error in the watched namespaces become alerts.

It lists completed Workflows (label `workflows.argoproj.io/completed=true`) and keeps those whose phase
failed after the cursor, leaving out the runs Level 1 itself submitted. A cluster without the Workflow
CRD answers 404: that namespace has no Workflows to watch, which is said once, not retried as an error.
The alert names the Workflow and its failed node; Level 1 reads the rest and classifies from it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.core.errors import IntegrationError
from bot.core.models import AlertIn
from bot.diagnostics.kube_common import INCIDENT_LABEL
from bot.diagnostics.workflows import COMPLETED, FAILED
from bot.services.found import Found

if TYPE_CHECKING:
    from bot.integrations.kubernetes import KubeGateway

log = logging.getLogger(__name__)

WORKFLOW_POLLER = "argo_failed_workflows"


class ArgoWorkflows:
    """Workflows that failed in the watched namespaces (not the new runs Level 1 submitted)."""

    name = WORKFLOW_POLLER

    def __init__(self, gateway: KubeGateway, namespaces: list[str]) -> None:
        self.gateway = gateway
        self.namespaces = list(namespaces)
        self._absent: set[str] = set()

    def scopes(self) -> list[str]:
        return [f"{WORKFLOW_POLLER}/{ns}" for ns in self.namespaces]

    def fetch(self, scope: str, since: datetime) -> list[Found]:
        ns = scope.split("/", 1)[1]
        try:
            workflows = self.gateway.list_workflows(ns, label_selector=f"{COMPLETED}=true")
        except IntegrationError as exc:
            if exc.status != 404:
                raise
            if ns not in self._absent:
                log.info("Argo Workflows poller: no Workflow resource in %s (%s); nothing to watch", ns, exc)
                self._absent.add(ns)
            return []
        found = []
        for workflow in workflows:
            meta, status = workflow.get("metadata") or {}, workflow.get("status") or {}
            if INCIDENT_LABEL in (meta.get("labels") or {}) or status.get("phase") not in FAILED:
                continue
            at = _time(status.get("finishedAt"))
            if at is not None and at > since:
                found.append(Found(at, self._alert(ns, workflow, at)))
        return found

    def enrich(self, found: Found) -> AlertIn:
        return found.alert

    def _alert(self, ns: str, workflow: dict[str, Any], at: datetime) -> AlertIn:
        meta, status = workflow.get("metadata") or {}, workflow.get("status") or {}
        name, phase = str(meta.get("name")), str(status.get("phase"))
        nodes = (status.get("nodes") or {}).values()
        failed = [n for n in nodes if n.get("type") in ("Pod", "Container") and n.get("phase") in FAILED]
        node: dict[str, Any] = min(failed, key=lambda n: str(n.get("finishedAt") or ""), default={})
        message = str(node.get("message") or status.get("message") or "")
        where = f" at node {node.get('displayName')}" if node else ""
        title = f"Workflow {ns}/{name} {phase}{where}"
        labels = {"namespace": ns, "workflow": name, "phase": phase, "cluster": self.gateway.cluster}
        if node:
            labels["node"] = str(node.get("displayName"))
        return AlertIn(
            source="argo_poll",
            fingerprint=f"argo-workflow:{ns}/{name}/{meta.get('uid')}",
            status="firing",
            title=title,
            text=f"{title}: {message}".rstrip(": "),
            labels=labels,
            annotations={"summary": title, "message": message},
            starts_at=at,
            raw={"uid": meta.get("uid"), "phase": phase, "message": message, "finished_at": at.isoformat()},
        )


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None
