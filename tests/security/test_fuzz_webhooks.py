"""Alert webhooks take anything a sender can put on the wire and answer 202 or a 4xx that names what is
wrong; never a 5xx or a traceback, nothing stored for a refusal, and the bot keeps serving.

Each example is a real HTTP request to a running sandbox bot (one per module)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.sandbox.slack_driver import Response
from bot.sandbox.world import MLFLOW_WEBHOOK_SECRET, WEBHOOK_TOKEN, SandboxWorld, alertmanager_payload
from bot.web import mlflow_signature
from tests.security.helpers import (
    Crashes,
    assert_no_server_error,
    assert_refusal_names_the_problem,
    assert_still_serving,
    examples,
    note_status,
    row_counts,
    send,
)
from tests.security.strategies import (
    alertmanager_bodies,
    deep_nesting,
    generic_bodies,
    json_values,
    mlflow_bodies,
    mutated,
    odd_bodies,
    to_json,
)

WEBHOOKS = ("/alerts/alertmanager", "/alerts/generic", "/alerts/mlflow")


def post_mlflow(world: SandboxWorld, body: bytes, delivery: str = "", stamp: str | None = None) -> Response:
    """A delivery signed as MLflow signs it (HMAC-SHA256 over `<id>.<timestamp>.<body>`)."""
    delivery = delivery or f"d-{time.monotonic_ns()}"
    stamp = stamp if stamp is not None else str(int(time.time()))
    headers: list[tuple[str, str | bytes]] = [
        ("Content-Type", "application/json"),
        ("X-MLflow-Delivery-Id", delivery),
        ("X-MLflow-Timestamp", stamp),
        ("X-MLflow-Signature", mlflow_signature(MLFLOW_WEBHOOK_SECRET, delivery, stamp, body)),
    ]
    return send(world, "/alerts/mlflow", body, headers)


def post(world: SandboxWorld, path: str, body: bytes) -> Response:
    if path == "/alerts/mlflow":
        return post_mlflow(world, body)
    headers: list[tuple[str, str | bytes]] = [
        ("Content-Type", "application/json"),
        ("Authorization", f"Bearer {WEBHOOK_TOKEN}"),
    ]
    return send(world, path, body, headers)


def check_answer(
    world: SandboxWorld,
    crashes: Crashes,
    mark: int,
    response: Response,
    before: dict[str, int],
    sent: Any,
) -> dict[str, Any]:
    """What every webhook answer must be: no 5xx, no traceback, no crash, still serving, and a refusal
    is a JSON 4xx that stored nothing. Returns the JSON answer."""
    what = f"request {sent!r:.300}"
    note_status(response)
    assert_no_server_error(response, what)
    assert not crashes.since(mark), f"{what}: the bot logged a crash: {crashes.since(mark)[-1]}"
    assert_still_serving(world)
    if response.status >= 400:
        answer = assert_refusal_names_the_problem(response, what)
        assert row_counts(world) == before, f"{what}: a refused request stored something"
        return answer
    assert response.status in (200, 202), what
    answer = response.json()
    assert isinstance(answer, dict), what
    return answer


def assert_400_names_the_field(response: Response, sent: Any) -> None:
    """A webhook's 400 says which field is wrong (`field`), as the design asks of every refusal."""
    if response.status == 400:
        answer = response.json()
        assert isinstance(answer.get("field"), str) and answer["field"], f"{sent!r:.300}: {answer}"


def assert_all_accounted_for(
    world: SandboxWorld, before: dict[str, int], answer: Any, sent: list[Any]
) -> None:
    """Every alert of an accepted delivery is accepted or refused by index, and what was accepted is
    stored before the answer: as alerts, or as the queued delivery they will be applied from."""
    refused = answer.get("refused", [])
    assert answer["accepted"] + len(refused) == len(sent), answer
    assert all(r["field"].startswith(f"alerts[{r['index']}]") or len(sent) == 1 for r in refused), refused
    after = row_counts(world)
    if answer.get("queued"):
        assert after["deliveries"] - before["deliveries"] == 1, "the delivery is stored before the answer"
    else:
        assert after["alerts"] - before["alerts"] == answer["accepted"], "stored before the answer"


