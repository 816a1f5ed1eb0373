"""MLflow registry webhooks: sent by a real `mlflow server`, verified, deduplicated, made incidents."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from mlflow import MlflowClient
from sqlmodel import Session, select

from bot.sandbox.world import MLFLOW_WEBHOOK_SECRET, SandboxWorld, http
from bot.store.tables import Alert, Incident
from bot.web import mlflow_signature
from tests.mlflow_server import MlflowServer

pytestmark = pytest.mark.slow


def alerts_stored(world: SandboxWorld) -> list[Alert]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Alert).where(Alert.source == "mlflow")))


def wait_for_alert(world: SandboxWorld, timeout: float = 30.0) -> list[Alert]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # the server delivers from its own worker; poll the database
        found = alerts_stored(world)
        if found:
            return found
        time.sleep(0.05)
    return []


def signed(
    body: bytes, delivery: str, stamp: int | None = None, secret: str = MLFLOW_WEBHOOK_SECRET
) -> dict[str, str]:
    ts = str(stamp if stamp is not None else int(time.time()))
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": ts,
        "X-MLflow-Signature": mlflow_signature(secret, delivery, ts, body),
    }


def test_a_real_mlflow_server_delivers_a_failed_validation_tag_and_it_becomes_an_incident(
    world: SandboxWorld, mlflow_server: MlflowServer
) -> None:
    client = MlflowClient(tracking_uri=mlflow_server.url)
    model = f"churn-{uuid.uuid4().hex[:6]}"
    client.create_registered_model(model)
    run = client.create_run(client.create_experiment(f"webhook-{model}"))
    version = client.create_model_version(model, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.create_webhook(
        name=f"bot-{model}",
        url=f"{world.url}/alerts/mlflow",
        events=["model_version_tag.set"],
        secret=MLFLOW_WEBHOOK_SECRET,
    )
    client.set_model_version_tag(model, version.version, "validation_status", "failed")

    [alert] = wait_for_alert(world)
    assert alert.labels["model"] == model and alert.labels["model_version"] == str(version.version)
    world.settle()
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        [incident] = s.exec(select(Incident)).all()
    assert incident.category == "model_registration_failed"
    [root] = world.slack.messages("#ml-alerts")
    assert model in root["text"] and "model registration failed" in root["text"]


def test_signatures_stale_timestamps_and_retried_deliveries(world: SandboxWorld) -> None:
    body = json.dumps(
        {
            "entity": "model_version_tag",
            "action": "set",
            "timestamp": "2026-11-26T09:00:00+00:00",
            "data": {"name": "fraud", "version": "3", "key": "validation_status", "value": "failed"},
        }
    ).encode()
    url = world.url + "/alerts/mlflow"
    assert http("POST", url, body, {**signed(body, "d-1"), "X-MLflow-Signature": "v1,AAAA"}).status == 401
    assert http("POST", url, body, signed(body, "d-1", int(time.time()) - 600)).status == 401
    assert http("POST", url, body, signed(body, "d-1", secret="wrong")).status == 401
    assert alerts_stored(world) == []

    first = http("POST", url, body, signed(body, "d-1"))
    assert first.status == 202 and first.json()["opened"] == [1]
    again = http("POST", url, body, signed(body, "d-1"))  # MLflow retries a delivery it thinks failed
    assert again.status == 200 and again.json()["duplicate"] == "d-1"
    assert len(alerts_stored(world)) == 1

    harmless = json.dumps(
        {
            "entity": "registered_model",
            "action": "created",
            "timestamp": "2026-11-26T09:00:00Z",
            "data": {"name": "fraud", "tags": {}, "description": ""},
        }
    ).encode()
    ignored = http("POST", url, harmless, signed(harmless, "d-2"))
    assert ignored.status == 200 and ignored.json()["accepted"] == 0


def test_concurrent_copies_of_one_delivery_store_one_alert(world: SandboxWorld) -> None:
    body = json.dumps(
        {
            "entity": "model_version_tag",
            "action": "set",
            "timestamp": "2026-11-26T09:00:00+00:00",
            "data": {"name": "churn", "version": "7", "key": "validation_status", "value": "failed"},
        }
    ).encode()
    headers = signed(body, "d-concurrent")
    answers: list[int] = []
    start = threading.Barrier(8)

    def send() -> None:
        start.wait()
        answers.append(http("POST", world.url + "/alerts/mlflow", body, headers).status)

    senders = [threading.Thread(target=send) for _ in range(8)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    assert sorted(answers) == [200] * 7 + [202]
    assert len(alerts_stored(world)) == 1
