"""Argo Workflows (and the Kubeflow Pipelines runs built on them) as a Level 1 target.

A failed Workflow is read through the custom objects API: its failed Pod nodes, their pods (label
`workflows.argoproj.io/workflow`, annotation `workflows.argoproj.io/node-id`), the `main` container's
termination and log tail, the nodes upstream of the failure and the ones that never ran. `retry_workflow`
retries from the failed node the way `argo retry` does (failed nodes and what depends on them are dropped
from the status and their pods deleted; the enclosing DAG nodes go back to Running; the `completed` label
is removed; the whole Workflow is PUT with its resourceVersion), raising the failed template's memory
after an OOM kill within the caps. When a retry cannot work (the Workflow ran out of its own deadline,
or its node status is offloaded or compressed) it submits a new run from the same spec instead, and says
so in the plan.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from bot.core.errors import IntegrationError
from bot.core.models import CheckResult, CheckStatus
from bot.core.redact import redact, redact_obj
from bot.core.triage import DEADLINE_MESSAGE
from bot.diagnostics import kube_common as kc
from bot.diagnostics.base import Check, Context
from bot.integrations.kubernetes import to_wire

GROUP, VERSION = "argoproj.io", "v1alpha1"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
NODE_ID = "workflows.argoproj.io/node-id"
COMPLETED = "workflows.argoproj.io/completed"
PHASE_LABEL = "workflows.argoproj.io/phase"
RESUBMITTED = "workflows.argoproj.io/resubmitted-from-workflow"
KFP_RUN_NAME = "pipelines.kubeflow.org/run_name"
FAILED = ("Failed", "Error")
FINAL = ("Succeeded", "Failed", "Error")
TAIL_LINES = 50
MAX_UNPACKED = 16 * 2**20  # compressed node status unpacked: at most this much (a Workflow is ≤ 1 MiB)
OOM_EXIT_CODE = 137

Wire = dict[str, Any]


def workflow_call(ns: str, name: str | None = None) -> str:
    path = f"GET /apis/{GROUP}/{VERSION}/namespaces/{ns}/workflows"
    return f"{path}/{name}" if name else path


def workflow_pods_call(ns: str, workflow: str) -> str:
    return f"GET /api/v1/namespaces/{ns}/pods?labelSelector={WORKFLOW_LABEL}={workflow}"


def unread_result(check: Check, ns: str, name: str, exc: IntegrationError) -> CheckResult:
    """An ERROR result for a Workflow that could not be read, saying plainly when it is not there (Argo
    deletes finished Workflows after their TTL); its facts say why, for the classification's reason."""
    if exc.status == 404:
        why = "not found"
        summary = (
            f"Argo Workflow {ns}/{name} was not found (deleted, or removed by Argo after its TTL), so its "
            "nodes, pods and logs could not be read"
        )
    else:  # said without names, so the incidents of one outage share one reason
        why = f"the API answered {exc.status}" if exc.status else "the API could not be reached"
        summary = f"Argo Workflow {ns}/{name} could not be read: {exc}"
    evidence = {"call": workflow_call(ns, name), "error": str(exc), "status": exc.status}
    facts = {"unread": redact(f"the Workflow could not be read ({why})")}
    return check.result(CheckStatus.ERROR, redact(summary), redact_obj(evidence), facts)


@dataclass(frozen=True)
class Failure:
    """The failed part of a Workflow as read: its first failed Pod node, its pod, and the DAG around it."""

    workflow: Wire
    node: Wire | None
    pod: Wire | None
    upstream: list[Wire]  # nodes the failed one depends on
    not_run: list[Wire]  # downstream nodes that were skipped or omitted
    messages: list[str]

    @property
    def name(self) -> str:
        return str(self.workflow.get("metadata", {}).get("name", "?"))

    @property
    def template(self) -> Wire | None:
        """The failed node's template in the Workflow's own spec (None when it comes from elsewhere)."""
        if self.node is None:
            return None
        name = self.node.get("templateName")
        for template in self.workflow.get("spec", {}).get("templates", []) or []:
            if template.get("name") == name:
                return dict(template)
        return None

    @property
    def pipeline(self) -> str:
        meta = self.workflow.get("metadata", {})
        run_name = (meta.get("annotations") or {}).get(KFP_RUN_NAME)
        generated = str(meta.get("generateName") or "").rstrip("-")
        return str(run_name or generated or self.name)