# ---- Alertmanager -------------------------------------------------------------------------------------


@settings(max_examples=examples(120))
@given(payload=st.one_of(alertmanager_bodies(), mutated(alertmanager_bodies()), json_values()))
@example(payload=alertmanager_payload([{"labels": {"alertname": "\ud800"}}]))
@example(payload={**alertmanager_payload([{"labels": {"alertname": "Huge"}}]), "truncatedAlerts": 2**63})
def test_any_alertmanager_delivery_is_accepted_or_refused_naming_the_field(
    fuzz_world: SandboxWorld, crashes: Crashes, payload: Any
) -> None:
    before, mark = row_counts(fuzz_world), len(crashes)
    response = post(fuzz_world, "/alerts/alertmanager", to_json(payload))

    answer = check_answer(fuzz_world, crashes, mark, response, before, payload)

    if response.status == 202:
        assert_all_accounted_for(fuzz_world, before, answer, payload["alerts"])


@settings(max_examples=examples(60))
@given(payload=st.one_of(alertmanager_bodies(), mutated(alertmanager_bodies()), json_values()))
@example(payload={"\ud800": None})
def test_every_refused_alertmanager_delivery_names_the_field(
    fuzz_world: SandboxWorld, crashes: Crashes, payload: Any
) -> None:
    response = post(fuzz_world, "/alerts/alertmanager", to_json(payload))

    assert_400_names_the_field(response, payload)


# ---- generic webhook ----------------------------------------------------------------------------------


@settings(max_examples=examples(120))
@given(payload=st.one_of(generic_bodies, mutated(generic_bodies), json_values()))
@example(payload={"title": "Nightly job failed", "text": "\ud800"})
def test_any_generic_alert_is_accepted_or_refused_naming_the_field(
    fuzz_world: SandboxWorld, crashes: Crashes, payload: Any
) -> None:
    before, mark = row_counts(fuzz_world), len(crashes)
    response = post(fuzz_world, "/alerts/generic", to_json(payload))

    answer = check_answer(fuzz_world, crashes, mark, response, before, payload)

    if response.status == 202:
        alerts = payload["alerts"] if isinstance(payload, dict) and "alerts" in payload else [payload]
        assert_all_accounted_for(fuzz_world, before, answer, alerts)


@settings(max_examples=examples(60))
@given(payload=st.one_of(generic_bodies, mutated(generic_bodies), json_values()))
@example(payload=None)
def test_every_refused_generic_alert_names_the_field(
    fuzz_world: SandboxWorld, crashes: Crashes, payload: Any
) -> None:
    response = post(fuzz_world, "/alerts/generic", to_json(payload))

    assert_400_names_the_field(response, payload)


# ---- MLflow registry webhook --------------------------------------------------------------------------


@settings(max_examples=examples(100))
@given(payload=st.one_of(mlflow_bodies(), mutated(mlflow_bodies()), json_values()))
@example(payload={"entity": "model_version", "action": "updated", "data": True})
def test_any_signed_mlflow_delivery_is_accepted_ignored_or_refused_naming_the_field(
    fuzz_world: SandboxWorld, crashes: Crashes, payload: Any
) -> None:
    before, mark = row_counts(fuzz_world), len(crashes)
    response = post(fuzz_world, "/alerts/mlflow", to_json(payload))

    check_answer(fuzz_world, crashes, mark, response, before, payload)


header_values = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=30),
    st.sampled_from(["", " ", "9" * 40, "-1", "1e9", "v1,", "v1,AAAA", "\t1"]),
    st.integers().map(str),
)


