"""`retry_workflow`: a failed Argo Workflow retried from its failed node the way `argo retry` does, or
resubmitted as a new run from the same spec when a retry cannot work, with more memory on the failed
template after an OOM kill, within the caps. What Level 1 read about the Workflow is in
`bot.diagnostics.workflows`."""

from __future__ import annotations

import copy
import math
from datetime import datetime
from typing import Any

from bot.config import RetryWorkflowCaps, parse_memory
from bot.core.errors import IntegrationError
from bot.core.models import AttemptStatus, Risk
from bot.core.redact import redact
from bot.diagnostics import kube_common as kc
from bot.diagnostics.base import Context, Plan, Remediation, Verification
from bot.diagnostics.workflows import (
    COMPLETED,
    FAILED,
    GROUP,
    NODE_ID,
    PHASE_LABEL,
    RESUBMITTED,
    VERSION,
    WORKFLOW_LABEL,
    Wire,
    parents_of,
    reachable,
    workflow_call,
)
from bot.integrations.kubernetes import format_memory, to_wire

MIB = 2**20


class RetryWorkflow(Remediation[RetryWorkflowCaps]):
    """Retry a failed Argo Workflow from its failed node (or resubmit it), with more memory after an OOM."""

    name = "retry_workflow"
    risk = Risk.SAFE
    needs = ("kube",)
    caps_model = RetryWorkflowCaps

    def plan(self, ctx: Context, caps: RetryWorkflowCaps) -> Plan | None:
        """Retry when the Workflow failed, at most `max_retries` times, raising memory within the cap."""
        ns, name = ctx.target.namespace, ctx.target.workflow
        phase = ctx.fact("workflow_phase")
        if not ns or not name or phase not in FAILED:
            return None
        resubmit = bool(ctx.fact("offloaded")) or (
            bool(ctx.fact("deadline_exceeded")) and bool(ctx.fact("workflow_deadline_s"))
        )
        node = ctx.fact("failed_node")
        why = (
            "its node status is offloaded or compressed, so it cannot be retried in place"
            if ctx.fact("offloaded")
            else "a retry would run past the Workflow's own activeDeadlineSeconds again"
        )
        how = (
            f"submit a new run of workflow {ns}/{name} from the same spec ({why})"
            if resubmit
            else f"retry workflow {ns}/{name} from its failed node {node}, as `argo retry` does"
        )
        refusal = kc.namespace_refusal(ctx)
        if refusal:
            return Plan(self.name, how, refused=refusal)
        earlier = [a for a in ctx.attempts if a.name == self.name and a.status is not AttemptStatus.REFUSED]
        if len(earlier) >= caps.max_retries:
            return Plan(self.name, how, refused=f"retry cap {caps.max_retries} reached")
        version = ctx.fact("workflow_version")
        params: dict[str, Any] = {"namespace": ns, "workflow": name, "resubmit": resubmit, "version": version}
        if resubmit:
            params["why"] = why
        if ctx.fact("oom_killed"):
            template, current = ctx.fact("template"), ctx.fact("memory_limit")
            if not ctx.fact("template_inline"):
                return Plan(self.name, how, refused=f"template {template} is not in the Workflow's own spec")
            if not current:
                return Plan(self.name, how, refused=f"template {template} sets no memory limit to raise")
            try:
                current_bytes, ceiling = parse_memory(str(current)), parse_memory(caps.max_memory)
            except ValueError as exc:
                return Plan(self.name, how, refused=str(exc))
            if current_bytes >= ceiling:
                return Plan(
                    self.name, how, refused=f"memory {current} is already at the cap {caps.max_memory}"
                )
            new = format_memory(min(math.ceil(current_bytes * caps.memory_step_factor / MIB) * MIB, ceiling))
            params.update(template=template, memory_limit=new)
            how += f" with memory limit {new} on template {template} (was {current}, cap {caps.max_memory})"
        return Plan(self.name, how, params)

    def apply(self, ctx: Context, plan: Plan) -> dict[str, Any]:
        """PUT the reset Workflow (retry) or POST a new one (resubmit); IntegrationError when refused."""
        p = plan.params
        ns, name = p["namespace"], p["workflow"]
        gateway = ctx.deps.kube
        workflow = copy.deepcopy(gateway.read_workflow(ns, name))
        _unchanged(workflow, p.get("version"))
        if p.get("memory_limit"):
            _raise_memory(workflow, p["template"], p["memory_limit"])
        if p["resubmit"]:
            body = _resubmission(workflow, ctx.incident_id)
            created = gateway.create_workflow(ns, body)
            new_name = str(created.get("metadata", {}).get("name"))
            call = f"POST /apis/{GROUP}/{VERSION}/namespaces/{ns}/workflows"
            return {"call": call, "response": {"name": new_name}, "facts": {"workflow_run": new_name}}
        deleted = _reset_for_retry(workflow)
        pods = [
            to_wire(pod)
            for pod in gateway.list_pods(ns, label_selector=f"{WORKFLOW_LABEL}={name}")
            if (pod.metadata.annotations or {}).get(NODE_ID) in deleted
        ]
        removed: list[str] = []
        call = f"PUT /apis/{GROUP}/{VERSION}/namespaces/{ns}/workflows/{name}"
        try:
            for pod in pods:  # as `argo retry`: the failed pods go first, or the controller keeps them
                gateway.delete_pod(ns, pod["metadata"]["name"])
                removed.append(pod["metadata"]["name"])
            gateway.replace_workflow(ns, name, workflow)
        except IntegrationError as exc:
            gone = f"; pods already deleted: {', '.join(removed)}" if removed else ""
            said = str(exc).removeprefix(f"{exc.system}: ")
            raise IntegrationError(exc.system, f"{said}{gone}", exc.status) from exc
        return {
            "call": call,
            "response": {"nodes_reset": sorted(deleted), "pods_deleted": removed},
            "facts": {"workflow_run": name},
        }

    def verify(self, ctx: Context, plan: Plan, applied: dict[str, Any], deadline: datetime) -> Verification:
        """Wait for the Workflow to finish; when it fails again, name the node and why."""
        ns, name = plan.params["namespace"], applied["facts"]["workflow_run"]
        while True:
            try:
                workflow = ctx.deps.kube.read_workflow(ns, name)
            except IntegrationError as exc:
                return Verification(False, f"could not read workflow {name}: {exc}")
            status = workflow.get("status") or {}
            phase = status.get("phase")
            facts: dict[str, Any] = {"workflow": name, "workflow_phase": phase}
            evidence = {"call": workflow_call(ns, name), "facts": facts}
            which = f"workflow {name}"
            if plan.params.get("resubmit"):
                which += f", a new run of {plan.params['workflow']} ({plan.params.get('why')}),"
            if phase == "Succeeded":
                limit = plan.params.get("memory_limit")
                extra = f" with memory limit {limit}" if limit else ""
                return Verification(True, f"{which} succeeded{extra}", evidence)
            if phase in FAILED:
                nodes = (status.get("nodes") or {}).values()
                failed: Wire = next(
                    (n for n in nodes if n.get("type") == "Pod" and n.get("phase") in FAILED), {}
                )
                why = failed.get("message") or status.get("message") or phase
                where = f" at node {failed.get('displayName')}" if failed else ""
                return Verification(False, redact(f"{which} {phase} again{where}: {why}"), evidence)
            remaining = (deadline - ctx.now()).total_seconds()
            if remaining <= 0:
                return Verification(False, f"{which} is still {phase or 'pending'}", evidence)
            ctx.sleep(min(ctx.verify_poll_seconds, remaining))


