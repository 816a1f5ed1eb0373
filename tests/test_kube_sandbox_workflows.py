"""Argo Workflows in the sandbox Kubernetes API, driven through KubeGateway and the real `kubernetes` client:
the recorded Workflows (checked against the CRD's schema and Argo's naming), reads, conflicts, and the
sandbox controller re-running what an `argo retry` reset or a resubmit posted."""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client

from bot.core.errors import IntegrationError, RetryableError
from bot.integrations.kubernetes import KubeGateway
from bot.sandbox.kube.workflow_names import fnv1a_32, node_id, pod_name
from bot.sandbox.kube_api import (
    FIXTURES,
    Outcome,
    OutcomeKind,
    SandboxKubeAPI,
    WorkflowRule,
    workflow_always,
    workflow_succeeds_if_memory_at_least,
)
from tests.kube_fixtures import NS, RECORDED_AT, running_sandbox

OOM, UPSTREAM, DEADLINE = "churn-training-pipeline-x8k2q", "feature-pipeline-m4z7t", "nightly-retrain-q9w3e"
FIXTURE_WORKFLOWS = {"workflow_oom": OOM, "workflow_upstream": UPSTREAM, "workflow_deadline": DEADLINE}
NOW = "2026-11-26T05:00:00Z"  # RECORDED_AT, as the sandbox controller stamps what it runs
WF_LABEL = "workflows.argoproj.io/workflow"
COMPLETED, PHASE = "workflows.argoproj.io/completed", "workflows.argoproj.io/phase"
SCHEMA = json.loads((FIXTURES / "workflow_crd_schema.json").read_text())["openAPIV3Schema"]
NODE_PHASES = {"Pending", "Running", "Succeeded", "Skipped", "Failed", "Error", "Omitted"}
NODE_TYPES = {"Pod", "Container", "Steps", "StepGroup", "DAG", "TaskGroup", "Retry", "Skipped", "Suspend"}
RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
TIMESTAMP_KEYS = {"creationTimestamp", "startedAt", "finishedAt", "startTime", "lastTransitionTime"}


@contextmanager
def argo_sandbox(
    *fixtures: str, rule: WorkflowRule | None = None
) -> Iterator[tuple[SandboxKubeAPI, KubeGateway]]:
    """A started sandbox at the recorded instant, loaded with `fixtures`, and a gateway to it."""
    with running_sandbox(*fixtures, workflow_rule=rule, clock=lambda: RECORDED_AT) as found:
        yield found


def recording(rule: WorkflowRule, seen: list[tuple[str, str | None]]) -> WorkflowRule:
    """`rule`, noting each node it is asked about: (template, main's memory limit)."""

    def noted(workflow: dict[str, Any], template: dict[str, Any]) -> Outcome | OutcomeKind:
        limits = template.get("container", {}).get("resources", {}).get("limits", {})
        seen.append((template["name"], limits.get("memory")))
        return rule(workflow, template)

    return noted


