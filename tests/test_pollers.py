"""Pollers: failed Kubernetes Jobs (sandbox API server) and failed MLflow runs (a real `mlflow server`)
become incidents once each; a poll that fails is retried, reported, and covered by the next poll."""

from __future__ import annotations

import copy
import logging
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session, select

from bot.core.clock import FakeClock
from bot.sandbox.world import DEMO_CONFIG, SandboxWorld, http
from bot.store.tables import Alert, Incident, PollCursor
from tests.mlflow_server import MlflowServer
from tests.world_views import jobs_polls

NS = "ml-pipelines"
ALERTS = "#ml-alerts"
JOBS_PATH = f"/apis/batch/v1/namespaces/{NS}/jobs"


def config(**intake: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(DEMO_CONFIG)
    cfg["intake"] = {"pollers": intake}
    return cfg


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(
    name: str, at: datetime, condition: str = "Failed", reason: str = "BackoffLimitExceeded", **meta: Any
) -> dict[str, Any]:
    """A Job as the API server returns it once it has finished (`condition` True at `at`)."""
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    cond = {"status": "True", "lastProbeTime": stamp(at), "lastTransitionTime": stamp(at)}
    if condition == "Failed":
        cond |= {"reason": reason, "message": f"Job failed: {reason}"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS, "uid": uid, "creationTimestamp": stamp(at), **meta},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "step", "image": "busybox"}]}
            },
        },
        "status": {"startTime": stamp(at), "conditions": [{"type": condition, **cond}]},
    }


def incidents(world: SandboxWorld) -> list[Incident]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Incident).order_by(Incident.id)))  # type: ignore[arg-type]


def alerts(world: SandboxWorld) -> list[Alert]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Alert).order_by(Alert.id)))  # type: ignore[arg-type]


def metric(world: SandboxWorld, name: str, **labels: str) -> float:
    """A sample from GET /metrics, as Prometheus scrapes it (0 when the series does not exist yet)."""
    body = http("GET", world.url + "/metrics").body.decode()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == f"{name}_total" and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def list_job_calls(world: SandboxWorld) -> int:
    return sum(1 for r in world.kube.requests if r.method == "GET" and r.path == JOBS_PATH)


@pytest.fixture
def kube_world(clock: FakeClock) -> Iterator[SandboxWorld]:
    """A world on a fake clock at 09:00; the sandbox's recorded Jobs failed hours earlier."""
    with SandboxWorld(clock=clock, config=config(kubernetes_failed_jobs={"interval": "1m"})) as w:
        yield w


# -- Kubernetes -------------------------------------------------------------------------------------------


def test_a_failed_job_becomes_one_incident_and_later_polls_and_restarts_do_not_repeat_it(
    kube_world: SandboxWorld, clock: FakeClock
) -> None:
    world, now = kube_world, clock.now()
    world.kube.load(job("nightly-export", now - timedelta(seconds=20), reason="DeadlineExceeded"))
    world.kube.load(job("nightly-report", now - timedelta(seconds=10), condition="Complete"))
    world.kube.load(job("backfill-2025", now - timedelta(hours=2)))  # before the first poll's window
    assert world.bot is not None
    [report] = jobs_polls(world)
    clock.advance(60)
    again = world.bot.pollers.poll_kube_jobs()
    world.stop_bot()
    world.start_bot()  # the cursor is in the database, not in the process
    clock.advance(60)
    after_restart = world.bot.pollers.poll_kube_jobs()
    [incident] = incidents(world)
    [alert] = alerts(world)
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, "nightly-export"))
    assert (report.outcome, report.ingested, report.opened) == ("ok", 1, [incident.id])
    assert (again.ingested, after_restart.ingested) == (0, 0)
    assert incident.fingerprint == f"k8s-job:{NS}/nightly-export/{uid}"
    assert incident.source == "kube_poll"
    assert incident.title == f"Job {NS}/nightly-export failed: DeadlineExceeded"
    assert incident.category == "orchestration_timeout"
    assert incident.target == {"namespace": NS, "job": "nightly-export", "cluster": "sandbox"}
    assert alert.labels == {
        "namespace": NS,
        "job_name": "nightly-export",
        "reason": "DeadlineExceeded",
        "cluster": "sandbox",
    }
    assert incident.alert_count == 1
    assert (
        metric(world, "escalation_polls", poller="kubernetes_failed_jobs", outcome="ok") == 1
    )  # since restart