def read_failure(gateway: Any, ns: str, name: str) -> tuple[Failure, list[str]]:
    """Read Workflow `ns`/`name` and its pods; raises IntegrationError when the Workflow cannot be read."""
    calls = [workflow_call(ns, name)]
    workflow = gateway.read_workflow(ns, name)
    nodes = nodes_of(workflow)
    failed = sorted(
        (n for n in nodes.values() if n.get("type") in ("Pod", "Container") and n.get("phase") in FAILED),
        key=lambda n: str(n.get("finishedAt") or ""),
    )
    node = failed[0] if failed else None
    pod = None
    calls.append(workflow_pods_call(ns, name))
    try:
        pods = [to_wire(p) for p in gateway.list_pods(ns, label_selector=f"{WORKFLOW_LABEL}={name}")]
    except IntegrationError:
        pods = []
    if node is not None:
        pod = next(
            (
                p
                for p in pods
                if (p.get("metadata", {}).get("annotations") or {}).get(NODE_ID) == node.get("id")
            ),
            None,
        )
    parents = parents_of(nodes)
    upstream = [nodes[i] for i in reachable(parents, node.get("id")) if i in nodes] if node else []
    upstream = [n for n in upstream if n.get("type") in ("Pod", "Container")]
    not_run = [n for n in nodes.values() if n.get("phase") in ("Omitted", "Skipped")]
    messages = [str(n.get("message")) for n in failed if n.get("message")]
    status_message = (workflow.get("status") or {}).get("message")
    if status_message:
        messages.append(str(status_message))
    return Failure(workflow, node, pod, upstream, not_run, messages), calls


def nodes_of(workflow: Wire) -> dict[str, Wire]:
    """The Workflow's nodes by ID: `status.nodes`, or `status.compressedNodes` unpacked (base64 of gzipped
    JSON, which Argo writes when the object nears 1 MiB); empty when they are offloaded to Argo's
    database, which only Argo Server reads."""
    status = workflow.get("status") or {}
    if status.get("nodes"):
        return dict(status["nodes"])
    packed = status.get("compressedNodes")
    if not packed:
        return {}
    try:
        raw = gzip.GzipFile(fileobj=io.BytesIO(base64.b64decode(str(packed)))).read(MAX_UNPACKED + 1)
        if len(raw) > MAX_UNPACKED:
            return {}
        unpacked = json.loads(raw)
    except (ValueError, OSError, EOFError, RecursionError):
        return {}
    return unpacked if isinstance(unpacked, dict) else {}


def offloaded(workflow: Wire) -> bool:
    """Whether the node status is kept outside the object (offloaded) and cannot be retried in place."""
    status = workflow.get("status") or {}
    return bool(status.get("offloadNodeStatusVersion")) or (
        bool(status.get("compressedNodes")) and not status.get("nodes")
    )


def parents_of(nodes: dict[str, Wire]) -> dict[str, list[str]]:
    parents: dict[str, list[str]] = {}
    for node_id, node in nodes.items():
        for child in node.get("children", []) or []:
            parents.setdefault(child, []).append(node_id)
    return parents


def reachable(edges: dict[str, list[str]], *starts: str | None) -> list[str]:
    """Every node reachable from `starts` along `edges` (not the starts themselves), nearest first."""
    seen: dict[str, None] = {}
    todo = deque(child for start in starts for child in edges.get(start or "", []))
    while todo:
        here = todo.popleft()
        if here not in seen:
            seen[here] = None
            todo.extend(edges.get(here, []))
    return [n for n in seen if n not in starts]


def node_brief(node: Wire) -> dict[str, Any]:
    return {k: node.get(k) for k in ("displayName", "templateName", "phase", "message") if node.get(k)}


def main_termination(pod: Wire | None) -> Wire:
    """The `main` container's terminated state (user code runs in `main`), else any non-zero one."""
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    ended = [(s.get("name"), (s.get("state") or {}).get("terminated") or {}) for s in statuses]
    return next((t for n, t in ended if n == "main" and t), None) or next(
        (t for _, t in ended if t.get("exitCode")), {}
    )