def schema_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Where `value` breaks the structural schema: types, formats, patterns, required and unknown fields."""
    where = path or "."
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, int | str):
            return [f"{where}: {value!r} is neither an integer nor a string"]
    elif "type" in schema and not _is(value, schema["type"]):
        return [f"{where}: {type(value).__name__} is not {schema['type']}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if schema.get("format") == "date-time" and not RFC3339_Z.fullmatch(value):
            errors.append(f"{where}: {value!r} is not an RFC 3339 UTC timestamp")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        errors += [f"{path}.{key}: required" for key in schema.get("required", []) if key not in value]
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        for key, item in value.items():
            if props is not None and key in props:
                errors += schema_errors(item, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, f"{path}.{key}")
            elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f"{path}.{key}: unknown field (the API server would prune it)")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{i}]")
    return errors


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "number": int | float}
    return isinstance(value, types[kind])


def timestamps(obj: Any) -> Iterator[str]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in TIMESTAMP_KEYS and isinstance(value, str):
                yield value
            yield from timestamps(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from timestamps(item)


def fixture(name: str) -> list[dict[str, Any]]:
    return list(json.loads((FIXTURES / f"{name}.json").read_text()))


def descendants(nodes: dict[str, Any], start: str) -> set[str]:
    found: set[str] = set()
    stack = list(nodes[start].get("children", []))
    while stack:
        node = stack.pop()
        if node in nodes and node not in found:
            found.add(node)
            stack.extend(nodes[node].get("children", []))
    return found


def argo_retry(workflow: dict[str, Any]) -> set[str]:
    """Reset `workflow` the way `argo retry` does; the IDs of the nodes it dropped."""
    nodes: dict[str, Any] = workflow["status"]["nodes"]
    failed = {
        i
        for i, n in nodes.items()
        if n["type"] in ("Pod", "Container")
        and n["phase"] in ("Failed", "Error")
        and not any(nodes[d]["phase"] == "Succeeded" for d in descendants(nodes, i))
    }
    dropped = failed.union(*(descendants(nodes, i) for i in failed))
    for i, node in nodes.items():
        if node["type"] not in ("Pod", "Container") and descendants(nodes, i) & failed:
            node["phase"] = "Running"
            node.pop("message", None)
            node.pop("finishedAt", None)
    for i in dropped:
        del nodes[i]
    for node in nodes.values():
        node["children"] = [c for c in node.get("children", []) if c not in dropped]
    workflow["metadata"]["labels"].pop(COMPLETED)
    workflow["status"].update(phase="", message="", finishedAt=None)
    return dropped


def set_memory(workflow: dict[str, Any], template: str, limit: str) -> None:
    for tmpl in workflow["spec"]["templates"]:
        if tmpl["name"] == template:
            tmpl["container"]["resources"]["limits"]["memory"] = limit


def retry(gateway: KubeGateway, name: str, memory: str | None = None, delete_pods: bool = True) -> set[str]:
    """What the bot does for `argo retry`: reset the Workflow, delete the dropped nodes' pods, PUT it."""
    workflow = gateway.read_workflow(NS, name)
    if memory:
        set_memory(workflow, "train-model", memory)
    dropped = argo_retry(workflow)
    for pod in gateway.list_pods(NS, label_selector=f"{WF_LABEL}={name}"):
        if delete_pods and pod.metadata.annotations["workflows.argoproj.io/node-id"] in dropped:
            gateway.delete_pod(NS, pod.metadata.name)
    gateway.replace_workflow(NS, name, workflow)
    return dropped


def by_task(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["displayName"]: n for n in workflow["status"]["nodes"].values()}


def main_ended(pod: client.V1Pod) -> client.V1ContainerStateTerminated:
    return next(s for s in pod.status.container_statuses if s.name == "main").state.terminated


# -- the recorded Workflows --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FIXTURE_WORKFLOWS))
def test_recorded_workflows_fit_the_crd_schema_and_argos_naming(name: str) -> None:
    objects = fixture(name)
    workflow = next(o for o in objects if o["kind"] == "Workflow")
    pods = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Pod"}
    wf = workflow["metadata"]["name"]
    nodes = workflow["status"]["nodes"]

    assert schema_errors(workflow, SCHEMA) == []
    assert wf == FIXTURE_WORKFLOWS[name] and workflow["metadata"]["namespace"] == NS
    assert workflow["metadata"]["annotations"]["workflows.argoproj.io/pod-name-format"] == "v2"
    assert workflow["metadata"]["labels"][PHASE] == workflow["status"]["phase"] == "Failed"
    for key, node in nodes.items():
        assert key == node["id"] == (wf if node["name"] == wf else f"{wf}-{fnv1a_32(node['name'])}")
        assert node["phase"] in NODE_PHASES and node["type"] in NODE_TYPES
        assert set(node.get("children", [])) <= set(nodes)
        if node["type"] == "Pod":
            pod = pods[f"{wf}-{node['templateName']}-{fnv1a_32(node['name'])}"]
            assert pod["metadata"]["annotations"]["workflows.argoproj.io/node-id"] == node["id"]
            assert pod["metadata"]["labels"][WF_LABEL] == wf
    assert len(pods) == sum(n["type"] == "Pod" for n in nodes.values())
    assert all(RFC3339_Z.fullmatch(stamp) for stamp in timestamps(objects))
    logs = [o for o in objects if o["kind"] == "PodLog"]
    assert {(log["pod"], log["container"]) for log in logs} == {(pod, "main") for pod in pods}


