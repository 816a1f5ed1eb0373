"""The sandbox Kubernetes API and the gateway, driven by the real `kubernetes` client over loopback HTTP."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from kubernetes import client

from bot.config import parse_memory
from bot.config.integrations import KubernetesSettings
from bot.core.errors import IntegrationError, RetryableError
from bot.integrations.kubernetes import Connection, KubeGateway, connect, format_memory, job_rerun_body
from bot.sandbox.kube_api import Outcome, SandboxKubeAPI, always, succeed_if_memory_at_least
from tests.kube_fixtures import NS, running_sandbox, write_kubeconfig


@pytest.fixture
def sandbox() -> Iterator[SandboxKubeAPI]:
    with SandboxKubeAPI(seed=3) as api:
        api.load_fixture("training_oom")
        api.load_fixture("pipeline_failed")
        yield api


@pytest.fixture
def api_client(sandbox: SandboxKubeAPI) -> Iterator[client.ApiClient]:
    configuration = client.Configuration(host=sandbox.url)
    configuration.retries = False
    with client.ApiClient(configuration) as api:
        yield api


def test_client_deserialises_recorded_jobs_and_pods_into_typed_models(api_client: client.ApiClient) -> None:
    batch, core = client.BatchV1Api(api_client), client.CoreV1Api(api_client)

    job = batch.read_namespaced_job("train-churn-model", NS)
    pods = core.list_namespaced_pod(NS, label_selector="job-name=train-churn-model").items

    trainer = job.spec.template.spec.containers[0]
    assert trainer.image == "registry.local/ml/train:1.4.2"
    assert trainer.resources.limits == {"cpu": "2", "memory": "2Gi"}
    assert [(c.type, c.reason) for c in job.status.conditions][-1] == ("Failed", "BackoffLimitExceeded")
    assert isinstance(job.metadata.creation_timestamp, datetime)
    assert [p.metadata.name for p in pods] == ["train-churn-model-x7k2p"]
    status = pods[0].status.container_statuses[0]
    assert (status.last_state.terminated.reason, status.last_state.terminated.exit_code) == ("OOMKilled", 137)
    assert status.restart_count == 3


def test_label_selector_matches_on_every_pair(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)

    churn = core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/part-of=churn").items
    server = core.list_namespaced_pod(
        NS, label_selector="app.kubernetes.io/part-of=churn,pod-template-hash=7d9f8c6b5"
    )

    assert {p.metadata.name for p in churn} == {
        "train-churn-model-x7k2p",
        "churn-model-server-7d9f8c6b5-kq4tn",
    }
    assert [p.metadata.name for p in server.items] == ["churn-model-server-7d9f8c6b5-kq4tn"]


def test_pod_log_honours_tail_lines_container_and_previous(
    sandbox: SandboxKubeAPI, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)

    tail = core.read_namespaced_pod_log("feature-build-daily-q9w4z", NS, container="step", tail_lines=2)
    previous = core.read_namespaced_pod_log("train-churn-model-x7k2p", NS, previous=True)
    with pytest.raises(client.ApiException) as wrong_container:
        core.read_namespaced_pod_log("feature-build-daily-q9w4z", NS, container="sidecar")

    assert tail.splitlines() == [
        '  File "pyarrow/error.pxi", line 92, in pyarrow.lib.check_status',
        "OSError: Could not open Parquet input source 's3://ml-data/features/2026-11-26/part-0.parquet': "
        "Parquet magic bytes not found in footer. Either the file is corrupted or this is not a parquet "
        "file.",
    ]
    assert "02:27:" in previous and "02:38:" not in previous
    assert wrong_container.value.status == 400
    logged = [r for r in sandbox.requests if r.path.endswith("/log")]
    assert logged[0].query == {"container": "step", "tailLines": "2"}
    assert logged[1].query["previous"] == "true"


def test_events_are_filtered_by_field_selector(sandbox: SandboxKubeAPI, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    selector = "involvedObject.name=train-churn-model-x7k2p,involvedObject.kind=Pod"

    events = core.list_namespaced_event(NS, field_selector=selector).items

    assert [e.reason for e in events] == ["Pulled", "OOMKilling", "BackOff"]
    assert events[1].count == 3 and events[1].type == "Warning"
    assert sandbox.requests[-1].query == {"fieldSelector": selector}


def test_missing_objects_and_unknown_paths_are_404_status_objects(api_client: client.ApiClient) -> None:
    batch = client.BatchV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)

    with pytest.raises(client.ApiException) as missing:
        batch.read_namespaced_job("nightly-export", NS)
    with pytest.raises(client.ApiException) as unknown:
        custom.get_namespaced_custom_object("kubeflow.org", "v1", NS, "pytorchjobs", "train")

    assert missing.value.status == 404
    assert json.loads(missing.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'jobs.batch "nightly-export" not found',
        "reason": "NotFound",
        "code": 404,
    }
    assert unknown.value.status == 404
    assert json.loads(unknown.value.body)["reason"] == "NotFound"


def test_post_creates_a_named_job_and_is_recorded_with_its_body(
    sandbox: SandboxKubeAPI, api_client: client.ApiClient
) -> None:
    batch = client.BatchV1Api(api_client)
    body = client.V1Job.from_dict(
        {
            "metadata": {"generateName": "backfill-", "labels": {"team": "ml"}},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "busybox:1.36"}],
                    }
                }
            },
        }
    )

    created = batch.create_namespaced_job(NS, body)
    with pytest.raises(client.ApiException) as duplicate:
        batch.create_namespaced_job(
            NS,
            client.V1Job.from_dict(
                {**body.to_dict(serialize=True), "metadata": {"name": created.metadata.name}}
            ),
        )

    assert re.fullmatch(r"backfill-[a-z]{5}", created.metadata.name)
    assert created.metadata.uid and created.metadata.namespace == NS
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": created.metadata.uid}
    assert created.status.succeeded == 1 and created.status.conditions[0].type == "Complete"
    assert duplicate.value.status == 409 and json.loads(duplicate.value.body)["reason"] == "AlreadyExists"
    post = sandbox.writes()[0]
    assert (post.method, post.path) == ("POST", f"/apis/batch/v1/namespaces/{NS}/jobs")
    assert post.body["metadata"] == {"generateName": "backfill-", "labels": {"team": "ml"}}
    pods = client.CoreV1Api(api_client).list_namespaced_pod(
        NS, label_selector=f"job-name={created.metadata.name}"
    )
    assert pods.items[0].metadata.labels["batch.kubernetes.io/job-name"] == created.metadata.name


def test_a_job_body_with_a_copied_selector_is_rejected_like_the_api_server_does(
    api_client: client.ApiClient,
) -> None:
    batch = client.BatchV1Api(api_client)
    original = batch.read_namespaced_job("feature-build-daily", NS)
    original.metadata = client.V1ObjectMeta(name="feature-build-daily-copy")

    with pytest.raises(client.ApiException) as invalid:
        batch.create_namespaced_job(NS, original)

    assert invalid.value.status == 422
    assert "`selector` not auto-generated" in json.loads(invalid.value.body)["message"]


def test_patches_are_recorded_and_merged(sandbox: SandboxKubeAPI, api_client: client.ApiClient) -> None:
    sandbox.load(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "churn-model-server", "namespace": NS, "generation": 4},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "churn-model-server"}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "churn-model-server"}},
                    "spec": {
                        "containers": [
                            {"name": "server", "image": "registry.local/ml/serve:2.0.1"},
                            {"name": "metrics", "image": "registry.local/ml/metrics:1.0.0"},
                        ]
                    },
                },
            },
        }
    )
    apps, batch = client.AppsV1Api(api_client), client.BatchV1Api(api_client)
    memory = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "server", "resources": {"limits": {"memory": "2Gi"}}}]}
            }
        }
    }

    patched = apps.patch_namespaced_deployment("churn-model-server", NS, memory)
    batch.patch_namespaced_job(
        "feature-build-daily",
        NS,
        {"metadata": {"labels": {"escalation-bot/incident": "42"}}},
        _content_type="application/merge-patch+json",
    )

    containers = patched.spec.template.spec.containers
    assert [c.name for c in containers] == ["server", "metrics"]
    assert containers[0].resources.limits == {"memory": "2Gi"}
    assert apps.read_namespaced_deployment("churn-model-server", NS).metadata.generation == 5
    labels = batch.read_namespaced_job("feature-build-daily", NS).metadata.labels
    assert labels["escalation-bot/incident"] == "42" and labels["ml.platform/kind"] == "pipeline-step"
    writes = sandbox.writes()
    assert [(w.method, w.content_type) for w in writes] == [
        ("PATCH", "application/strategic-merge-patch+json"),
        ("PATCH", "application/merge-patch+json"),
    ]
    assert writes[0].body == memory


def test_created_jobs_end_the_way_the_rule_says() -> None:
    rule = succeed_if_memory_at_least("4Gi")
    with running_sandbox("training_oom", rule=rule) as (sandbox, gateway):
        source = gateway.read_job(NS, "train-churn-model")

        small = gateway.create_job(NS, job_rerun_body(source, suffix="l1", memory_limit="3Gi"))
        large = gateway.create_job(NS, job_rerun_body(source, suffix="l1", memory_limit="4Gi"))
        small_pod = gateway.list_job_pods(NS, small.metadata.name)[0]
        large_pod = gateway.list_job_pods(NS, large.metadata.name)[0]

        failed = next(c for c in small.status.conditions if c.type == "Failed")
        assert (failed.status, failed.reason) == ("True", "BackoffLimitExceeded")
        assert small_pod.status.container_statuses[0].state.terminated.reason == "OOMKilled"
        assert small_pod.status.container_statuses[0].state.terminated.exit_code == 137
        assert large.status.conditions[0].type == "Complete" and large.status.succeeded == 1
        assert large_pod.status.container_statuses[0].state.terminated.reason == "Completed"

        sandbox.on_job_created = always(
            "failed", log="Traceback (most recent call last):\nValueError: bad row\n"
        )
        broken = gateway.create_job(NS, job_rerun_body(source, suffix="l1"))
        broken_pod = gateway.list_job_pods(NS, broken.metadata.name)[0]
        assert broken_pod.status.container_statuses[0].state.terminated.exit_code == 1
        assert gateway.read_pod_log(NS, broken_pod.metadata.name).endswith("ValueError: bad row\n")


def test_a_pending_job_runs_for_the_given_number_of_reads() -> None:
    with running_sandbox("pipeline_failed", rule=lambda job: Outcome("succeeded", pending_reads=2)) as (
        _,
        gateway,
    ):
        created = gateway.create_job(
            NS, job_rerun_body(gateway.read_job(NS, "feature-build-daily"), suffix="l1")
        )

        reads = [gateway.read_job(NS, created.metadata.name).status for _ in range(3)]

    assert [s.active for s in reads] == [1, 1, None]
    assert [s.succeeded for s in reads] == [None, None, 1]


def test_a_hung_path_does_not_block_other_requests(sandbox: SandboxKubeAPI) -> None:
    gateway = KubeGateway.for_url(sandbox.url, request_timeout=30.0)
    sandbox.hang("/log")
    logs: list[str] = []
    reader = threading.Thread(
        target=lambda: logs.append(gateway.read_pod_log(NS, "feature-build-daily-q9w4z"))
    )
    reader.start()
    sandbox.wait_for(lambda r: r.path.endswith("/log"))

    job = gateway.read_job(NS, "feature-build-daily")
    assert job.metadata.name == "feature-build-daily"
    assert logs == []

    sandbox.release_hangs()
    reader.join(timeout=10)
    assert logs and "Parquet magic bytes" in logs[0]
    gateway.close()


def test_held_requests_answer_only_after_release(sandbox: SandboxKubeAPI) -> None:
    gateway = KubeGateway.for_url(sandbox.url)
    answered = threading.Event()
    sandbox.hold()
    reader = threading.Thread(target=lambda: (gateway.read_job(NS, "train-churn-model"), answered.set()))
    reader.start()
    sandbox.wait_for(lambda r: r.path.endswith("/jobs/train-churn-model"))

    assert not answered.is_set()
    sandbox.release()
    assert answered.wait(timeout=10)
    reader.join(timeout=10)
    gateway.close()


def test_injected_faults_become_integration_errors_naming_the_call(sandbox: SandboxKubeAPI) -> None:
    gateway = KubeGateway.for_url(sandbox.url)
    sandbox.fail("/jobs/train-churn-model", status=403)
    sandbox.fail("/pods", status=500)

    with pytest.raises(IntegrationError) as forbidden:
        gateway.read_job(NS, "train-churn-model")
    with pytest.raises(RetryableError) as broken:
        gateway.list_job_pods(NS, "train-churn-model")
    with pytest.raises(IntegrationError) as missing:
        gateway.read_job(NS, "nightly-export")

    assert not isinstance(forbidden.value, RetryableError)
    assert forbidden.value.status == 403
    assert str(forbidden.value).startswith(f"kubernetes: GET job {NS}/train-churn-model: 403 Forbidden (")
    assert 'cannot get resource "jobs" in API group "batch"' in str(forbidden.value)
    assert broken.value.status == 500
    assert str(missing.value).startswith(f"kubernetes: GET job {NS}/nightly-export: 404 NotFound")
    gateway.close()


def test_an_unreachable_api_server_is_retryable() -> None:
    with SandboxKubeAPI() as sandbox:
        url = sandbox.url
    gateway = KubeGateway.for_url(url, request_timeout=2.0)

    with pytest.raises(RetryableError) as refused:
        gateway.read_job(NS, "train-churn-model")

    assert f"GET job {NS}/train-churn-model" in str(refused.value)
    assert gateway.describe() == f"cluster sandbox ({url})"


def test_rerun_body_drops_generated_fields_and_raises_memory() -> None:
    with running_sandbox("training_oom") as (_, gateway):
        source = gateway.read_job(NS, "train-churn-model")

    body = job_rerun_body(
        source,
        suffix="l1",
        memory_limit="512Mi",
        extra_env={"LOG_LEVEL": "DEBUG"},
        labels={"escalation-bot/incident": "42"},
        annotations={"escalation-bot/rerun-of": "train-churn-model"},
    )

    assert body["metadata"]["generateName"] == "train-churn-model-l1-"
    assert "name" not in body["metadata"] and "uid" not in body["metadata"]
    assert "selector" not in body["spec"] and "status" not in body
    template_labels = body["spec"]["template"]["metadata"]["labels"]
    assert not {"controller-uid", "job-name", "batch.kubernetes.io/controller-uid"} & set(template_labels)
    assert template_labels["escalation-bot/incident"] == "42"
    trainer = body["spec"]["template"]["spec"]["containers"][0]
    assert trainer["resources"] == {
        "limits": {"cpu": "2", "memory": "512Mi"},
        "requests": {"cpu": "1", "memory": "512Mi"},
    }
    assert trainer["env"][-1] == {"name": "LOG_LEVEL", "value": "DEBUG"}
    assert (
        len(
            job_rerun_body({"metadata": {"name": "x" * 70}, "spec": {}}, suffix="l1")["metadata"][
                "generateName"
            ]
        )
        <= 58
    )


@pytest.mark.parametrize(
    ("quantity", "size", "formatted"),
    [
        ("2Gi", 2 * 2**30, "2Gi"),
        ("1536Mi", 1536 * 2**20, "1536Mi"),
        ("1.5Gi", 1536 * 2**20, "1536Mi"),
        ("512Ki", 512 * 2**10, "512Ki"),
        ("1G", 10**9, "1G"),
        ("500M", 5 * 10**8, "500M"),
        ("128k", 128 * 10**3, "125Ki"),
        ("1000", 1000, "1k"),
        ("1001", 1001, "1001"),
        ("16Ti", 16 * 2**40, "16Ti"),
    ],
)
def test_memory_quantities_round_trip(quantity: str, size: int, formatted: str) -> None:
    assert parse_memory(quantity) == size
    assert format_memory(size) == formatted


def test_a_bad_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="not a memory quantity"):
        parse_memory("two gigs")


def test_a_kubeconfig_file_points_the_gateway_at_its_cluster(
    sandbox: SandboxKubeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_kubeconfig(tmp_path / "kubeconfig", sandbox.url, cluster="staging")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    gateway = connect(path, KubernetesSettings(cluster_name="staging")).gateway
    assert gateway is not None
    pod = gateway.read_pod(NS, "train-churn-model-x7k2p")

    assert pod.status.container_statuses[0].state.terminated.reason == "OOMKilled"
    assert gateway.describe() == f"cluster staging ({sandbox.url})"
    assert sandbox.requests[-1].path == f"/api/v1/namespaces/{NS}/pods/train-churn-model-x7k2p"
    missing = connect(str(tmp_path / "missing"), KubernetesSettings())
    assert missing.gateway is None and "cannot load it" in missing.problem
    assert connect(None, KubernetesSettings()) == Connection(None, "")  # neither KUBECONFIG nor a pod
    gateway.close()
