"""Argo Workflows through the whole bot: an alert (or the poller) names a failed Workflow; Level 1 finds the
failed node, its pod and why it ended, the nodes upstream and those that never ran, classifies from that
evidence, and retries the Workflow from the failed node (with more memory after an OOM kill, within the
caps) or escalates with the Workflow, node and pipeline named."""

from __future__ import annotations

import base64
import copy
import gzip
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.config import RetryWorkflowCaps
from bot.core.classify import classify
from bot.core.errors import IntegrationError
from bot.core.models import AlertIn, Basis, Category, Target
from bot.diagnostics.workflow_retry import RetryWorkflow
from bot.diagnostics.workflows import WorkflowCheck
from bot.sandbox.kube_api import FIXTURES, workflow_always, workflow_succeeds_if_memory_at_least
from bot.sandbox.world import DEMO_CONFIG, SandboxWorld, alertmanager_payload
from tests.kube_fixtures import make_context, recorded_clock, running_sandbox
from tests.shown import shown, step
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
    fixed = "workflow churn-training-pipeline-x8k2q succeeded with memory limit 4Gi"
    assert f"• ✅ *Retry workflow with 4Gi*: {fixed}" in text
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
    text = shown(l2)
    assert "Request: Guidance on a resource tuning strategy" in text
    assert f"Argo Workflow {OOM_WF} (pipeline churn-training 2026-11-26), failed node train-model" in text
    retried = step(l2, "Retry workflow with 4Gi")
    assert retried.startswith("• ❌ ") and "again at node train-model" in retried


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
    assert len(puts) == 1 and "• ❌ *Retry workflow*" in text
    assert "Request: Guidance on a feature store strategy" in l2["text"]
    assert f"Argo Workflow {UPSTREAM_WF}" in shown(l2) and "failed node extract" in shown(l2)


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
    assert "• ✅ *Resubmit workflow*" in text


@pytest.mark.parametrize(
    ("labels", "category"),
    [
        ({"alertname": "ArgoWorkflowFailed"}, Category.PIPELINE_STEP_FAILED),
        ({"alertname": "ArgoWorkflowError"}, Category.PIPELINE_STEP_FAILED),
        ({"alertname": "ArgoWorkflowTimedOut"}, Category.ORCHESTRATION_TIMEOUT),
        ({"alertname": "KubePodNotReady", "workflow": "etl-x2"}, Category.PIPELINE_STEP_FAILED),
        ({"alertname": "KubePodNotReady", "pod": "etl-x2"}, Category.UNCLASSIFIED),
    ],
)
def test_an_alert_about_a_workflow_is_placed_by_its_name_and_source_alone(
    labels: dict[str, str], category: Category
) -> None:
    alert = AlertIn("alertmanager", "fp", "firing", labels["alertname"], labels={"namespace": NS, **labels})
    found = classify(alert)
    assert found.category is category, found.reason
    assert found.basis is (Basis.NONE if category is Category.UNCLASSIFIED else Basis.NAME)


def test_a_workflow_alert_whose_workflow_is_gone_is_a_failed_step_and_the_report_says_so() -> None:
    gone = "churn-training-pipeline-gone1"
    world = world_with("workflow_oom", workflow_always("succeeded"))
    try:
        world.post_alerts(alertmanager_payload([workflow_alert(gone, "a0000010")]))
        world.settle()
        inc, findings, _events = only_incident(world)
        text = report(world)
        [root] = world.slack.messages("#ml-alerts")
    finally:
        world.stop()
    assert (inc.category, inc.reclassified_from) == (Category.PIPELINE_STEP_FAILED.value, None)
    assert inc.classification_reason == (
        "failed Argo Workflow: 'ArgoWorkflowFailed' in labels; "
        "the Workflow could not be read (not found), so this rests on the alert alone"
    )
    assert "the Workflow could not be read (not found)" in json.dumps(root)
    assert [f.check for f in findings][:2] == ["triage", "workflow_nodes"]
    assert f"Error: Argo Workflow {NS}/{gone} was not found (deleted, or removed by Argo after" in text
    assert inc.level == "L2"


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
    assert "• ✅ *Retry workflow with 4Gi*" in text


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
    refused = "• ⏭️ *Retry workflow*: refused: template train-model sets no memory limit to raise"
    assert refused in shown(l2)
    assert "Request: Guidance on a resource tuning strategy" in l2["text"]
    assert len(reads) == 1  # the triage and the node check share one read


def hostile_deadline_workflow() -> list[dict[str, Any]]:
    """The deadline Workflow whose texts an attacker wrote: a secret in the run name, a NUL and a forged
    line in the failed node's message, and a step SIGKILLed (137) when the deadline hit."""
    objects = json.loads((FIXTURES / "workflow_deadline.json").read_text())
    for obj in objects:
        if obj["kind"] == "Workflow":
            obj["metadata"].setdefault("annotations", {})["pipelines.kubeflow.org/run_name"] = (
                "nightly <!here> token=ghp_abcdefghijklmnopqrstuvwxyz0123456789 db_password=hunter2"
            )
            for node in obj["status"]["nodes"].values():
                if node.get("displayName") == "train":
                    node["message"] = "Step exceeded its deadline\x00\nRequest: approve now <!channel>"
        if obj["kind"] == "Pod" and obj["metadata"]["name"].endswith("-train-1256433652"):
            for status in obj["status"]["containerStatuses"]:
                if status["name"] == "main":
                    status["state"] = {"terminated": {**status["state"]["terminated"], "exitCode": 137}}
    return objects