def test_the_schema_check_finds_what_the_api_server_would_refuse_or_prune() -> None:
    workflow = fixture("workflow_oom")[0]
    node = workflow["status"]["nodes"][OOM]
    node["finishedAt"] = "2026-11-26 03:31:51"
    node["exitCode"] = 137
    workflow["spec"]["templates"][2]["container"]["resources"]["limits"]["memory"] = "2 gigs"
    del workflow["spec"]["templates"][0]["dag"]["tasks"][0]["name"]
    workflow["status"]["progress"] = 1

    errors = schema_errors(workflow, SCHEMA)

    assert len(errors) == 5
    assert any("finishedAt" in e and "RFC 3339" in e for e in errors)
    assert any(e.endswith(".exitCode: unknown field (the API server would prune it)") for e in errors)
    assert any(".limits.memory" in e and "does not match" in e for e in errors)
    assert any(e.endswith(".tasks[0].name: required") for e in errors)
    assert ".status.progress: int is not string" in errors


def test_naming_matches_argos_own_test_data() -> None:
    # IDs as recorded in argo-workflows' workflow/controller/testdata/dag_xfail.yaml
    assert node_id("dag-fail-r4gvc", "dag-fail-r4gvc.A") == "dag-fail-r4gvc-848175806"
    assert node_id("dag-fail-r4gvc", "dag-fail-r4gvc") == "dag-fail-r4gvc"
    assert pod_name("dag-fail-r4gvc", "dag-fail-r4gvc.A", "echo") == "dag-fail-r4gvc-echo-848175806"
    assert pod_name("dag-fail-r4gvc", "dag-fail-r4gvc.A", "echo", "v1") == "dag-fail-r4gvc-848175806"
    # The prefix is cut to 242 characters, leaving room for "-" and a 10-digit hash within 253.
    assert pod_name("w" * 300, "w.a", "t") == "w" * 242 + f"-{fnv1a_32('w.a')}"


# -- reads ---------------------------------------------------------------------------------------------


def test_gateway_reads_a_failed_workflow_its_pod_and_its_main_log() -> None:
    with argo_sandbox("workflow_oom") as (sandbox, gateway):
        workflow = gateway.read_workflow(NS, OOM)
        pods = gateway.list_pods(NS, label_selector=f"{WF_LABEL}={OOM}")
        train = by_task(workflow)["train-model"]
        pod = next(p for p in pods if p.metadata.annotations["workflows.argoproj.io/node-id"] == train["id"])
        log = gateway.read_pod_log(NS, pod.metadata.name, "main", tail_lines=1)
        with pytest.raises(IntegrationError) as no_container:
            gateway.read_pod_log(NS, pod.metadata.name)

    assert (train["phase"], train["message"]) == ("Failed", "main: OOMKilled (exit code 137)")
    assert by_task(workflow)["register-model"]["phase"] == "Omitted"
    assert pod.metadata.name == f"{OOM}-train-model-{fnv1a_32(train['name'])}"
    assert (main_ended(pod).reason, main_ended(pod).exit_code) == ("OOMKilled", 137)
    main = next(c for c in pod.spec.containers if c.name == "main")
    assert main.resources.limits["memory"] == "2Gi"
    assert [c.name for c in pod.spec.containers] == ["wait", "main"]
    assert log == "2026-11-26 03:29:47,230 INFO churn.train: building training matrix\n"
    assert no_container.value.status == 400
    assert "choose one of: [wait main] or one of the init containers: [init]" in str(no_container.value)
    assert sandbox.requests[0].path == f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows/{OOM}"


