"""A tiny Argo workflow controller: it runs the entrypoint DAG of a Workflow whose phase is empty (new,
or reset by `argo retry`) to its end, in one pass.

Only DAG entrypoints whose tasks name container or script templates of the Workflow's own spec are run
(no steps templates, nested DAGs, templateRefs, `when`, loops, retries, exit handlers or `continueOn`);
any other Workflow ends in phase Error with an `invalid spec:` message from the sandbox. Tasks run one at
a time in dependency order, as if each started when the one before it ended:

- a task whose node already ended (Succeeded, Failed, Error, Skipped or Omitted) is kept as it is;
- a task whose `depends`/`dependencies` are not met becomes an Omitted node (type Skipped);
- any other task runs from its template as the spec has it now (so a retry that raised a memory limit
  is seen by the rule). If its pod still exists (a retry that did not delete it), the node ends the way
  that pod ended, as Argo's controller adopts an existing pod of the same name; otherwise the rule
  decides, and a new pod (v2 name, the node's labels and annotations, terminated containers) and its
  `main` log are written.

The root DAG node and the Workflow then end Failed (a Pod node failed) or Succeeded, with `finishedAt`,
progress, conditions and the `phase` and `completed=true` labels. Like Argo's, a failed DAG leaves the
Workflow's `message` empty.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.kube import workflow_names as wn
from bot.sandbox.kube.depends import satisfied, upstream
from bot.sandbox.kube.job_rules import Outcome
from bot.sandbox.kube.workflow_pods import NodeRun, failure_message, main_ended, node_pod
from bot.sandbox.kube.workflow_rules import WorkflowRule, main_container

OMITTED = "omitted: depends condition not met"


@dataclass
class Settled:
    """What a controller pass leaves: the ended Workflow, the pods it created and their `main` logs, and
    how many reads of the Workflow see it still running first."""

    workflow: dict[str, Any]
    pods: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)  # pod name -> main log
    pending_reads: int = 0


def needs_run(workflow: dict[str, Any]) -> bool:
    """Whether the controller picks the Workflow up: phase empty and not labelled completed."""
    labels = workflow.get("metadata", {}).get("labels") or {}
    return not (workflow.get("status") or {}).get("phase") and labels.get(wn.COMPLETED_LABEL) != "true"


def run(
    workflow: dict[str, Any],
    pods: dict[str, dict[str, Any]],
    rule: WorkflowRule,
    now: str,
    next_version: Callable[[], str],
) -> Settled:
    """Run `workflow`'s DAG to its end; `pods` are the namespace's existing pods by name."""
    wf = copy.deepcopy(workflow)
    name = wf["metadata"]["name"]
    status = wf.setdefault("status", {})
    status.setdefault("startedAt", now)
    nodes: dict[str, dict[str, Any]] = status.get("nodes") or {}
    status["nodes"] = nodes
    settled = Settled(wf)
    try:
        dag, templates = _entrypoint(wf)
        tasks = _ordered(dag.get("tasks") or [])
    except ValueError as err:
        return _finish(settled, now, "Error", f"invalid spec: {err}")
    root = nodes.setdefault(name, _node(wf, name, str(wf["spec"]["entrypoint"]), "DAG", now))
    root["phase"] = "Running"
    version = (wf["metadata"].get("annotations") or {}).get(wn.POD_NAME_FORMAT, "v2")
    phases: dict[str, str] = {}
    for task in tasks:
        node_name = wn.task_node_name(name, task["name"])
        nid = wn.node_id(name, node_name)
        node = nodes.get(nid)
        if node is None or node.get("phase") not in wn.NODE_DONE:
            node = _node(wf, node_name, task.get("template", ""), "Pod", now, task["name"])
            if not satisfied(task, phases):
                node.update(type="Skipped", phase="Omitted", message=OMITTED, finishedAt=now)
            else:
                template = templates[task.get("template", "")]
                pod = wn.pod_name(name, node_name, template["name"], version)
                node_run = NodeRun(wf, nid, node_name, template, now, now)
                _run_pod(settled, node, node_run, pods.get(pod) or pod, rule, next_version)
            nodes[nid] = node
        phases[task["name"]] = str(node.get("phase"))
    _link(wf, tasks, nodes)
    failed = [n for n in nodes.values() if n["type"] == "Pod" and n["phase"] in ("Failed", "Error")]
    phase = "Error" if any(n["phase"] == "Error" for n in failed) else "Failed" if failed else "Succeeded"
    return _finish(settled, now, phase, "")


def _entrypoint(wf: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    spec = wf.get("spec") or {}
    templates = {t.get("name"): t for t in spec.get("templates") or []}
    entry = templates.get(spec.get("entrypoint"))
    if entry is None:
        raise ValueError(f"template name '{spec.get('entrypoint')}' undefined")
    if not isinstance(entry.get("dag"), dict):
        raise ValueError("the sandbox controller runs DAG entrypoints only")
    for task in entry["dag"].get("tasks") or []:
        used = templates.get(task.get("template"))
        if used is None or not main_container(used):
            raise ValueError(f"task {task.get('name')!r}: needs a container or script template of the spec")
    return entry["dag"], templates


def _ordered(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks in dependency order (declaration order among ready ones)."""
    by_name = {t.get("name"): t for t in tasks}
    needs = {name: upstream(task) for name, task in by_name.items()}
    for task in tasks:
        satisfied(task, {})  # reads the expression: a malformed one is an invalid spec
    for name, deps in needs.items():
        missing = [d for d in deps if d not in by_name]
        if missing:
            raise ValueError(f"task {name!r} depends on undefined task {missing[0]!r}")
    done: list[dict[str, Any]] = []
    while len(done) < len(tasks):
        ready = [t for t in tasks if t not in done and all(by_name[d] in done for d in needs[t["name"]])]
        if not ready:
            raise ValueError("the DAG has a dependency cycle")
        done.append(ready[0])
    return done


