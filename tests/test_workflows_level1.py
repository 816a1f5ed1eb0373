"""Argo Workflows through the whole bot: an alert (or the poller) names a failed Workflow; Level 1 finds the
failed node, its pod and why it ended, the nodes upstream and those that never ran, classifies from that
evidence, and retries the Workflow from the failed node (with more memory after an OOM kill, within the
caps) or escalates with the Workflow, node and pipeline named."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from bot.core.models import Category
from bot.sandbox.kube_api import FIXTURES, workflow_always, workflow_succeeds_if_memory_at_least
from bot.sandbox.world import DEMO_CONFIG, SandboxWorld, alertmanager_payload
from tests.world_views import only_incident, report

NS = "ml-pipelines"
OOM_WF, UPSTREAM_WF, DEADLINE_WF = (
    "churn-training-pipeline-x8k2q",
    "feature-pipeline-m4z7t",
    "nightly-retrain-q9w3e",
)
WORKFLOWS = f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows"

CONFIG: dict[str, Any] = copy.deepcopy(DEMO_CONFIG)
CONFIG["kubernetes"] = {"namespaces": [NS]}
CONFIG["remediation"]["allowlist"]["retry_workflow"] = {"max_retries": 1, "max_memory": "8Gi"}


def workflow_alert(name: str, fingerprint: str) -> dict[str, Any]:
    """A bare alert naming a Workflow (kube-state-metrics' workflow label joined in)."""
    return {
        "labels": {
            "alertname": "ArgoWorkflowFailed",
            "namespace": NS,
            "workflow": name,
            "severity": "warning",
        },
        "annotations": {"summary": f"Argo Workflow {NS}/{name} failed"},
        "fingerprint": fingerprint,
    }


def world_with(fixture: str, rule: Any, config: dict[str, Any] = CONFIG) -> SandboxWorld:
    world = SandboxWorld(config=config)
    world.kube.on_workflow_run = rule
    world.start()
    world.kube.load_fixture(fixture)
    return world


def test_an_oom_killed_dag_node_is_retried_from_that_node_with_more_memory_and_fixed() -> None:
    world = world_with("workflow_oom", workflow_succeeds_if_memory_at_least("4Gi", "train-model"))
    try:
        world.post_alerts(alertmanager_payload([workflow_alert(OOM_WF, "a0000001")]))
        world.settle()
        inc, findings, events = only_incident(world)
        text = report(world)
        writes = [(w.method, w.path) for w in world.kube.writes()]
        [put] = [w for w in world.kube.writes() if w.method == "PUT"]
        after = world.kube.stored("Workflow", NS, OOM_WF)
    finally:
        world.stop()
    assert inc.category == Category.TRAINING_CRASH.value
    assert inc.reclassified_from is not None  # its name says nothing of memory
    assert "train-model" in inc.classification_reason and "OOMKilled" in inc.classification_reason
    assert [e.detail["to"] for e in events if e.kind == "reclassified"] == ["training_crash"]
    assert [f.check for f in findings][:2] == ["triage", "workflow_nodes"]
    assert "node train-model (template train-model) OOMKilled (exit code 137)" in text
    assert "upstream prepare-data (Succeeded)" in text and "never ran: register-model" in text
    # retried in place: the failed pod deleted, the Workflow PUT with its resourceVersion and 4Gi
    assert ("DELETE", f"/api/v1/namespaces/{NS}/pods/{OOM_WF}-train-model-3025472166") in writes
    assert ("PUT", f"{WORKFLOWS}/{OOM_WF}") in writes
    assert not any(m == "POST" for m, _ in writes)  # not a new run
    body = put.body
    assert "workflows.argoproj.io/completed" not in body["metadata"]["labels"]
    assert body["status"]["phase"] == "" and f"{OOM_WF}-3025472166" not in body["status"]["nodes"]
    assert body["status"]["nodes"][f"{OOM_WF}-503432846"]["phase"] == "Succeeded"  # upstream kept
    [train] = [t for t in body["spec"]["templates"] if t["name"] == "train-model"]
    assert train["container"]["resources"]["limits"]["memory"] == "4Gi"
    assert (
        "retry_workflow (fixed): workflow churn-training-pipeline-x8k2q succeeded with memory limit 4Gi"
        in text
    )
    assert after is not None and after["status"]["phase"] == "Succeeded"
    assert world.slack.messages("#data-coordinator") == []


def test_an_oom_that_more_memory_within_the_cap_cannot_fix_escalates_naming_workflow_node_and_pipeline() -> (
    None
):
    world = world_with("workflow_oom", workflow_succeeds_if_memory_at_least("64Gi", "train-model"))
    try:
        world.post_alerts(alertmanager_payload([workflow_alert(OOM_WF, "a0000002")]))
        world.settle()
        [l2] = world.slack.messages("#data-coordinator")
        puts = [w for w in world.kube.writes() if w.method == "PUT"]
    finally:
        world.stop()
    assert len(puts) == 1  # max_retries 1: one retry, never a second
    text = l2["text"]
    assert "Request: Guidance on a resource tuning strategy" in text
    assert f"Argo Workflow {OOM_WF} (pipeline churn-training 2026-11-26), failed node train-model" in text
    assert "retry_workflow (failed)" in text and "again at node train-model" in text


def test_a_failed_upstream_node_is_named_with_what_never_ran_and_retried_once_before_escalating() -> None:
    world = world_with("workflow_upstream", workflow_always("failed", "FileNotFoundError: [Errno 2] gone\n"))
    try:
        world.post_alerts(alertmanager_payload([workflow_alert(UPSTREAM_WF, "a0000003")]))
        world.settle()
        inc, _findings, _events = only_incident(world)
        text = report(world)
        [l2] = world.slack.messages("#data-coordinator")
        puts = [w for w in world.kube.writes() if w.method == "PUT"]
    finally:
        world.stop()
    assert inc.category == Category.FEATURE_STORE_ISSUE.value  # its log: a missing input file
    assert "missing input data" in inc.classification_reason
    assert "node extract (template extract) Error (exit code 1)" in text
    assert "2 node(s) never ran: transform, train" in text
    assert len(puts) == 1 and "retry_workflow (failed)" in text
    assert "Request: Guidance on a feature store strategy" in l2["text"]
    assert f"Argo Workflow {UPSTREAM_WF}" in l2["text"] and "failed node extract" in l2["text"]


def test_a_workflow_past_its_active_deadline_is_an_orchestration_timeout_resubmitted_as_a_new_run() -> None:
    world = world_with("workflow_deadline", workflow_always("succeeded"))
    try:
        world.post_alerts(alertmanager_payload([workflow_alert(DEADLINE_WF, "a0000004")]))
        world.settle()
        inc, _findings, _events = only_incident(world)
        text = report(world)
        [post] = [w for w in world.kube.writes() if w.method == "POST"]
    finally:
        world.stop()
    assert inc.category == Category.ORCHESTRATION_TIMEOUT.value
    assert inc.classification_reason == "Step exceeded its deadline (activeDeadlineSeconds 3600 s)"
    assert post.path == WORKFLOWS  # a new run: a retry would run past the same deadline again
    assert post.body["metadata"]["generateName"]
    assert post.body["metadata"]["labels"]["workflows.argoproj.io/resubmitted-from-workflow"] == DEADLINE_WF
    assert "a retry would run past the Workflow's own activeDeadlineSeconds again" in text
    assert "retry_workflow (fixed)" in text


def test_the_poller_turns_a_failed_workflow_into_one_incident_and_skips_the_bots_own_runs() -> None:
    config = copy.deepcopy(CONFIG)
    config["intake"] = {"pollers": {"argo_failed_workflows": {"enabled": True}}}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    objects = json.loads((FIXTURES / "workflow_oom.json").read_text())
    for obj in objects:
        if obj["kind"] == "Workflow":
            obj["status"]["finishedAt"] = now
            own = copy.deepcopy(obj)
            own["metadata"]["name"] = "churn-training-pipeline-l1run"
            own["metadata"]["labels"]["escalation-bot/incident"] = "7"
    world = SandboxWorld(config=config)
    world.kube.on_workflow_run = workflow_succeeds_if_memory_at_least("4Gi", "train-model")
    world.start()
    try:
        assert world.bot is not None
        for obj in [*objects, own]:
            world.kube.load(obj)
        first = world.bot.pollers.poll_workflows()
        again = world.bot.pollers.poll_workflows()
        world.settle()
        inc, _findings, _events = only_incident(world)
        text = report(world)
    finally:
        world.stop()
    assert (first.found, first.ingested, again.ingested) == (1, 1, 0)
    assert inc.source == "argo_poll" and inc.target["workflow"] == OOM_WF
    assert inc.title == f"Workflow {NS}/{OOM_WF} Failed at node train-model"
    assert inc.category == Category.TRAINING_CRASH.value
    assert "retry_workflow (fixed)" in text


def test_a_cluster_without_the_workflow_resource_is_polled_quietly() -> None:
    config = copy.deepcopy(CONFIG)
    config["intake"] = {"pollers": {"argo_failed_workflows": {"enabled": True}}}
    with SandboxWorld(config=config) as world:
        assert world.bot is not None
        world.kube.fail("/workflows", 404)
        report_ = world.bot.pollers.poll_workflows()
    assert report_.outcome == "ok" and report_.errors == [] and report_.found == 0


def test_an_oom_whose_template_sets_no_memory_limit_is_escalated_without_a_retry() -> None:
    world = SandboxWorld(config=CONFIG)
    world.kube.on_workflow_run = workflow_succeeds_if_memory_at_least("4Gi", "train-model")
    world.start()
    try:
        for obj in json.loads((FIXTURES / "workflow_oom.json").read_text()):
            for template in obj.get("spec", {}).get("templates", []):
                if template["name"] == "train-model":
                    template["container"]["resources"].pop("limits", None)
            world.kube.load(obj)
        world.post_alerts(alertmanager_payload([workflow_alert(OOM_WF, "a0000005")]))
        world.settle()
        [l2] = world.slack.messages("#data-coordinator")
        writes = world.kube.writes()
        reads = [
            r.path for r in world.kube.requests if r.method == "GET" and r.path == f"{WORKFLOWS}/{OOM_WF}"
        ]
    finally:
        world.stop()
    assert writes == []  # nothing to raise: a person decides
    assert (
        "retry_workflow (refused): refused: template train-model sets no memory limit to raise" in l2["text"]
    )
    assert "Request: Guidance on a resource tuning strategy" in l2["text"]
    assert len(reads) == 1  # the triage and the node check share one read