def test_an_upstream_failure_reaches_every_omitted_node_through_children() -> None:
    with argo_sandbox("workflow_upstream") as (_, gateway):
        workflow = gateway.read_workflow(NS, UPSTREAM)
        pod_name_ = pod_name(UPSTREAM, f"{UPSTREAM}.extract", "extract")
        log = gateway.read_pod_log(NS, pod_name_, "main")

    tasks = by_task(workflow)
    nodes = workflow["status"]["nodes"]
    assert (tasks["extract"]["phase"], tasks["extract"]["message"]) == ("Failed", "main: Error (exit code 1)")
    assert descendants(nodes, tasks["extract"]["id"]) == {tasks["transform"]["id"], tasks["train"]["id"]}
    assert {tasks[t]["message"] for t in ("transform", "train")} == {"omitted: depends condition not met"}
    assert log.rstrip().endswith(
        "FileNotFoundError: [Errno 2] No such file or directory: '/data/raw/2026-11-26/events.parquet'"
    )


def test_a_workflow_past_its_deadline_says_so() -> None:
    with argo_sandbox("workflow_deadline") as (_, gateway):
        workflow = gateway.read_workflow(NS, DEADLINE)
        pods = gateway.list_pods(NS, label_selector=f"{WF_LABEL}={DEADLINE}")

    train = by_task(workflow)["train"]
    assert workflow["spec"]["activeDeadlineSeconds"] == 3600
    assert workflow["status"]["message"] == train["message"] == "Step exceeded its deadline"
    assert by_task(workflow)["evaluate"]["phase"] == "Omitted"
    train_pod = next(p for p in pods if p.metadata.name == f"{DEADLINE}-train-{fnv1a_32(train['name'])}")
    assert train_pod.status.phase == "Failed" and main_ended(train_pod).exit_code == 143


def test_list_filters_workflows_by_label_selector() -> None:
    with argo_sandbox(*FIXTURE_WORKFLOWS) as (sandbox, gateway):
        failed = gateway.list_workflows(NS, label_selector=f"{PHASE}=Failed")
        run = gateway.list_workflows(NS, label_selector="pipeline/runid=3f6c2b1e-8d4a-4f7e-9b21-6a5d0c9e7f13")
        running = gateway.list_workflows(NS, label_selector=f"{PHASE}=Running")
        elsewhere = gateway.list_workflows("default")

    assert sorted(w["metadata"]["name"] for w in failed) == sorted(FIXTURE_WORKFLOWS.values())
    assert [w["metadata"]["name"] for w in run] == [OOM]
    assert running == [] and elsewhere == []
    assert sandbox.requests[0].query == {"labelSelector": f"{PHASE}=Failed"}


# -- writes --------------------------------------------------------------------------------------------