class WorkflowCheck(Check):
    """Which node of the Argo Workflow failed, how its pod ended, and what ran before and after it?"""

    name = "workflow_nodes"
    needs = ("kube",)
    timeout_s = 20.0

    def run(self, ctx: Context) -> CheckResult:
        ns, name = ctx.target.namespace, ctx.target.workflow
        if not name:
            return self.result(CheckStatus.SKIPPED, "the alert names no Argo Workflow")
        refusal = kc.namespace_refusal(ctx)
        if refusal:
            return self.result(CheckStatus.SKIPPED, refusal)
        try:
            found, calls = read_failure(ctx.deps.kube, str(ns), name)
        except IntegrationError as exc:
            return unread_result(self, str(ns), name, exc)
        status = found.workflow.get("status") or {}
        phase = str(status.get("phase") or "Pending")
        facts: dict[str, Any] = {
            "workflow": name,
            "workflow_phase": phase,
            "pipeline": found.pipeline,
            "workflow_version": found.workflow.get("metadata", {}).get("resourceVersion"),
            "offloaded": offloaded(found.workflow),
            "deadline_exceeded": any(DEADLINE_MESSAGE.search(m) for m in found.messages),
            "workflow_deadline_s": found.workflow.get("spec", {}).get("activeDeadlineSeconds"),
        }
        response: dict[str, Any] = {"phase": phase, "message": status.get("message")}
        if found.node is None:
            summary = f"workflow {name} is {phase}" + ("" if phase in FAILED else "; no node failed")
            if facts["offloaded"]:
                summary += "; its node status is offloaded to Argo's database, so its nodes cannot be read"
            return self.result(
                CheckStatus.FAIL if phase in FAILED else CheckStatus.OK,
                redact(summary),
                kc.evidence(calls[0], response, calls),
                facts,
            )
        node, ended = found.node, main_termination(found.pod)
        template = found.template or {}
        limit = (
            ((template.get("container") or template.get("script") or {}).get("resources") or {})
            .get("limits", {})
            .get("memory")
        )
        # a bare SIGKILL (137) is also how a step past its deadline ends: only then is it not memory
        killed = ended.get("exitCode") == OOM_EXIT_CODE and not facts["deadline_exceeded"]
        oom = ended.get("reason") == "OOMKilled" or killed
        facts.update(
            failed_node=node.get("displayName") or node.get("name"),
            failed_node_id=node.get("id"),
            template=node.get("templateName"),
            pod=(found.pod or {}).get("metadata", {}).get("name"),
            oom_killed=oom,
            memory_limit=limit,
            template_inline=bool(found.template),
            upstream=[f"{n.get('displayName')} ({n.get('phase')})" for n in found.upstream],
            not_run=[str(n.get("displayName")) for n in found.not_run],
        )
        response.update(
            failed=node_brief(node),
            termination={k: ended.get(k) for k in ("reason", "exitCode") if k in ended},
            upstream=[node_brief(n) for n in found.upstream],
            not_run=[node_brief(n) for n in found.not_run],
        )
        log = _log_tail(ctx, str(ns), facts["pod"], calls)
        if log:
            response["log_tail"] = log
            line = kc.last_error_line(log)
            if line:
                facts["error_line"] = line
        how = f"{ended.get('reason') or 'failed'} (exit code {ended.get('exitCode')})" if ended else "failed"
        summary = f"workflow {name} {phase}: node {facts['failed_node']} (template {facts['template']}) {how}"
        if node.get("message"):
            summary += f": {node['message']}"
        if found.upstream:
            summary += "; upstream " + ", ".join(facts["upstream"])
        if found.not_run:
            summary += f"; {len(found.not_run)} node(s) never ran: " + ", ".join(facts["not_run"])
        return self.result(CheckStatus.FAIL, redact(summary), kc.evidence(calls[0], response, calls), facts)


def _log_tail(ctx: Context, ns: str, pod: str | None, calls: list[str]) -> str | None:
    if not pod:
        return None
    calls.append(kc.log_call(ns, pod, "main", TAIL_LINES, False))
    try:
        return redact(ctx.deps.kube.read_pod_log(ns, pod, "main", TAIL_LINES, False))
    except IntegrationError:
        return None


def annotations_of(obj: Wire) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def own_keys(meta: dict[str, str] | None) -> dict[str, str]:
    """Labels or annotations without Argo's own (`workflows.argoproj.io/…`), which the controller sets."""
    return {k: v for k, v in (meta or {}).items() if not k.startswith("workflows.argoproj.io/")}
