"""What senders can do to intake: secrets outside title and text, text that pings people, NUL bytes,
deep nesting, odd headers and ids, oversized deliveries, starving the MLflow route, and run ids that
look like status codes."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlmodel import Session, select

from bot.core.classify import classify
from bot.core.clock import FakeClock
from bot.core.models import AlertIn, Category
from bot.sandbox.world import (
    COORDINATOR,
    DEMO_CONFIG,
    MLFLOW_WEBHOOK_SECRET,
    PIPELINE_ALERT,
    SandboxWorld,
    alertmanager_payload,
    http,
)
from bot.store.tables import Alert, Incident
from bot.web import mlflow_signature
from tests.shown import shown
from tests.world_views import jobs_polls

SECRETS = {
    "slack": "xoxb-1111-2222-abcdefabcdef",
    "password_url": "hunter2",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "assignment": "Tr0ub4dor&3",
}
COORD, ALERTS = "#data-coordinator", "#ml-alerts"


def every_row(world: SandboxWorld) -> str:
    """Every row of every table, as text."""
    assert world.bot is not None
    engine = world.bot.services.engine
    out = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                out.append(f"{table}: {row!r}")
    return "\n".join(out)


def everything_slack_shows(world: SandboxWorld) -> str:
    return "\n".join(json.dumps(call.args) for call in world.slack.calls)


def incidents(world: SandboxWorld) -> list[Incident]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Incident).order_by(Incident.id)))


def alerts(world: SandboxWorld) -> list[Alert]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Alert).order_by(Alert.id)))


# -- 2. secrets anywhere in an alert are redacted once, at intake ----------------------------------------


def test_secrets_in_labels_annotations_and_the_raw_payload_reach_no_table_message_or_log(
    world: SandboxWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alert: dict[str, Any] = {
        **PIPELINE_ALERT,
        "labels": {**PIPELINE_ALERT["labels"], "db": f"postgres://etl:{SECRETS['password_url']}@db/x"},
        "annotations": {
            **PIPELINE_ALERT["annotations"],
            "impact": f"features stale; bot token {SECRETS['slack']}",
            "request": f"rotate {SECRETS['aws']} please",
            "runbook": f"password={SECRETS['assignment']}",
        },
    }
    payload = alertmanager_payload([alert])
    payload["alerts"][0]["extra"] = {"env": {"AWS_ACCESS_KEY_ID": SECRETS["aws"]}}
    assert world.post_alerts(payload).status == 202
    world.settle()
    assert world.driver is not None
    world.driver.slash_command("/escalation", "show 1", COORDINATOR, COORD)
    answered = world.driver.last_sent
    try:  # a traceback that carries a secret is redacted too
        raise RuntimeError(f"could not reach postgres://etl:{SECRETS['password_url']}@db/x")
    except RuntimeError:
        logging.getLogger("bot.test").exception("failed with %s", SECRETS["slack"])

    [l2] = world.slack.messages(COORD)
    assert "Impact: features stale; bot token [REDACTED]" in shown(l2)
    assert "Request: rotate [REDACTED] please" in l2["text"]
    assert answered is not None
    stored, slack = every_row(world), everything_slack_shows(world)
    for name, secret in SECRETS.items():
        assert secret not in stored, f"{name} stored"
        assert secret not in slack, f"{name} reached Slack"
        assert secret not in caplog.text, f"{name} logged"
    assert "could not reach postgres://etl:[REDACTED]@db/x" in caplog.text  # the traceback is there


# -- 3. alert text is data: it cannot ping, reorder or reformat ------------------------------------------


def test_mentions_broadcasts_and_control_characters_in_an_alert_reach_slack_neutralised(
    world: SandboxWorld,
) -> None:
    title = "<@U0COORD> <!subteam^S0LEAD> <!channel> @here\x00 evil\u202etxt.exe ```rm -rf"
    alert = {**PIPELINE_ALERT, "annotations": {**PIPELINE_ALERT["annotations"], "summary": title}}
    assert world.post_alerts(alertmanager_payload([alert])).status == 202
    world.settle()

    [root] = world.slack.messages(ALERTS)
    [l2] = world.slack.messages(COORD)
    for message in (root, l2):
        raw, text = json.dumps(message), shown(message)
        for live in ("<@U0COORD>", "<!subteam^S0LEAD>", "<!channel>"):
            assert live not in raw
        assert "&lt;@U0COORD&gt;" in text
        assert "@here" not in text and "@\u2060here" in text
        assert "\\u0000" not in raw and "\u202e" not in text
        assert "```" not in text
    assert "<!subteam^S0COORD>" in l2["text"]  # the bot's own mention of the coordinators stays live


# -- 4. MLflow: unauthenticated senders cannot use up its rate limit -------------------------------------


def test_unsigned_mlflow_requests_are_refused_before_the_rate_limit_so_signed_ones_still_get_in() -> None:
    config = {**DEMO_CONFIG, "intake": {"rate_limits": {"mlflow": {"per_second": 0.01, "burst": 1}}}}
    with SandboxWorld(config=config) as world:
        body = json.dumps(
            {
                "entity": "model_version_tag",
                "action": "set",
                "timestamp": "2026-12-03T10:00:00Z",
                "data": {"name": "churn", "version": "3", "key": "validation", "value": "failed"},
            }
        ).encode()
        for _ in range(5):
            forged = http("POST", world.url + "/alerts/mlflow", body, {"X-MLflow-Delivery-Id": "d"})
            assert forged.status == 401
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-MLflow-Delivery-Id": "delivery-1",
            "X-MLflow-Timestamp": stamp,
            "X-MLflow-Signature": mlflow_signature(MLFLOW_WEBHOOK_SECRET, "delivery-1", stamp, body),
        }
        answer = http("POST", world.url + "/alerts/mlflow", body, headers)
        assert answer.status == 202, answer.text
        [inc] = incidents(world)
        assert inc.category == Category.MODEL_REGISTRATION_FAILED.value


# -- 6. NUL bytes and bad alerts in a batch ----------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_world(request: pytest.FixtureRequest) -> Iterator[SandboxWorld]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    with SandboxWorld(database_url=url) as w:
        yield w


def test_a_nul_byte_is_stored_written_out_and_one_bad_alert_is_refused_by_name_while_the_rest_are_stored(
    any_db_world: SandboxWorld,
) -> None:
    world = any_db_world
    good = {
        **PIPELINE_ALERT,
        "fingerprint": "0000000000000a01",
        "annotations": {"summary": "feature build failed\x00 at step 3", "impact": "x\ud800y"},
    }
    other = {**good, "fingerprint": "0000000000000a02", "labels": {**good["labels"], "job_name": "b\x00"}}
    payload = alertmanager_payload([good, other])
    payload["alerts"].insert(1, {"status": "firing", "labels": {"alertname": "Broken", "n": 7}})
    body = json.dumps(payload).encode()  # JSON escapes the NUL and the lone surrogate as \u0000, \ud800

    answer = world.post_alerts(body)

    assert answer.status == 202, answer.text
    result = answer.json()
    assert result["accepted"] == 2
    assert result["refused"] == [
        {
            "index": 1,
            "alert": "Broken",
            "field": "alerts[1].labels.n",
            "error": "input should be a valid string",
        }
    ]
    stored = alerts(world)
    assert [a.fingerprint for a in stored] == ["am:0000000000000a01", "am:0000000000000a02"]
    assert stored[0].title == "KubeJobFailed: feature build failed\\x00 at step 3"
    assert stored[0].annotations["impact"] == "x\\ud800y"
    assert stored[1].labels["job_name"] == "b\\x00"


def test_a_batch_where_every_alert_is_bad_is_refused_with_400_naming_the_first(world: SandboxWorld) -> None:
    payload = alertmanager_payload([PIPELINE_ALERT])
    payload["alerts"] = [{"status": "burning", "labels": {"alertname": "A"}}, {"labels": {}}]
    answer = world.post_alerts(payload)
    assert answer.status == 400
    assert answer.json()["field"] == "alerts[0].status"
    assert "(and 1 more)" in answer.json()["error"]
    assert alerts(world) == []


# -- 7. deep nesting, odd headers and odd ids get a 4xx or a clear message, never a 5xx -----------------


def nested(n: int) -> bytes:
    return b"[" * n + b"]" * n


@pytest.mark.parametrize("path", ["/alerts/alertmanager", "/alerts/generic"])
@pytest.mark.parametrize("levels", [40, 100_000])
def test_deeply_nested_json_gets_400(world: SandboxWorld, path: str, levels: int) -> None:
    answer = world.post_alerts(b'{"alerts": ' + nested(levels) + b"}", path=path)
    assert answer.status == 400, answer.text
    assert "nested deeper than 32 levels" in answer.json()["error"]
    assert http("GET", world.url + "/healthz").status == 200


def test_a_signed_slack_request_nested_too_deep_or_with_an_odd_timestamp_gets_a_4xx(
    world: SandboxWorld,
) -> None:
    assert world.driver is not None
    deep = b"payload=" + nested(100_000)
    answer = world.driver.raw(deep, {"Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= answer.status < 500, answer.text
    for stamp in ("soon", "1e9", "-1", "17²", "9" * 40):
        odd = world.driver.raw(
            b"{}", {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp}, sign=False
        )
        assert odd.status == 401, (stamp, odd.text)
    assert http("GET", world.url + "/healthz").status == 200


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"null", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"x"', "application/json"),
        (b"payload=null", "application/x-www-form-urlencoded"),
        (b"payload=%5B1%5D", "application/x-www-form-urlencoded"),
    ],
)
def test_a_signed_slack_body_that_is_not_an_object_gets_400(
    world: SandboxWorld, body: bytes, content_type: str
) -> None:
    assert world.driver is not None
    answer = world.driver.raw(body, {"Content-Type": content_type})
    assert answer.status == 400, answer.text
    assert http("GET", world.url + "/healthz").status == 200


@pytest.mark.parametrize("arg", ["99999999999999999999999", "²", "INC-0", "-3", "1.5", "INC-"])
def test_escalation_show_with_an_odd_id_answers_with_the_usage(world: SandboxWorld, arg: str) -> None:
    assert world.driver is not None
    answer = world.driver.slash_command("/escalation", f"show {arg}", COORDINATOR, COORD)
    assert answer.status == 200
    assert answer.text.startswith("Usage: /escalation show ID")


# -- 13. a cap on alerts per delivery --------------------------------------------------------------------


def test_a_delivery_over_the_alert_cap_is_refused_with_413_naming_the_cap_and_nothing_is_stored() -> None:
    config = {**DEMO_CONFIG, "intake": {"max_alerts_per_request": 3}}
    with SandboxWorld(config=config) as world:
        many = [{**PIPELINE_ALERT, "fingerprint": f"{i:016x}"} for i in range(4)]
        answer = world.post_alerts(alertmanager_payload(many))
        generic = world.post_alerts(
            {"alerts": [{"title": f"t{i}"} for i in range(4)]}, path="/alerts/generic"
        )
        ok = world.post_alerts(alertmanager_payload(many[:3]))

        assert answer.status == generic.status == 413
        assert "intake.max_alerts_per_request (3)" in answer.json()["error"]
        assert ok.status == 202 and ok.json()["accepted"] == 3
        assert len(alerts(world)) == 3


# -- 11. a run id is not a status code --------------------------------------------------------------------


def test_a_failed_mlflow_run_whose_id_holds_503_is_a_training_crash_not_a_tracking_outage() -> None:
    run_id = "5035a503c0de4503b503d503e503f503"
    polled = AlertIn(
        source="mlflow_poll",
        fingerprint=f"mlflow-run:{run_id}",
        status="firing",
        title="MLflow run churn-train FAILED in churn",
        text=f"Run churn-train ({run_id}) in experiment churn ended FAILED.",
        labels={"run_id": run_id, "experiment": "churn", "status": "FAILED"},
        category=Category.TRAINING_CRASH.value,
        category_reason="the MLflow run poller found run churn-train FAILED",
    )
    assert classify(polled).category is Category.TRAINING_CRASH
    # without the source's word, the rules no longer read three digits of a hex id as an HTTP status
    bare = AlertIn("generic", "f", "firing", f"MLflow run {run_id} needs a look")
    assert classify(bare).category is not Category.TRACKING_DISCONNECTED
    for meant in ("MLflow returned status 503", "mlflow: HTTP 502", "MLflow 504 Gateway Timeout"):
        assert classify(AlertIn("generic", "f", "firing", meant)).category is Category.TRACKING_DISCONNECTED
    for word in ("mlflow artifact download failed", "mlflow shutdown hook ran", "mlflow-run-5033 failed"):
        assert (
            classify(AlertIn("generic", "f", "firing", word)).category is not Category.TRACKING_DISCONNECTED
        )


# -- 10. the same failure from two sources is one incident ---------------------------------------------


def test_a_failed_job_alerted_by_alertmanager_and_found_by_the_job_poller_is_one_incident(
    clock: FakeClock,
) -> None:
    from tests.test_pollers import config as poller_config
    from tests.test_pollers import job

    with SandboxWorld(clock=clock, config=poller_config(kubernetes_failed_jobs={"interval": "1m"})) as world:
        failed = job("feature-build-daily", clock.now() - timedelta(seconds=20))
        world.kube.load(failed)
        assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202  # namespace + job_name
        assert world.bot is not None
        [report] = jobs_polls(world)  # the poller finds the same Job failed
        world.settle()
        clock.advance(60)
        world.bot.pollers.poll_all()
        world.settle()

        assert report.ingested == 1 and report.opened == []
        [inc] = incidents(world)
        assert inc.sources == ["alertmanager", "kube_poll"]
        assert inc.target_key == "k8s-job:sandbox/ml-pipelines/feature-build-daily"
        assert {a.source for a in alerts(world)} == {"alertmanager", "kube_poll"}
        assert {a.incident_id for a in alerts(world)} == {inc.id}
        assert len(world.slack.messages(COORD)) == 1  # one Level 2 escalation
        [root] = world.slack.messages(ALERTS)
        assert "Reported by alertmanager, kube_poll" in json.dumps(root)


def test_another_source_reporting_a_failure_level_1_already_fixed_does_not_open_it_again(
    clock: FakeClock,
) -> None:
    from bot.sandbox.world import OOM_ALERT
    from tests.test_pollers import config as poller_config
    from tests.test_pollers import job

    with SandboxWorld(clock=clock, config=poller_config(kubernetes_failed_jobs={"interval": "10m"})) as world:
        assert world.post_alerts(alertmanager_payload([OOM_ALERT])).status == 202
        world.settle()  # Level 1 re-ran the training Job with more memory: fixed
        [fixed] = incidents(world)
        assert fixed.status == "resolved" and fixed.resolved_level == "L1"
        jobs_before = len([r for r in world.kube.requests if r.method == "POST"])
        # the poller now finds the original, OOM-killed Job: it failed when the alert fired
        world.kube.load(job("train-churn-model", fixed.opened_at.replace(tzinfo=UTC)))
        assert world.bot is not None
        [report] = jobs_polls(world)
        world.settle()

        assert report.ingested == 1 and report.opened == []
        [inc] = incidents(world)
        assert inc.status == "resolved" and inc.sources == ["alertmanager", "kube_poll"]
        assert len([r for r in world.kube.requests if r.method == "POST"]) == jobs_before  # no second re-run


def test_a_large_delivery_is_answered_once_stored_and_applied_in_order_before_later_ones() -> None:
    from bot.services.deliveries import INLINE_MAX

    with SandboxWorld() as world:
        many = [
            {
                **PIPELINE_ALERT,
                "fingerprint": f"{i:016x}",
                "labels": {**PIPELINE_ALERT["labels"], "job_name": f"j{i}"},
            }
            for i in range(INLINE_MAX + 30)
        ]
        big = world.post_alerts(alertmanager_payload(many))
        # a later, small delivery resolves the first alert of the big one: it must not overtake it
        resolved = {**many[0], "status": "resolved"}
        small = world.post_alerts(alertmanager_payload([resolved]))

        assert big.status == small.status == 202
        assert big.json() == {"accepted": INLINE_MAX + 30, "queued": True}
        # the small one was applied after the big one: waiting for it, or queued behind it
        assert small.json().get("queued") or small.json()["resolved"] == [1]
        world.settle()

        stored = alerts(world)
        assert len(stored) == INLINE_MAX + 31  # every alert once
        assert [a.status for a in stored][-1] == "resolved"
        first = next(i for i in incidents(world) if i.fingerprint == "am:0000000000000000")
        assert first.status == "resolved"  # the resolution applied after the firing it resolves
        assert len(incidents(world)) == INLINE_MAX + 30


def test_a_delivery_interrupted_between_chunks_resumes_where_it_stopped_and_applies_each_alert_once() -> None:
    from bot.services.deliveries import CHUNK, from_json
    from bot.store.tables import Delivery

    with SandboxWorld() as world:
        assert world.bot is not None
        services = world.bot.services
        many = [
            {
                **PIPELINE_ALERT,
                "fingerprint": f"{i:016x}",
                "labels": {**PIPELINE_ALERT["labels"], "job_name": f"j{i}"},
            }
            for i in range(CHUNK * 2 + 7)
        ]
        assert world.post_alerts(alertmanager_payload(many)).json()["queued"] is True
        with Session(services.engine) as s:
            row = s.exec(select(Delivery)).one()
            chunk = [from_json(a) for a in row.alerts[:CHUNK]]
        # the process applies its first chunk, then dies
        assert services.intake.apply_delivery(row.id or 0, 0, chunk, 0) is not None
        assert services.intake.apply_delivery(row.id or 0, 0, chunk, 0) is None  # never twice
        world.settle()  # after the restart the rest is applied

        with Session(services.engine) as s:
            done = s.exec(select(Delivery)).one()
        assert (done.status, done.applied) == ("done", CHUNK * 2 + 7)
        assert len(alerts(world)) == CHUNK * 2 + 7
        assert len({a.fingerprint for a in alerts(world)}) == CHUNK * 2 + 7


def test_a_huge_label_or_annotation_is_stored_cut_to_its_cap_not_four_times_over(world: SandboxWorld) -> None:
    from bot.core.untrusted import LABEL_MAX, TEXT_MAX

    huge = "x" * 450_000  # twice in one delivery: just under the 1 MB body cap
    alert = {
        **PIPELINE_ALERT,
        "labels": {**PIPELINE_ALERT["labels"], "blob": huge},
        "annotations": {"summary": "Job failed", "description": huge},
    }
    assert world.post_alerts(alertmanager_payload([alert])).status in (200, 202)
    world.settle()

    [stored] = alerts(world)
    cut_note = f"… [{len(huge) - LABEL_MAX} more characters cut at intake]"
    assert stored.labels["blob"] == "x" * LABEL_MAX + cut_note
    assert stored.annotations["description"].startswith("x" * TEXT_MAX + "… [")
    assert len(every_row(world)) < 200_000  # every table together: the value was not kept whole anywhere
    [inc] = incidents(world)
    assert len(inc.labels["blob"]) < LABEL_MAX + 100