def test_replace_needs_the_current_resource_version() -> None:
    with argo_sandbox("workflow_oom") as (_, gateway):
        read = gateway.read_workflow(NS, OOM)
        edited = copy.deepcopy(read)
        edited["metadata"]["labels"]["escalation-bot/incident"] = "42"
        written = gateway.replace_workflow(NS, OOM, edited)
        with pytest.raises(IntegrationError) as stale:
            gateway.replace_workflow(NS, OOM, read)
        unversioned = copy.deepcopy(written)
        del unversioned["metadata"]["resourceVersion"]
        with pytest.raises(IntegrationError) as missing:
            gateway.replace_workflow(NS, OOM, unversioned)
        with pytest.raises(IntegrationError) as renamed:
            gateway.replace_workflow(NS, OOM, {**written, "metadata": {**written["metadata"], "name": "x"}})
        stored = gateway.read_workflow(NS, OOM)

    assert int(written["metadata"]["resourceVersion"]) > int(read["metadata"]["resourceVersion"])
    assert written["metadata"]["generation"] == read["metadata"]["generation"] + 1
    assert written["metadata"]["uid"] == read["metadata"]["uid"]
    assert stale.value.status == 409 and not isinstance(stale.value, RetryableError)
    assert (
        f'409 Conflict (Operation cannot be fulfilled on workflows.argoproj.io "{OOM}": the object has been '
        "modified; please apply your changes to the latest version and try again)"
    ) in str(stale.value)
    assert missing.value.status == 422 and "must be specified for an update" in str(missing.value)
    assert renamed.value.status == 400
    assert f"the name of the object (x) does not match the name on the URL ({OOM})" in str(renamed.value)
    # Only the accepted write changed anything, and a label edit of a completed Workflow runs nothing.
    assert stored["metadata"]["labels"]["escalation-bot/incident"] == "42"
    assert stored["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
    assert stored["status"] == read["status"]


def test_an_argo_retry_with_more_memory_reruns_the_failed_branch_and_succeeds() -> None:
    seen: list[tuple[str, str | None]] = []
    rule = recording(workflow_succeeds_if_memory_at_least("4Gi"), seen)
    with argo_sandbox("workflow_oom", rule=rule) as (sandbox, gateway):
        before = gateway.read_workflow(NS, OOM)
        dropped = retry(gateway, OOM, memory="4Gi")
        after = gateway.read_workflow(NS, OOM)
        pods = {p.metadata.name: p for p in gateway.list_pods(NS, label_selector=f"{WF_LABEL}={OOM}")}
        writes = [(w.method, w.path.rsplit("/", 2)[-2]) for w in sandbox.writes()]

    tasks, old = by_task(after), by_task(before)
    assert dropped == {old["train-model"]["id"], old["register-model"]["id"]}
    assert writes == [("DELETE", "pods"), ("PUT", "workflows")]
    assert seen == [("train-model", "4Gi"), ("register-model", None)]
    assert after["status"]["phase"] == "Succeeded" and after["status"]["progress"] == "3/3"
    assert (
        after["metadata"]["labels"][PHASE] == "Succeeded" and after["metadata"]["labels"][COMPLETED] == "true"
    )
    assert tasks["prepare-data"] == old["prepare-data"]
    assert tasks["train-model"]["id"] == old["train-model"]["id"]
    assert {t: tasks[t]["phase"] for t in tasks} == dict.fromkeys(tasks, "Succeeded")
    assert (tasks["register-model"]["type"], tasks["register-model"]["finishedAt"]) == ("Pod", NOW)
    assert tasks["train-model"]["children"] == [tasks["register-model"]["id"]]
    assert tasks[OOM]["outboundNodes"] == [tasks["register-model"]["id"]] and "message" not in after["status"]
    train_pod = pods[pod_name(OOM, tasks["train-model"]["name"], "train-model")]
    assert main_ended(train_pod).reason == "Completed"
    assert next(c for c in train_pod.spec.containers if c.name == "main").resources.limits["memory"] == "4Gi"
    assert len(pods) == 3 and all(p.metadata.labels[COMPLETED] == "true" for p in pods.values())
    assert schema_errors(after, SCHEMA) == []


def test_an_argo_retry_without_more_memory_is_oom_killed_again() -> None:
    with argo_sandbox("workflow_oom", rule=workflow_succeeds_if_memory_at_least("4Gi")) as (_, gateway):
        retry(gateway, OOM)
        after = gateway.read_workflow(NS, OOM)
        train = by_task(after)["train-model"]
        pod = gateway.read_pod(NS, pod_name(OOM, train["name"], "train-model"))
        log = gateway.read_pod_log(NS, pod.metadata.name, "main")

    assert after["status"]["phase"] == "Failed" and after["metadata"]["labels"][PHASE] == "Failed"
    assert (train["phase"], train["message"], train["startedAt"]) == (
        "Failed",
        "main: OOMKilled (exit code 137)",
        NOW,
    )
    register = by_task(after)["register-model"]
    assert (register["type"], register["phase"], register["message"]) == (
        "Skipped",
        "Omitted",
        "omitted: depends condition not met",
    )
    assert (main_ended(pod).reason, main_ended(pod).exit_code) == ("OOMKilled", 137)
    assert log == "train-model: starting\ntrain-model: loading data into memory\n"
    assert after["status"]["progress"] == "1/2"


def test_a_retry_that_leaves_the_failed_pod_in_place_fails_again_without_running() -> None:
    seen: list[tuple[str, str | None]] = []
    rule = recording(workflow_succeeds_if_memory_at_least("4Gi"), seen)
    with argo_sandbox("workflow_oom", rule=rule) as (_, gateway):
        retry(gateway, OOM, memory="8Gi", delete_pods=False)
        after = gateway.read_workflow(NS, OOM)

    # The controller adopts the existing pod of the node's name, which has already ended OOM-killed.
    assert seen == []
    assert after["status"]["phase"] == "Failed"
    assert by_task(after)["train-model"]["message"] == "main: OOMKilled (exit code 137)"


def test_a_reset_that_keeps_the_completed_label_is_ignored_by_the_controller() -> None:
    with argo_sandbox("workflow_oom", rule=workflow_always("succeeded")) as (_, gateway):
        workflow = gateway.read_workflow(NS, OOM)
        argo_retry(workflow)
        workflow["metadata"]["labels"][COMPLETED] = "true"
        gateway.replace_workflow(NS, OOM, workflow)
        after = gateway.read_workflow(NS, OOM)

    assert after["status"]["phase"] == "" and "finishedAt" not in after["status"]
    assert "train-model" not in by_task(after)


def test_a_workflow_stays_running_for_its_pending_reads() -> None:
    rule: WorkflowRule = lambda workflow, template: Outcome("succeeded", pending_reads=2)  # noqa: E731
    with argo_sandbox("workflow_oom", rule=rule) as (_, gateway):
        retry(gateway, OOM, memory="4Gi")
        reads = [gateway.read_workflow(NS, OOM) for _ in range(3)]

    assert [r["status"]["phase"] for r in reads] == ["Running", "Running", "Succeeded"]
    assert [r["metadata"]["labels"][PHASE] for r in reads] == ["Running", "Running", "Succeeded"]
    assert COMPLETED not in reads[0]["metadata"]["labels"]


def test_a_resubmit_posts_a_new_workflow_that_runs_the_whole_dag() -> None:
    seen: list[tuple[str, str | None]] = []
    rule = recording(workflow_succeeds_if_memory_at_least("4Gi", "train-model"), seen)
    with argo_sandbox("workflow_oom", rule=rule) as (sandbox, gateway):
        source = gateway.read_workflow(NS, OOM)
        set_memory(source, "train-model", "4Gi")
        body = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {
                "generateName": source["metadata"]["generateName"],
                "labels": {"workflows.argoproj.io/resubmitted-from-workflow": OOM},
            },
            "spec": source["spec"],
        }
        created = gateway.create_workflow(NS, body)
        name = created["metadata"]["name"]
        ran = gateway.read_workflow(NS, name)
        pods = gateway.list_pods(NS, label_selector=f"{WF_LABEL}={name}")
        original = gateway.read_workflow(NS, OOM)

    assert re.fullmatch(r"churn-training-pipeline-[a-z]{5}", name)
    assert created["metadata"]["uid"] != source["metadata"]["uid"] and "status" not in created
    assert seen == [("prepare-data", None), ("train-model", "4Gi"), ("register-model", None)]
    assert ran["status"]["phase"] == "Succeeded" and len(ran["status"]["nodes"]) == 4
    assert ran["metadata"]["labels"]["workflows.argoproj.io/resubmitted-from-workflow"] == OOM
    assert sorted(p.metadata.name for p in pods) == sorted(
        pod_name(name, f"{name}.{task}", task) for task in ("prepare-data", "train-model", "register-model")
    )
    assert all(
        p.metadata.labels["pipeline/runid"] == source["metadata"]["labels"]["pipeline/runid"] for p in pods
    )
    assert original["status"]["phase"] == "Failed"
    post = sandbox.writes()[0]
    assert (post.method, post.body["metadata"]["generateName"]) == ("POST", "churn-training-pipeline-")