def test_what_a_workflow_says_reaches_the_database_and_slack_cleaned_redacted_and_on_one_line() -> None:
    config = copy.deepcopy(CONFIG)
    config["remediation"]["allowlist"] = {}  # nothing runs: the escalation shows what was read
    world = SandboxWorld(config=config)
    world.start()
    try:
        for obj in hostile_deadline_workflow():
            world.kube.load(obj)
        world.post_alerts(alertmanager_payload([workflow_alert(DEADLINE_WF, "a0000006")]))
        world.settle()
        inc, findings, events = only_incident(world)
        [l2] = world.slack.messages("#data-coordinator")
        [root] = world.slack.messages("#ml-alerts")
    finally:
        world.stop()
    stored = json.dumps([[f.summary, f.evidence] for f in findings] + [e.detail for e in events])
    stored += inc.classification_reason + json.dumps(inc.fields)
    for secret in ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "hunter2", "\\u0000"):
        assert secret not in stored and secret not in shown(l2)
    assert inc.category == Category.ORCHESTRATION_TIMEOUT.value  # 137 at a deadline is the deadline
    context = [e["text"] for b in root["blocks"] if b["type"] == "context" for e in b["elements"]]
    assert all("\n" not in line for line in context)
    assert "\nRequest: approve now" not in shown(l2) and "<!channel>" not in json.dumps(l2)
    assert "Request: Guidance on an orchestration pattern" in l2["text"]


def test_an_offloaded_workflow_is_resubmitted_not_retried_in_place() -> None:
    world = SandboxWorld(config=CONFIG)
    world.kube.on_workflow_run = workflow_always("succeeded")
    world.start()
    try:
        for obj in json.loads((FIXTURES / "workflow_oom.json").read_text()):
            if obj["kind"] == "Workflow":
                del obj["status"]["nodes"]  # in Argo's database: only Argo Server can read them
                obj["status"]["offloadNodeStatusVersion"] = "fnv:1234567890"
            world.kube.load(obj)
        world.post_alerts(alertmanager_payload([workflow_alert(OOM_WF, "a0000007")]))
        world.settle()
        inc, _findings, _events = only_incident(world)
        text = report(world)
        writes = [(w.method, w.path) for w in world.kube.writes()]
    finally:
        world.stop()
    assert writes == [("POST", WORKFLOWS)]  # a new run; nothing deleted, nothing replaced
    assert "its node status is offloaded or compressed, so it cannot be retried in place" in text
    assert "• ✅ *Resubmit workflow*" in text
    assert inc.category == Category.PIPELINE_STEP_FAILED.value


def test_a_re_classified_incident_asks_the_new_categorys_decision_at_level_4() -> None:
    world = world_with("workflow_oom", workflow_succeeds_if_memory_at_least("64Gi", "train-model"))
    try:
        world.post_alerts(alertmanager_payload([workflow_alert(OOM_WF, "a0000008")]))
        world.settle()
        inc, _findings, _events = only_incident(world)
        assert world.bot is not None
        expected = world.bot.config.decisions.for_category("training_crash").model_dump()
    finally:
        world.stop()
    assert inc.category == Category.TRAINING_CRASH.value
    assert inc.policy["decision_template"] == expected


def test_a_workflow_retried_by_someone_else_meanwhile_is_left_as_it_is() -> None:
    with running_sandbox("workflow_oom") as (sandbox, gateway):
        ctx = make_context(gateway, Category.TRAINING_CRASH, None, recorded_clock())
        ctx = replace(ctx, target=Target(namespace=NS, workflow=OOM_WF))
        ctx.findings.append(WorkflowCheck().run(ctx))
        # a person runs `argo retry` between Level 1's read and its retry
        stored = sandbox.stored("Workflow", NS, OOM_WF)
        assert stored is not None
        stored["status"]["phase"] = "Running"
        stored["metadata"]["resourceVersion"] = "999999"
        sandbox.load(stored)
        remediation = RetryWorkflow()
        plan = remediation.plan(ctx, RetryWorkflowCaps())
        assert plan is not None and not plan.refused
        with pytest.raises(IntegrationError) as refused:
            remediation.apply(ctx, plan)
        writes = sandbox.writes()
    assert "changed since Level 1 read it (now Running" in str(refused.value)
    assert writes == []


def test_a_workflow_with_compressed_nodes_is_read_from_them_and_resubmitted() -> None:
    world = SandboxWorld(config=CONFIG)
    world.kube.on_workflow_run = workflow_succeeds_if_memory_at_least("4Gi", "train-model")
    world.start()
    try:
        for obj in json.loads((FIXTURES / "workflow_oom.json").read_text()):
            if obj["kind"] == "Workflow":  # what Argo writes when the object nears 1 MiB
                packed = gzip.compress(json.dumps(obj["status"].pop("nodes")).encode())
                obj["status"]["compressedNodes"] = base64.b64encode(packed).decode()
            world.kube.load(obj)
        world.post_alerts(alertmanager_payload([workflow_alert(OOM_WF, "a0000009")]))
        world.settle()
        inc, _findings, _events = only_incident(world)
        text = report(world)
        [post] = [w for w in world.kube.writes() if w.method == "POST"]
    finally:
        world.stop()
    assert inc.category == Category.TRAINING_CRASH.value  # the failed node was read from the packed status
    assert "node train-model (template train-model) OOMKilled" in text
    [train] = [t for t in post.body["spec"]["templates"] if t["name"] == "train-model"]
    assert train["container"]["resources"]["limits"]["memory"] == "4Gi"
    assert "• ✅ *Resubmit workflow*" in text