def _unchanged(workflow: Wire, version: str | None) -> None:
    """Refuse (IntegrationError) when the Workflow is no longer the failed one Level 1 read: someone
    retried, resubmitted or edited it meanwhile."""
    phase = (workflow.get("status") or {}).get("phase")
    now = workflow.get("metadata", {}).get("resourceVersion")
    if phase not in FAILED or (version and now != version):
        raise IntegrationError(
            "kubernetes",
            f"workflow {workflow.get('metadata', {}).get('name')} changed since Level 1 read it "
            f"(now {phase or 'pending'}, resourceVersion {now}, was {version}); it was left as it is",
            409,
        )


def _raise_memory(workflow: Wire, template_name: str, limit: str) -> None:
    for template in workflow.get("spec", {}).get("templates", []) or []:
        if template.get("name") == template_name:
            container = template.get("container") or template.get("script") or {}
            resources = container.setdefault("resources", {})
            resources.setdefault("limits", {})["memory"] = limit
            requests = resources.get("requests") or {}
            if "memory" in requests and parse_memory(str(requests["memory"])) > parse_memory(limit):
                requests["memory"] = limit


def _reset_for_retry(workflow: Wire) -> set[str]:
    """Drop the failed Pod nodes and what depends on them; reset the enclosing nodes; returns the dropped."""
    status = workflow.setdefault("status", {})
    nodes: dict[str, Wire] = status.get("nodes") or {}
    children = {i: list(n.get("children", []) or []) for i, n in nodes.items()}
    failed = [
        i for i, n in nodes.items() if n.get("type") in ("Pod", "Container") and n.get("phase") in FAILED
    ]
    dropped = set(failed) | set(reachable(children, *failed))
    for ancestor in reachable(parents_of(nodes), *dropped):  # one walk up from all of them
        node = nodes.get(ancestor)
        if node and ancestor not in dropped and node.get("type") not in ("Pod", "Container"):
            node["phase"] = "Running"
            node.pop("message", None)
            node.pop("finishedAt", None)
    for node_id in dropped:
        nodes.pop(node_id, None)
    for node in nodes.values():
        node["children"] = [c for c in node.get("children", []) or [] if c not in dropped]
    labels = workflow.setdefault("metadata", {}).setdefault("labels", {})
    labels.pop(COMPLETED, None)
    labels.pop(PHASE_LABEL, None)
    status["phase"] = ""
    status["message"] = ""
    status.pop("finishedAt", None)
    workflow.get("spec", {}).pop("shutdown", None)
    return dropped


def _resubmission(workflow: Wire, incident_id: int) -> Wire:
    meta = workflow.get("metadata", {})
    labels = {
        k: v for k, v in (meta.get("labels") or {}).items() if not k.startswith("workflows.argoproj.io/")
    }
    labels[RESUBMITTED] = str(meta.get("name"))
    labels[kc.INCIDENT_LABEL] = str(incident_id)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {
            "generateName": meta.get("generateName") or f"{meta.get('name')}-",
            "namespace": meta.get("namespace"),
            "labels": labels,
            "annotations": {
                k: v
                for k, v in (meta.get("annotations") or {}).items()
                if not k.startswith("workflows.argoproj.io/")
            },
        },
        "spec": copy.deepcopy(workflow.get("spec", {})),
    }