def test_depends_expressions_decide_what_runs_after_a_failure() -> None:
    def task(name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "template": name, **extra}

    templates = [
        {"name": n, "container": {"image": "busybox:1.36", "command": ["sh", "-c", "true"]}}
        for n in ("load", "train", "cleanup", "publish", "report")
    ]
    spec = {
        "entrypoint": "main",
        "templates": [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        task("load"),
                        task("train", dependencies=["load"]),
                        task("cleanup", depends="train.Failed || train.Errored"),
                        task("publish", depends="train"),
                        task("report", depends="(publish || cleanup) && !load.Failed"),
                    ]
                },
            },
            *templates,
        ],
    }

    def fail_train(workflow: dict[str, Any], template: dict[str, Any]) -> OutcomeKind:
        return "failed" if template["name"] == "train" else "succeeded"

    with argo_sandbox(rule=fail_train) as (_, gateway):
        created = gateway.create_workflow(NS, {"metadata": {"name": "branches"}, "spec": spec})
        ran = gateway.read_workflow(NS, created["metadata"]["name"])

    tasks = by_task(ran)
    assert {t: tasks[t]["phase"] for t in ("load", "train", "cleanup", "publish", "report")} == {
        "load": "Succeeded",
        "train": "Failed",
        "cleanup": "Succeeded",
        "publish": "Omitted",
        "report": "Succeeded",
    }
    assert tasks["train"]["children"] == [tasks["cleanup"]["id"], tasks["publish"]["id"]]
    assert ran["status"]["phase"] == "Failed" and tasks["train"]["message"] == "main: Error (exit code 1)"


