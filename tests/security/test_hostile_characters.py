"""A NUL byte, a lone surrogate, a bidi override or a non-character in any field of any entry point is
accepted (and stored) or refused with a 4xx: never a 5xx, never a crashed listener, on SQLite and on
PostgreSQL (whose text columns refuse NUL, and whose drivers refuse lone surrogates)."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from typing import Any

from bot.core.models import ActionId
from bot.sandbox.slack_driver import Response, text_value
from bot.sandbox.world import COORDINATOR, PIPELINE_ALERT, SandboxWorld, alertmanager_payload
from tests.security.helpers import (
    ALERT_CHANNEL,
    TRACEBACK,
    assert_still_serving,
    crash_log,
    describe,
    row_counts,
)
from tests.security.test_fuzz_webhooks import post_mlflow

HAZARDS = {"nul": "\x00", "lone_surrogate": "\ud800", "rtl_override": "\u202e", "noncharacter": "\uffff"}


def alertmanager_with(where: str, hazard: str) -> Callable[[SandboxWorld], Response]:
    def send(world: SandboxWorld) -> Response:
        alert: dict[str, Any] = copy.deepcopy(PIPELINE_ALERT)
        alert["fingerprint"] = f"hazard{time.monotonic_ns()}"
        if where == "summary":
            alert["annotations"]["summary"] = f"feature-build-daily failed {hazard} here"
        elif where == "label value":
            alert["labels"]["team"] = f"ml{hazard}platform"
        elif where == "label name":
            alert["labels"][f"te{hazard}am"] = "ml-platform"
        elif where == "alertname":
            alert["labels"]["alertname"] = f"KubeJob{hazard}Failed"
        elif where == "fingerprint":
            alert["fingerprint"] = f"fp{hazard}{time.monotonic_ns()}"
        payload = alertmanager_payload([alert], group_key=f'{{}}:{{alertname="x{hazard}"}}')
        return world.post_alerts(json.dumps(payload).encode())

    return send


def generic_with(where: str, hazard: str) -> Callable[[SandboxWorld], Response]:
    def send(world: SandboxWorld) -> Response:
        body: dict[str, Any] = {"title": f"Nightly job failed {time.monotonic_ns()}"}
        if where == "title":
            body["title"] += f" {hazard}"
        elif where == "text":
            body["text"] = f"see {hazard} logs"
        elif where == "label value":
            body["labels"] = {"team": f"ml{hazard}"}
        elif where == "fingerprint":
            body["fingerprint"] = f"fp{hazard}{time.monotonic_ns()}"
        return world.post_alerts(json.dumps(body).encode(), path="/alerts/generic")

    return send


def mlflow_with(hazard: str) -> Callable[[SandboxWorld], Response]:
    def send(world: SandboxWorld) -> Response:
        payload = {
            "entity": "model_version",
            "action": "updated",
            "timestamp": 1764000000000,
            "data": {"name": f"churn{hazard}", "version": "3", "status": "FAILED_REGISTRATION"},
        }
        return post_mlflow(world, json.dumps(payload).encode())

    return send


def slack_with(where: str, hazard: str) -> Callable[[SandboxWorld], Response]:
    def send(world: SandboxWorld) -> Response:
        assert world.driver is not None
        if where == "/escalate text":
            # a form field is UTF-8 on the wire: a lone surrogate cannot be sent this way
            text = f"the registry is down {hazard}".encode("utf-8", "replace").decode()
            return world.driver.slash_command("/escalate", text, COORDINATOR, ALERT_CHANNEL)
        if where == "escalate modal":
            views = len(world.slack.views)
            world.driver.slash_command("/escalate", "", COORDINATOR, ALERT_CHANNEL)
            # only the outbox: Level 1 work for earlier alerts must not outlive the trigger id (3 s)
            assert world.bot is not None and world.bot.listeners.wait_idle(30)
            world.bot.services.outbox.deliver_due()
            assert world.slack.wait_for(lambda: len(world.slack.views) > views, 10), (
                "/escalate opened no modal"
            )
            view = world.slack.views[-1]
            assert view["callback_id"] == ActionId.ESCALATE_VIEW
            values = {"problem": {"value": text_value(f"features are stale {hazard}")}}
            return world.driver.view_submission(
                COORDINATOR, view["callback_id"], values, view["private_metadata"], view_id=view["id"]
            )
        event = {
            "type": "message",
            "channel": world.slack.channel_id(ALERT_CHANNEL),
            "ts": f"{time.time():.6f}",
            "bot_id": "B0OTHERBOT",
            "text": f"[FIRING:1] KubeJobFailed{hazard} (ml-pipelines {time.monotonic_ns()})",
        }
        return world.driver.event(event)

    return send


def requests(hazard: str) -> dict[str, Callable[[SandboxWorld], Response]]:
    out: dict[str, Callable[[SandboxWorld], Response]] = {}
    for where in ("summary", "label value", "label name", "alertname", "fingerprint"):
        out[f"alertmanager {where}"] = alertmanager_with(where, hazard)
    for where in ("title", "text", "label value", "fingerprint"):
        out[f"generic {where}"] = generic_with(where, hazard)
    out["mlflow model name"] = mlflow_with(hazard)
    for where in ("/escalate text", "escalate modal", "alert channel message"):
        out[f"slack {where}"] = slack_with(where, hazard)
    return out


def last_error_line(crash: str) -> str:
    errors = [line for line in crash.splitlines() if re.match(r"^[\w.]+(Error|Exception)\b", line)]
    return (errors or crash.splitlines())[-1][:300]


def test_a_hostile_character_in_any_field_is_accepted_or_refused_never_a_5xx(db_world: SandboxWorld) -> None:
    world = db_world
    assert world.bot is not None
    failures: list[str] = []
    with crash_log() as crashes:
        for hazard, char in HAZARDS.items():
            for name, send in requests(char).items():
                mark, before = len(crashes), row_counts(world)["alerts"]
                response = send(world)
                assert world.bot.listeners.wait_idle(30)
                what = f"{hazard} in {name}"
                if response.status >= 500 or TRACEBACK.search(response.text):
                    failures.append(f"{what}: {describe(response)[:300]}")
                elif response.status == 202 and row_counts(world)["alerts"] <= before:
                    failures.append(f"{what}: answered 202 but stored no alert")
                for crash in crashes.since(mark):
                    failures.append(f"{what}: {response.status}, then a crash: {last_error_line(crash)}")
                assert_still_serving(world)
        mark = len(crashes)
        world.settle()  # Level 1 runs for every accepted alert, and the outbox delivers what it posts
        for crash in crashes.since(mark):
            failures.append(f"while Level 1 ran and the outbox delivered: {last_error_line(crash)}")
        assert_still_serving(world)

    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)


def long_values() -> dict[str, Callable[[SandboxWorld], Response]]:
    """Values longer than the columns they are stored in (fingerprint 255, severity 32, group key 1024)."""

    def alertmanager(labels: dict[str, str], **fields: str) -> Callable[[SandboxWorld], Response]:
        def send(world: SandboxWorld) -> Response:
            alert: dict[str, Any] = copy.deepcopy(PIPELINE_ALERT)
            alert["labels"] |= labels
            alert["fingerprint"] = fields.get("fingerprint", f"long{time.monotonic_ns()}")
            payload = alertmanager_payload([alert], group_key=fields.get("group_key", "{}:{}"))
            return world.post_alerts(json.dumps(payload).encode())

        return send

    def generic(**fields: str) -> Callable[[SandboxWorld], Response]:
        def send(world: SandboxWorld) -> Response:
            body = {"title": f"Nightly job failed {time.monotonic_ns()}", **fields}
            return world.post_alerts(json.dumps(body).encode(), path="/alerts/generic")

        return send

    def mlflow(name: str) -> Callable[[SandboxWorld], Response]:
        def send(world: SandboxWorld) -> Response:
            data = {"name": name, "version": "1", "status": "FAILED_REGISTRATION"}
            return post_mlflow(
                world, json.dumps({"entity": "model_version", "action": "updated", "data": data}).encode()
            )

        return send

    def escalate(text: str) -> Callable[[SandboxWorld], Response]:
        def send(world: SandboxWorld) -> Response:
            assert world.driver is not None
            return world.driver.slash_command("/escalate", text, COORDINATOR, ALERT_CHANNEL)

        return send

    return {
        "alertmanager fingerprint of 300": alertmanager({}, fingerprint="f" * 300),
        "alertmanager groupKey of 2000": alertmanager({}, group_key="{}:{" + "g" * 2000 + "}"),
        "alertmanager severity of 100": alertmanager({"severity": "s" * 100}),
        "alertmanager alertname of 1000": alertmanager({"alertname": "A" * 1000}),
        "generic severity of 100": generic(severity="s" * 100),
        "generic severity label of 100": generic(labels={"severity": "s" * 100}),
        "mlflow model name of 400": mlflow("m" * 400),
        "/escalate text of 5000": escalate("p" * 5000),
    }


def test_values_longer_than_their_columns_are_accepted_or_refused_never_a_5xx(db_world: SandboxWorld) -> None:
    world = db_world
    assert world.bot is not None
    failures: list[str] = []
    with crash_log() as crashes:
        for name, send in long_values().items():
            mark = len(crashes)
            response = send(world)
            assert world.bot.listeners.wait_idle(30)
            if response.status >= 500 or TRACEBACK.search(response.text):
                failures.append(f"{name}: {describe(response)[:300]}")
            for crash in crashes.since(mark):
                failures.append(f"{name}: {response.status}, then a crash: {last_error_line(crash)}")
            assert_still_serving(world)
        mark = len(crashes)
        world.settle()
        for crash in crashes.since(mark):
            failures.append(f"while Level 1 ran and the outbox delivered: {last_error_line(crash)}")

    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)