def _node(
    wf: dict[str, Any], node_name: str, template: str, kind: str, now: str, display: str | None = None
) -> dict[str, Any]:
    name = wf["metadata"]["name"]
    node = {
        "id": wn.node_id(name, node_name),
        "name": node_name,
        "displayName": display or node_name,
        "type": kind,
        "templateName": template,
        "templateScope": f"local/{name}",
        "phase": "Pending",
        "startedAt": now,
    }
    return node if display is None else {**node, "boundaryID": name}


def _run_pod(
    settled: Settled,
    node: dict[str, Any],
    node_run: NodeRun,
    pod: str | dict[str, Any],
    rule: WorkflowRule,
    next_version: Callable[[], str],
) -> None:
    """End `node` the way its pod ends: the existing `pod` (a dict), or a new one named `pod`."""
    if isinstance(pod, str):
        decided = rule(copy.deepcopy(settled.workflow), copy.deepcopy(node_run.template))
        outcome = decided if isinstance(decided, Outcome) else Outcome(decided)
        settled.pending_reads = max(settled.pending_reads, outcome.pending_reads)
        new, settled.logs[pod] = node_pod(node_run, pod, outcome, next_version())
        settled.pods.append(new)
        pod = new
    result, code = main_ended(pod)
    ok = result == "succeeded"
    node.update(
        phase="Succeeded" if ok else "Failed",
        finishedAt=node_run.finished,
        hostNodeName=pod["spec"].get("nodeName", ""),
        progress="1/1" if ok else "0/1",
        resourcesDuration={"cpu": 1, "memory": 1},
        outputs={"exitCode": str(code)},
    )
    if not ok:
        node["message"] = failure_message(pod)


def _link(wf: dict[str, Any], tasks: list[dict[str, Any]], nodes: dict[str, dict[str, Any]]) -> None:
    """Children: the root's are the tasks that wait for nothing; a task's are the tasks that wait for it."""
    name = wf["metadata"]["name"]

    def nid(task: str) -> str:
        return wn.node_id(name, wn.task_node_name(name, task))

    waits = {t["name"]: upstream(t) for t in tasks}
    for parent in [None, *waits]:
        children = [nid(t) for t, deps in waits.items() if (parent in deps if parent else not deps)]
        node = nodes[nid(parent) if parent else name]
        node["children"] = list(dict.fromkeys([*(node.get("children") or []), *children]))
    leaves = [nid(t) for t in waits if not any(t in deps for deps in waits.values())]
    nodes[name]["outboundNodes"] = leaves


def _finish(settled: Settled, now: str, phase: str, message: str) -> Settled:
    wf = settled.workflow
    status = wf["status"]
    nodes = status["nodes"]
    root = nodes.get(wf["metadata"]["name"])
    if root is not None:
        root.update(phase=phase, finishedAt=now)
        root.pop("message", None)
    pod_nodes = [n for n in nodes.values() if n.get("type") == "Pod"]
    status.update(
        phase=phase,
        finishedAt=now,
        progress=f"{sum(n['phase'] == 'Succeeded' for n in pod_nodes)}/{len(pod_nodes)}",
        conditions=[{"type": "PodRunning", "status": "False"}, {"type": "Completed", "status": "True"}],
        taskResultsCompletionStatus={n["id"]: True for n in pod_nodes},
    )
    status.pop("message", None)
    if message:
        status["message"] = message
    labels = wf["metadata"].setdefault("labels", {})
    labels.update({wn.PHASE_LABEL: phase, wn.COMPLETED_LABEL: "true"})
    return settled