def test_a_steps_workflow_ends_in_error_with_an_invalid_spec_message() -> None:
    steps = {
        "entrypoint": "main",
        "templates": [
            {"name": "main", "steps": [[{"name": "a", "template": "a"}]]},
            {"name": "a", "container": {"image": "busybox:1.36"}},
        ],
    }
    with argo_sandbox() as (_, gateway):
        gateway.create_workflow(NS, {"metadata": {"name": "stepwise"}, "spec": steps})
        ran = gateway.read_workflow(NS, "stepwise")

    assert ran["status"]["phase"] == "Error"
    assert ran["status"]["message"] == "invalid spec: the sandbox controller runs DAG entrypoints only"


def test_creating_a_workflow_twice_or_without_a_name_is_refused() -> None:
    with argo_sandbox("workflow_oom") as (_, gateway):
        with pytest.raises(IntegrationError) as exists:
            gateway.create_workflow(NS, {"metadata": {"name": OOM}, "spec": {"entrypoint": "x"}})
        with pytest.raises(IntegrationError) as unnamed:
            gateway.create_workflow(NS, {"metadata": {}, "spec": {"entrypoint": "x"}})
        with pytest.raises(IntegrationError) as elsewhere:
            gateway.create_workflow(NS, {"metadata": {"name": "a", "namespace": "default"}, "spec": {}})

    assert exists.value.status == 409 and f'workflows.argoproj.io "{OOM}" already exists' in str(exists.value)
    assert unnamed.value.status == 422 and "name or generateName is required" in str(unnamed.value)
    assert elsewhere.value.status == 400


