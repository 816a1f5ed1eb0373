"""Level 1 diagnoses before it decides: an alert that names only its target is classified from what the
target shows, says why, tries that category's remediation and, when it escalates, asks that category's
question. A category label or an app.yaml rule is kept; every change is on the timeline."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from bot.core.models import Category
from bot.diagnostics.names import check_name
from bot.sandbox.kube_api import FIXTURES, always, succeed_if_memory_at_least
from bot.sandbox.world import DEMO_CONFIG, SandboxWorld, alertmanager_payload
from bot.store.tables import TimelineEvent
from tests.mlflow_server import MlflowServer
from tests.shown import shown
from tests.world_views import only_incident, report

NS = "ml-pipelines"
PIPELINE_JOB, PIPELINE_POD = "feature-build-daily", "feature-build-daily-q9w4z"

CONFIG: dict[str, Any] = {
    **DEMO_CONFIG,
    "remediation": {
        "dry_run": False,
        "allowlist": {
            **DEMO_CONFIG["remediation"]["allowlist"],
            "rerun_from_checkpoint": {},
            "recheck_tracking": {},
        },
    },
}


def bare(alertname: str, fingerprint: str, **labels: str) -> dict[str, Any]:
    """An alert as kube-prometheus sends it: its name, where, and nothing about why."""
    return {
        "labels": {"alertname": alertname, "namespace": NS, "severity": "warning", **labels},
        "annotations": {"summary": f"{alertname} in {NS}"},
        "fingerprint": fingerprint,
    }


def job_failed(job: str, fingerprint: str, **labels: str) -> dict[str, Any]:
    return bare("KubeJobFailed", fingerprint, job_name=job, condition="true", **labels)


def step_job(name: str, log: str) -> list[dict[str, Any]]:
    """The recorded failed pipeline step, renamed to `name`, whose container printed `log`."""
    text = (FIXTURES / "pipeline_failed.json").read_text().replace(PIPELINE_JOB, name)
    objects: list[dict[str, Any]] = json.loads(text)
    for obj in objects:
        if obj["kind"] == "PodLog":
            obj["text"] = (
                "2026-11-26 04:00:04,118 INFO step: starting\nTraceback (most recent call last):\n" + log
            )
    return objects


def image_pull_job(name: str) -> list[dict[str, Any]]:
    """A step whose pod waits on an image that cannot be pulled."""
    objects = step_job(name, "")
    for obj in objects:
        if obj["kind"] == "Pod":
            [status] = obj["status"]["containerStatuses"]
            status["state"] = {
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": 'Back-off pulling image "registry.local/ml/features:0.9.8"',
                }
            }
            obj["spec"]["containers"][0]["image"] = "registry.local/ml/features:0.9.8"
    return objects


def escalated(world: SandboxWorld) -> str:
    [l2] = world.slack.messages("#data-coordinator")
    return shown(l2)


def root_context(world: SandboxWorld) -> str:
    [root] = world.slack.messages("#ml-alerts")
    return json.dumps(root.get("blocks", []))


def run(world: SandboxWorld, *alerts: dict[str, Any]) -> None:
    world.post_alerts(alertmanager_payload(list(alerts)))
    world.settle()


def moves(events: list[TimelineEvent]) -> list[dict[str, Any]]:
    return [e.detail for e in events if e.kind == "reclassified"]


# -- acceptance 1: one bare alert per category ---------------------------------------------------------
def test_a_bare_kube_job_failed_for_an_oom_killed_job_is_a_training_crash_fixed_with_more_memory() -> None:
    with SandboxWorld(config=CONFIG, job_rule=succeed_if_memory_at_least("4Gi")) as world:
        run(world, job_failed("train-churn-model", "f1000001"))
        inc, findings, events = only_incident(world)
        text, context = report(world), root_context(world)
        posts = [w.body for w in world.kube.writes() if w.method == "POST"]
    assert inc.category == Category.TRAINING_CRASH.value
    assert inc.reclassified_from == Category.PIPELINE_STEP_FAILED.value
    assert "train-churn-model-x7k2p container trainer OOMKilled with limit 2Gi" in inc.classification_reason
    assert moves(events) == [
        {"from": "pipeline_step_failed", "to": "training_crash", "reason": inc.classification_reason}
    ]
    assert "re-classified from pipeline step failed: pod train-churn-model-x7k2p" in context
    assert findings[0].check == "triage" and findings[0].status == "fail"
    assert "• ❌ *Triage*: the evidence points at training crash" in text
    assert "• ✅ *Re-run with 4Gi*" in text and "✅ fixed at Level 1" in text
    limits = [b["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] for b in posts]
    assert limits == ["4Gi"]  # not a debug re-run at the same 2Gi
    assert world.slack.messages("#data-coordinator") == []


def test_a_bare_kube_job_failed_past_its_deadline_is_an_orchestration_timeout() -> None:
    with SandboxWorld(config=CONFIG, job_rule=always("succeeded")) as world:
        world.kube.load_fixture("orchestration_timeout")
        run(world, job_failed("nightly-training-dag", "f1000002"))
        inc, _findings, events = only_incident(world)
        text = report(world)
    assert inc.category == Category.ORCHESTRATION_TIMEOUT.value
    assert inc.classification_reason == "the Job ran past its activeDeadlineSeconds (7200 s)"
    assert [m["to"] for m in moves(events)] == ["orchestration_timeout"]
    assert "• ❌ *Job deadline*" in text
    assert "• ✅ *Re-run from checkpoint*" in text


def test_a_bare_kube_job_failed_with_an_import_error_is_a_version_incompatibility() -> None:
    config = copy.deepcopy(CONFIG)
    config["remediation"]["allowlist"]["rerun_with_known_good_image"] = {}
    config["versions"] = {"known_good_images": {"registry.local/ml/train": "1.4.1"}}
    rule = always("failed", "ImportError: numpy.core.multiarray failed to import\n")  # 1.4.1 fails too
    with SandboxWorld(config=config, job_rule=rule) as world:
        world.kube.load_fixture("version_conflict")
        run(world, job_failed("train-fraud-model", "f1000003"))
        inc, _findings, _events = only_incident(world)
        l2, text = escalated(world), report(world)
    assert inc.category == Category.VERSION_INCOMPATIBILITY.value
    assert "ImportError" in inc.classification_reason and "in the step's log" in inc.classification_reason
    assert "• ❌ *Import errors*" in text
    assert "• ❌ *Re-run on known-good image*" in text and "1.4.1" in text
    assert "Retry with debug logging" not in text  # the pipeline-step remediation is not what it tried
    assert "Request: Guidance on a versioning strategy" in l2
    assert "version incompatibility" in l2


@pytest.mark.parametrize(
    ("log", "category", "reason", "ask", "check"),
    [
        (
            "KeyError: 'days_since_last_login'\n",
            Category.FEATURE_STORE_ISSUE,
            "the input's schema changed: 'KeyError: 'days_since_last_login''",
            "Request: Guidance on a feature store strategy",
            "feature_schema",
        ),
        (
            "FileNotFoundError: [Errno 2] No such file or directory: '/data/features/2026-11-26.parquet'\n",
            Category.FEATURE_STORE_ISSUE,
            "missing input data: 'FileNotFoundError'",
            "Request: Guidance on a feature store strategy",
            "feature_freshness",
        ),
        (
            "mlflow.exceptions.MlflowException: API request to http://mlflow.ml-platform:5000/api/2.0/"
            "mlflow/runs/log-batch failed with exception HTTPConnectionPool(host='mlflow.ml-platform', "
            "port=5000): Max retries exceeded\n",
            Category.TRACKING_DISCONNECTED,
            "the step could not reach MLflow",
            "Request: Guidance on an experiment tracking pattern",
            "tracking_health",
        ),
        (
            "mlflow.exceptions.RestException: RESOURCE_DOES_NOT_EXIST: Registered Model with "
            "name=churn-classifier not found\n",
            Category.MODEL_REGISTRATION_FAILED,
            "the model could not be registered",
            "Request: Guidance on a model registry pattern",
            "model_version_status",
        ),
    ],
    ids=["schema", "missing-input", "tracking", "registration"],
)
def test_a_bare_kube_job_failed_is_classified_by_its_log(
    log: str, category: Category, reason: str, ask: str, check: str
) -> None:
    with SandboxWorld(config=CONFIG) as world:
        for obj in step_job("build-training-set", log):
            world.kube.load(obj)
        run(world, job_failed("build-training-set", "f1000004"))
        inc, findings, events = only_incident(world)
        l2 = escalated(world)
    assert inc.category == category.value
    assert inc.classification_reason.startswith(reason)
    assert [m["to"] for m in moves(events)] == [category.value]
    assert f"{category.label}" in l2 and ask in l2
    assert f"*{check_name(check)}*" in l2  # the new category's checks ran
    assert "Retry with debug logging" not in l2 and "*Job status*" not in l2  # not the pipeline-step ones
    assert findings[0].check == "triage"


def test_a_bare_container_waiting_alert_on_an_image_pull_is_a_pipeline_step_of_the_job_that_owns_it() -> None:
    with SandboxWorld(config=CONFIG) as world:
        for obj in image_pull_job("score-batch"):
            world.kube.load(obj)
        pod = "score-batch-q9w4z"
        run(
            world,
            bare("KubeContainerWaiting", "f1000005", pod=pod, container="step", reason="ImagePullBackOff"),
        )
        inc, _findings, events = only_incident(world)
        l2, text = escalated(world), report(world)
    assert inc.category == Category.PIPELINE_STEP_FAILED.value
    assert inc.reclassified_from == Category.UNCLASSIFIED.value
    assert inc.classification_reason == (
        f"pod {pod} container step cannot pull registry.local/ml/features:0.9.8 (ImagePullBackOff)"
    )
    assert inc.target["job"] == "score-batch"  # found through the pod's owner
    assert [e.detail for e in events if e.kind == "target_found"] == [{"job": "score-batch"}]
    assert "• ❌ *Image pull*" in text and "Retry with debug logging" in text
    assert "Request: Guidance on a debugging strategy" in l2


def test_a_bare_crash_looping_pod_of_a_failed_job_with_no_known_signature_is_a_pipeline_step() -> None:
    with SandboxWorld(config=CONFIG) as world:
        run(world, bare("KubePodCrashLooping", "f1000006", pod=PIPELINE_POD, container="step"))
        inc, findings, events = only_incident(world)
        text = report(world)
    assert inc.category == Category.PIPELINE_STEP_FAILED.value
    assert inc.reclassified_from == Category.UNCLASSIFIED.value  # its name matches no rule
    assert inc.classification_reason == (
        f"job {PIPELINE_JOB} failed (BackoffLimitExceeded) and nothing read names a known cause"
    )
    assert [m["to"] for m in moves(events)] == ["pipeline_step_failed"]
    assert findings[0].check == "triage" and findings[0].status == "fail"
    assert inc.target["job"] == PIPELINE_JOB
    assert "Retry with debug logging" in text


def test_evidence_with_no_known_signature_leaves_a_named_category_alone() -> None:
    with SandboxWorld(config=CONFIG) as world:
        alert = bare("ModelPipelineAlert", "f1000010", job_name=PIPELINE_JOB)
        alert["annotations"]["summary"] = "the nightly training crashed"
        run(world, alert)
        inc, findings, events = only_incident(world)
    assert inc.category == Category.TRAINING_CRASH.value  # "training failure", from its name
    assert inc.reclassified_from is None and moves(events) == []
    assert findings[0].check == "triage" and findings[0].status == "ok"
    assert "no known failure signature" in findings[0].summary


# -- acceptance 2: who wins ---------------------------------------------------------------------------
def test_an_explicit_category_label_is_kept_and_the_disagreeing_evidence_is_on_the_timeline() -> None:
    with SandboxWorld(config=CONFIG) as world:
        run(world, job_failed("train-churn-model", "f1000007", category="feature_store_issue"))
        inc, findings, events = only_incident(world)
    assert inc.category == Category.FEATURE_STORE_ISSUE.value and inc.reclassified_from is None
    [kept] = [e.detail for e in events if e.kind == "classification_kept"]
    assert kept["category"] == "feature_store_issue" and kept["evidence"] == "training_crash"
    assert kept["kept_by"] == "label category=feature_store_issue"
    assert findings[0].check == "triage" and findings[0].status == "fail"
    assert moves(events) == []


def test_a_configured_rule_beats_the_built_in_signatures() -> None:
    config = {
        **CONFIG,
        "classification": {
            "rules": [
                {"category": "feature_store_issue", "pattern": "team=feast", "description": "feast team"}
            ]
        },
    }
    with SandboxWorld(config=config) as world:
        run(world, job_failed("train-churn-model", "f1000008", team="feast"))
        inc, _findings, events = only_incident(world)
    assert inc.category == Category.FEATURE_STORE_ISSUE.value
    assert inc.classified_by == "configured"
    assert moves(events) == []
    [kept] = [e.detail for e in events if e.kind == "classification_kept"]
    assert kept["evidence"] == "training_crash"


def test_each_object_is_read_once_by_the_triage_and_the_checks_together() -> None:
    nothing_allowed = {**CONFIG, "remediation": {"dry_run": False, "allowlist": {}}}
    with SandboxWorld(config=nothing_allowed) as world:
        run(world, job_failed("train-churn-model", "f1000009"))
        # the triage, then the training-crash checks (a remediation would read afresh: none is allowed)
        original = [(r.path, tuple(sorted(r.query.items()))) for r in world.kube.requests]
    assert len(original) >= 4, "Level 1 read the Job, its pods and their events"
    assert len(original) == len(set(original)), [p for p in original if original.count(p) > 1]


def test_a_failed_mlflow_run_from_the_poller_is_classified_by_its_stderr(mlflow_server: MlflowServer) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiment = f"fraud-training-{uuid.uuid4().hex[:8]}"
    run_id = client.create_run(client.create_experiment(experiment), run_name="train-fraud").info.run_id
    stderr = (
        "epoch 1: loading model\nTraceback (most recent call last):\n"
        '  File "/app/train.py", line 3, in <module>\n'
        "ModuleNotFoundError: No module named 'xgboost.compat'\n"
    )
    client.log_text(run_id, stderr, "stderr.log")
    client.set_terminated(run_id, "FAILED")
    config = {**CONFIG, "intake": {"pollers": {"mlflow_experiments": [experiment]}}}
    with SandboxWorld(mlflow_url=mlflow_server.url, config=config) as world:
        assert world.bot is not None
        [polled] = [r for r in world.bot.pollers.poll_all() if r.ingested]
        world.settle()
        inc, findings, events = only_incident(world)
        l2 = escalated(world)
    assert polled.ingested == 1 and inc.source == "mlflow_poll"
    assert inc.category == Category.VERSION_INCOMPATIBILITY.value
    assert inc.reclassified_from == Category.TRAINING_CRASH.value  # what the poller said
    assert "ModuleNotFoundError" in inc.classification_reason
    assert f"MLflow run {run_id}'s stderr.log" in findings[0].summary
    assert [m["to"] for m in moves(events)] == ["version_incompatibility"]
    assert "Request: Guidance on a versioning strategy" in l2


def test_a_triage_read_that_hangs_is_cut_off_at_the_check_timeout_and_level_1_goes_on() -> None:
    config = copy.deepcopy(CONFIG)
    config["levels"]["l1"]["check_timeout"] = "1s"
    with SandboxWorld(config=config) as world:
        world.kube.load_fixture("version_conflict")  # its cause is only in its log
        world.kube.hang("/pods/train-fraud-model-m4q8t/log")  # and the log never answers
        try:
            run(world, job_failed("train-fraud-model", "f1000011"))
            inc, findings, _events = only_incident(world)
            text = report(world)
        finally:
            world.kube.release_hangs()
    triage = findings[0]
    assert triage.check == "triage" and triage.status == "error"
    assert "did not answer within 1s and was cut off" in triage.summary
    assert inc.category == Category.PIPELINE_STEP_FAILED.value  # nothing read names a cause: the name stands
    assert "• ❌ *Job status*" in text  # the category's own checks still ran


def test_what_kubernetes_recorded_settles_the_category_without_reading_the_log() -> None:
    nothing_allowed = {**CONFIG, "remediation": {"dry_run": False, "allowlist": {}}}
    with SandboxWorld(config=nothing_allowed) as world:
        run(world, job_failed("train-churn-model", "f1000012"))
        inc, _findings, _events = only_incident(world)
        logs = [r for r in world.kube.requests if r.path.endswith("/log")]
    assert inc.category == Category.TRAINING_CRASH.value
    assert logs == []  # the OOM kill is in the pod's status; the training-crash checks read no log either