def test_a_500_is_retried_then_reported_and_the_job_it_hid_is_found_after_recovery(
    kube_world: SandboxWorld, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    world = kube_world
    assert world.bot is not None
    pollers = world.bot.pollers
    assert pollers.poll_kube_jobs().outcome == "ok"  # 09:00, nothing failed
    world.kube.load(job("score-batch", clock.now() + timedelta(seconds=10)))
    world.kube.fail("/jobs", 500)
    clock.advance(600)
    before = list_job_calls(world)
    with caplog.at_level(logging.WARNING, logger="bot.services.pollers"):
        failed = pollers.poll_kube_jobs()
    tries = list_job_calls(world) - before
    world.kube.clear_faults()
    clock.advance(600)  # a poll that skipped the failed window would now look back to 09:15 only
    recovered = pollers.poll_kube_jobs()
    [incident] = incidents(world)
    assert failed.outcome == "error" and failed.opened == []
    assert tries == 3
    assert "500" in failed.errors[0]
    assert any("500" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert metric(world, "escalation_poll_errors", poller="kubernetes_failed_jobs") == 1
    assert metric(world, "escalation_polls", poller="kubernetes_failed_jobs", outcome="error") == 1
    assert recovered.outcome == "ok" and recovered.opened == [incident.id]
    assert incident.title == f"Job {NS}/score-batch failed: BackoffLimitExceeded"


def test_a_403_is_reported_at_once_without_retrying_and_the_cursor_stays(
    kube_world: SandboxWorld, clock: FakeClock
) -> None:
    world = kube_world
    assert world.bot is not None
    world.kube.fail("/jobs", 403)
    report = world.bot.pollers.poll_kube_jobs()
    with Session(world.bot.services.engine) as s:
        cursor = s.get(PollCursor, f"kubernetes_failed_jobs/{NS}")
    assert report.outcome == "error" and "Forbidden" in report.errors[0]
    assert list_job_calls(world) == 1
    assert metric(world, "escalation_poll_errors", poller="kubernetes_failed_jobs") == 1
    assert cursor is not None and cursor.lease_until is None
    assert cursor.last_polled_at == cursor.window_start == clock.now() - timedelta(minutes=1)


def test_polled_jobs_get_their_level_1_report_and_the_bots_own_failed_reruns_are_not_reported() -> None:
    clock = FakeClock(datetime(2026, 11, 26, 4, 10, tzinfo=UTC))  # just after the recorded Jobs failed
    with SandboxWorld(clock=clock, config=config(kubernetes_failed_jobs={"interval": "2h"})) as world:
        assert world.bot is not None
        [report] = jobs_polls(world)
        world.settle()
        roots = world.slack.messages(ALERTS)
        threads = {r["text"].split("\n")[0]: world.slack.thread(ALERTS, r["ts"]) for r in roots}
        reruns = [w.body for w in world.kube.writes() if w.method == "POST"]
        clock.advance(60)
        [later] = jobs_polls(world)
        opened = incidents(world)
    assert report.ingested == 2 and len(opened) == 2
    assert {i.category for i in opened} == {
        "pipeline_step_failed",
        "training_crash",
    }  # OOMKilled from its pods
    assert len(roots) == 2
    for first_line, thread in threads.items():
        assert "failed: BackoffLimitExceeded" in first_line
        assert any(m["text"].startswith("*Level 1 report") for m in thread)
    assert reruns, "Level 1 re-ran the Jobs, and at least one re-run failed again"
    assert later.found == 0 and later.ingested == 0


def test_the_scheduler_polls_each_enabled_poller_at_its_interval_and_settle_never_polls(
    clock: FakeClock,
) -> None:
    cfg = config(kubernetes_failed_jobs={"interval": "45s"}, mlflow_failed_runs={"enabled": False})
    with SandboxWorld(clock=clock, config=cfg, mlflow_url="http://127.0.0.1:9") as world:
        assert world.bot is not None
        world.settle()
        polled_by_settle = list_job_calls(world)
        world.bot.start_background()
        assert world.bot.scheduler is not None
        kube_job = world.bot.scheduler.get_job("poll_kube_jobs")
        mlflow_job = world.bot.scheduler.get_job("poll_mlflow_runs")
        world.kube.wait_for(lambda r: r.method == "GET" and r.path == JOBS_PATH)
    assert polled_by_settle == 0
    assert mlflow_job is None  # disabled in app.yaml
    assert kube_job is not None and kube_job.trigger.interval == timedelta(seconds=45)
    assert (kube_job.coalesce, kube_job.max_instances) == (True, 1)


def test_a_scope_another_replica_is_polling_is_left_to_it(kube_world: SandboxWorld, clock: FakeClock) -> None:
    world = kube_world
    assert world.bot is not None
    world.kube.load(job("nightly-export", clock.now() - timedelta(seconds=20)))
    with Session(world.bot.services.engine) as s:  # as a poll in another replica leaves it mid-way
        start = clock.now() - timedelta(minutes=1)
        s.add(
            PollCursor(
                name=f"kubernetes_failed_jobs/{NS}",
                window_start=start,
                last_polled_at=start,
                lease_until=clock.now() + timedelta(minutes=5),
            )
        )
        s.commit()
    busy = world.bot.pollers.poll_kube_jobs()
    calls_while_busy = list_job_calls(world)
    clock.advance(600)  # that replica died: its lease runs out and this one takes over from its cursor
    taken_over = world.bot.pollers.poll_kube_jobs()
    assert (busy.outcome, calls_while_busy) == ("skipped", 0)
    assert taken_over.outcome == "ok" and len(taken_over.opened) == 1


@pytest.mark.postgres
def test_on_postgresql_a_failed_job_is_ingested_once(pg_url: str, clock: FakeClock) -> None:
    cfg = config(kubernetes_failed_jobs={"interval": "1m"})
    with SandboxWorld(database_url=pg_url, clock=clock, config=cfg) as world:
        world.kube.load(job("pg-export", clock.now() - timedelta(seconds=5)))
        assert world.bot is not None
        first = world.bot.pollers.poll_kube_jobs()
        clock.advance(30)
        second = world.bot.pollers.poll_kube_jobs()
        opened = incidents(world)
    assert (first.ingested, second.ingested, len(opened)) == (1, 0, 1)


# -- MLflow -----------------------------------------------------------------------------------------------


def terminated_run(client: Any, experiment_id: str, name: str, status: str, **kw: Any) -> str:
    run = client.create_run(experiment_id, run_name=name, tags=kw.pop("tags", {}))
    client.set_terminated(run.info.run_id, status, **kw)
    return str(run.info.run_id)


@pytest.fixture
def experiment(mlflow_server: MlflowServer) -> tuple[Any, str, str]:
    """An MLflow client and a fresh experiment (the server is shared by the whole session)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url)
    name = f"churn-training-{uuid.uuid4().hex[:8]}"
    return client, client.create_experiment(name), name


def test_failed_and_killed_runs_become_incidents_once_and_finished_or_old_runs_do_not(
    mlflow_server: MlflowServer, experiment: tuple[Any, str, str]
) -> None:
    client, eid, exp = experiment
    hour_ago = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
    terminated_run(client, eid, "train-old", "FAILED", end_time=hour_ago)
    failed = terminated_run(
        client,
        eid,
        "train-churn",
        "FAILED",
        tags={"job_name": "train-churn-model", "namespace": NS, "gpu": "a100"},
    )
    killed = terminated_run(client, eid, "train-fraud", "KILLED")
    terminated_run(client, eid, "train-ok", "FINISHED")
    client.create_run(eid, run_name="train-running")
    cfg = config(mlflow_experiments=[exp])
    with SandboxWorld(mlflow_url=mlflow_server.url, config=cfg) as world:
        assert world.bot is not None
        first = world.bot.pollers.poll_mlflow_runs()
        second = world.bot.pollers.poll_mlflow_runs()
        later = terminated_run(client, eid, "train-churn-retry", "FAILED")
        third = world.bot.pollers.poll_mlflow_runs()
        by_fp = {i.fingerprint: i for i in incidents(world)}
        labels = {a.fingerprint: a.labels for a in alerts(world)}
    assert (first.ingested, second.ingested, third.ingested) == (2, 0, 1)
    assert set(by_fp) == {f"mlflow-run:{r}" for r in (failed, killed, later)}
    churn = by_fp[f"mlflow-run:{failed}"]
    assert churn.source == "mlflow_poll"
    assert churn.title == f"MLflow run train-churn FAILED in {exp}"
    assert by_fp[f"mlflow-run:{killed}"].title == f"MLflow run train-fraud KILLED in {exp}"
    assert labels[churn.fingerprint] == {
        "run_id": failed,
        "experiment": exp,
        "run_name": "train-churn",
        "status": "FAILED",
        "job_name": "train-churn-model",
        "namespace": NS,
    }
    assert churn.target == {"namespace": NS, "job": "train-churn-model", "run_id": failed}


def test_a_failed_mlflow_run_gets_its_level_1_report_in_slack(
    mlflow_server: MlflowServer, experiment: tuple[Any, str, str]
) -> None:
    client, eid, exp = experiment
    terminated_run(
        client, eid, "train-churn", "FAILED", tags={"job_name": "train-churn-model", "namespace": NS}
    )
    with SandboxWorld(mlflow_url=mlflow_server.url, config=config(mlflow_experiments=[exp])) as world:
        assert world.bot is not None
        reports = world.bot.pollers.poll_all()
        world.settle()
        [root] = world.slack.messages(ALERTS)
        thread = world.slack.thread(ALERTS, root["ts"])
    assert {r.poller: r.ingested for r in reports} == {
        "mlflow_failed_runs": 1,
        "kubernetes_failed_jobs": 0,
        "argo_failed_workflows": 0,
    }
    assert f"MLflow run train-churn FAILED in {exp}" in root["text"]
    assert any(m["text"].startswith("*Level 1 report") for m in thread)


def test_an_unreachable_tracking_server_is_retried_reported_and_leaves_the_cursor(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    cfg = config(mlflow_failed_runs={"interval": "2m"})
    cfg["mlflow"] = {"max_retries": 0, "request_timeout": "2s"}
    with SandboxWorld(mlflow_url=dead, config=cfg, clock=clock) as world:
        assert world.bot is not None
        with caplog.at_level(logging.WARNING, logger="bot.services.pollers"):
            report = world.bot.pollers.poll_mlflow_runs()
        with Session(world.bot.services.engine) as s:
            cursor = s.get(PollCursor, "mlflow_failed_runs")
        errors = metric(world, "escalation_poll_errors", poller="mlflow_failed_runs")
    assert report.outcome == "error" and "mlflow" in report.errors[0]
    assert any(
        r.levelno == logging.WARNING and "mlflow_failed_runs" in r.getMessage() for r in caplog.records
    )
    assert errors == 1
    assert cursor is not None and cursor.last_polled_at == cursor.window_start