def test_deleting_a_pod_removes_it_and_its_log() -> None:
    pod = pod_name(UPSTREAM, f"{UPSTREAM}.extract", "extract")
    with argo_sandbox("workflow_upstream") as (sandbox, gateway):
        gateway.delete_pod(NS, pod)
        with pytest.raises(IntegrationError) as gone:
            gateway.read_pod(NS, pod)
        with pytest.raises(IntegrationError) as twice:
            gateway.delete_pod(NS, pod)

    assert gone.value.status == 404 and twice.value.status == 404
    assert str(twice.value).startswith(
        f'kubernetes: DELETE pod {NS}/{pod}: 404 NotFound (pods "{pod}" not found)'
    )
    assert sandbox.stored("Pod", NS, pod) is None
    assert sandbox.writes()[0].path == f"/api/v1/namespaces/{NS}/pods/{pod}"


# -- faults --------------------------------------------------------------------------------------------


def test_a_403_on_workflows_is_an_integration_error_naming_the_verb() -> None:
    with argo_sandbox("workflow_oom") as (sandbox, gateway):
        workflow = gateway.read_workflow(NS, OOM)
        sandbox.fail("/workflows", status=403)
        with pytest.raises(IntegrationError) as read:
            gateway.read_workflow(NS, OOM)
        with pytest.raises(IntegrationError) as listed:
            gateway.list_workflows(NS)
        with pytest.raises(IntegrationError) as replaced:
            gateway.replace_workflow(NS, OOM, workflow)
        sandbox.fail("/pods/", status=500)
        with pytest.raises(RetryableError) as broken:
            gateway.delete_pod(NS, "any")

    assert read.value.status == 403 and not isinstance(read.value, RetryableError)
    assert str(read.value).startswith(f"kubernetes: GET workflow {NS}/{OOM}: 403 Forbidden (")
    assert 'cannot get resource "workflows" in API group "argoproj.io"' in str(read.value)
    assert (
        '(workflows.argoproj.io is forbidden: User "system:serviceaccount:ml-platform:escalation-bot" '
        'cannot list resource "workflows" in API group "argoproj.io" in the namespace "ml-pipelines")'
    ) in str(listed.value)
    assert f'workflows.argoproj.io "{OOM}" is forbidden' in str(replaced.value)
    assert 'cannot update resource "workflows"' in str(replaced.value)
    assert broken.value.status == 500


def test_a_hung_workflow_write_does_not_block_reads() -> None:
    with argo_sandbox("workflow_oom") as (sandbox, gateway):
        workflow = gateway.read_workflow(NS, OOM)
        workflow["metadata"]["labels"]["escalation-bot/incident"] = "7"
        sandbox.hang(f"/workflows/{OOM}", "PUT")
        written: list[dict[str, Any]] = []
        writer = threading.Thread(target=lambda: written.append(gateway.replace_workflow(NS, OOM, workflow)))
        writer.start()
        sandbox.wait_for(lambda r: r.method == "PUT")

        assert "escalation-bot/incident" not in gateway.read_workflow(NS, OOM)["metadata"]["labels"]
        assert written == []
        sandbox.release_hangs()
        writer.join(timeout=10)

    assert written and written[0]["metadata"]["labels"]["escalation-bot/incident"] == "7"


def test_a_held_pod_deletion_is_applied_only_after_release() -> None:
    pod = pod_name(OOM, f"{OOM}.train-model", "train-model")
    with argo_sandbox("workflow_oom") as (sandbox, gateway):
        sandbox.hold()
        deleter = threading.Thread(target=lambda: gateway.delete_pod(NS, pod))
        deleter.start()
        sandbox.wait_for(lambda r: r.method == "DELETE")

        assert sandbox.stored("Pod", NS, pod) is not None
        sandbox.release()
        deleter.join(timeout=10)
        assert sandbox.stored("Pod", NS, pod) is None