@settings(max_examples=examples(80))
@given(
    delivery=st.one_of(st.none(), header_values),
    stamp=st.one_of(st.none(), header_values, st.integers(-(10**30), 10**30).map(str)),
    signature=st.one_of(st.none(), header_values),
    payload=mlflow_bodies(),
)
def test_an_mlflow_delivery_with_missing_or_wrong_signature_headers_gets_401_and_stores_nothing(
    fuzz_world: SandboxWorld,
    crashes: Crashes,
    delivery: str | None,
    stamp: str | None,
    signature: str | None,
    payload: dict[str, Any],
) -> None:
    body = to_json(payload)
    headers: list[tuple[str, str | bytes]] = [("Content-Type", "application/json")]
    for name, value in (
        ("X-MLflow-Delivery-Id", delivery),
        ("X-MLflow-Timestamp", stamp),
        ("X-MLflow-Signature", signature),
    ):
        if value is not None:
            headers.append((name, value.encode("latin-1")))
    before, mark = row_counts(fuzz_world), len(crashes)

    response = send(fuzz_world, "/alerts/mlflow", body, headers)

    check_answer(fuzz_world, crashes, mark, response, before, headers)
    assert response.status == 401, f"{headers}: {response.status} {response.text}"


# ---- bodies that are not JSON, or JSON no decoder should recurse into ----------------------------------


@settings(max_examples=examples(60))
@given(path=st.sampled_from(WEBHOOKS), body=odd_bodies)
def test_a_webhook_body_that_is_not_an_alert_gets_a_4xx_and_stores_nothing(
    fuzz_world: SandboxWorld, crashes: Crashes, path: str, body: bytes
) -> None:
    before, mark = row_counts(fuzz_world), len(crashes)
    response = post(fuzz_world, path, body)

    check_answer(fuzz_world, crashes, mark, response, before, (path, body[:200]))
    assert 400 <= response.status < 500, f"{path} {body[:200]!r}: {response.status} {response.text}"


@pytest.mark.parametrize("path", WEBHOOKS)
@pytest.mark.parametrize(
    "body",
    [
        deep_nesting(100_000),
        b'{"alerts":' + deep_nesting(100_000) + b"}",
        b'{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"firing","labels":{},'
        b'"annotations":{},"x":' + deep_nesting(50_000) + b"}]}",
        b'{"entity":"model_version","action":"created","data":' + deep_nesting(100_000) + b"}",
    ],
    ids=["100000_nested_lists", "nested_alerts", "nested_extra_field", "nested_mlflow_data"],
)
def test_deeply_nested_json_gets_400(
    fuzz_world: SandboxWorld, crashes: Crashes, path: str, body: bytes
) -> None:
    before, mark = row_counts(fuzz_world), len(crashes)
    response = post(fuzz_world, path, body)

    check_answer(fuzz_world, crashes, mark, response, before, (path, body[:80]))
    assert response.status == 400, f"{path}: {response.status} {response.text}"


HUGE_NUMBERS = {
    "truncatedAlerts_10e300": {"truncatedAlerts": 10**300},
    "truncatedAlerts_2e63": {"truncatedAlerts": 2**63},
    "truncatedAlerts_1e400_float": {"truncatedAlerts": float("inf")},
    "alert_count_in_labels": {"commonLabels": {"count": 10**300}},
}


@pytest.mark.parametrize("change", list(HUGE_NUMBERS))
def test_huge_numbers_in_an_alertmanager_delivery_get_202_or_400(
    fuzz_world: SandboxWorld, crashes: Crashes, change: str
) -> None:
    payload = {
        "version": "4",
        "groupKey": "g",
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": f"Huge{change}"}, "annotations": {}}],
        **HUGE_NUMBERS[change],
    }
    before, mark = row_counts(fuzz_world), len(crashes)
    response = post(fuzz_world, "/alerts/alertmanager", json.dumps(payload).encode())

    check_answer(fuzz_world, crashes, mark, response, before, payload)
