"""Deduplication: an Alertmanager HA pair is one incident and one message (on SQLite and PostgreSQL),
repeats are counted and refresh the message at most once per debounce interval, and an alert that
flaps inside the flap window reopens its incident instead of opening a new one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, col, select

from bot.core.clock import FakeClock
from bot.sandbox.slack_driver import Response
from bot.sandbox.world import DEMO_CONFIG, SandboxWorld, alertmanager_payload
from bot.store.tables import Alert, Delivery, Incident, TimelineEvent

ALERTS = "#ml-alerts"
# no Level 1 diagnostics match it, so the incident goes to Level 2 and stays open
LATE_REPORT = {
    "labels": {"alertname": "NightlyReportLate", "team": "analytics", "job_name": "nightly-report"},
    "annotations": {"summary": "The nightly report has not been published"},
    "fingerprint": "b1b2b3b4b5b60001",
}


def config(**intake: Any) -> dict[str, Any]:
    return {**DEMO_CONFIG, "intake": intake}


def incidents(world: SandboxWorld) -> list[Incident]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Incident).order_by(col(Incident.id))))


def alert_rows(world: SandboxWorld) -> list[Alert]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Alert).order_by(col(Alert.id))))


def context_text(message: dict[str, Any]) -> str:
    return "\n".join(
        e["text"] for b in message.get("blocks", []) if b["type"] == "context" for e in b["elements"]
    )


def updates_of(world: SandboxWorld, ts: str) -> int:
    return len([c for c in world.slack.calls_to("chat.update") if c.args.get("ts") == ts])


def concurrently(world: SandboxWorld, payload: dict[str, Any], n: int) -> list[Response]:
    """`n` identical deliveries released at the same moment from `n` threads."""
    start = threading.Barrier(n)
    responses: list[Response] = []
    lock = threading.Lock()

    def send() -> None:
        start.wait()
        resp = world.post_alerts(payload)
        with lock:
            responses.append(resp)

    threads = [threading.Thread(target=send) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return responses


@pytest.fixture(params=["sqlite", "postgres"])
def any_world(request: pytest.FixtureRequest) -> Iterator[SandboxWorld]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    with SandboxWorld(database_url=url) as w:
        yield w


def test_an_alertmanager_ha_pair_is_one_incident_and_one_message(any_world: SandboxWorld) -> None:
    world = any_world
    payload = alertmanager_payload([LATE_REPORT, {**LATE_REPORT, "fingerprint": "b1b2b3b4b5b60002"}])
    responses = concurrently(world, payload, 6)
    assert [r.status for r in responses] == [202] * 6
    assert all(r.json()["accepted"] == 2 for r in responses)
    world.settle()
    # a delivery that found another ahead of it is answered "queued" and applied after it: what each
    # delivery did is recorded with it either way
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        results = [d.result for d in s.exec(select(Delivery))]
    assert len(results) == 6
    assert sum(len(r["opened"]) for r in results) == 2
    assert sum(r["duplicates"] for r in results) == 10

    assert [(i.fingerprint, i.alert_count) for i in incidents(world)] == [
        ("am:b1b2b3b4b5b60001", 1),
        ("am:b1b2b3b4b5b60002", 1),
    ]
    assert len(world.slack.messages(ALERTS)) == 2  # one root message per incident, never a second
    assert len(alert_rows(world)) == 12  # every delivery is stored
    assert world.slack.calls_to("chat.update") == []


def test_repeats_are_counted_and_refresh_the_message_at_most_once_per_debounce(clock: FakeClock) -> None:
    with SandboxWorld(clock=clock, config=config(debounce="30s")) as world:
        generic = {"title": "Nightly report is late", "labels": {"job": "nightly-report"}}
        assert world.post_alerts(generic, path="/alerts/generic").status == 202
        world.settle()
        [root] = world.slack.messages(ALERTS)

        for _ in range(5):  # a sender without startsAt: every delivery is a repeat
            clock.advance(1)
            assert world.post_alerts(generic, path="/alerts/generic").json()["updated"] == [1]
        world.settle()
        assert updates_of(world, root["ts"]) == 0  # the debounce interval has not passed yet
        assert incidents(world)[0].alert_count == 6

        clock.advance(30)
        world.settle()
        assert updates_of(world, root["ts"]) == 1
        assert "Fired ×6" in context_text(world.slack.message(ALERTS, root["ts"]))

        for _ in range(3):
            clock.advance(1)
            world.post_alerts(generic, path="/alerts/generic")
        world.settle()
        assert updates_of(world, root["ts"]) == 1  # coalesced into one refresh, not due yet
        clock.advance(30)
        world.settle()
        assert updates_of(world, root["ts"]) == 2
        assert "Fired ×9" in context_text(world.slack.message(ALERTS, root["ts"]))
        assert len(world.slack.messages(ALERTS)) == 1


def test_alertmanager_resending_a_firing_alert_later_counts_as_a_repeat(clock: FakeClock) -> None:
    with SandboxWorld(clock=clock, config=config(debounce="10s")) as world:
        payload = alertmanager_payload([LATE_REPORT])
        world.post_alerts(payload)
        assert world.post_alerts(payload).json()["duplicates"] == 1  # at once: the same notification
        clock.advance(120)  # Alertmanager's repeat_interval: the same firing, notified again
        assert world.post_alerts(payload).json()["updated"] == [1]
        assert incidents(world)[0].alert_count == 2


def resolve_at_l1(world: SandboxWorld, payload: dict[str, Any]) -> None:
    resolved = alertmanager_payload([{**LATE_REPORT, "status": "resolved"}])
    world.post_alerts(payload)
    assert world.post_alerts(resolved).json()["resolved"] == [1]
    world.settle()


def test_an_alert_firing_again_inside_the_flap_window_reopens_its_incident(clock: FakeClock) -> None:
    with SandboxWorld(clock=clock, config=config(flap_window="10m")) as world:
        firing = alertmanager_payload([LATE_REPORT])
        resolve_at_l1(world, firing)
        [root] = world.slack.messages(ALERTS)

        clock.advance(300)
        again = alertmanager_payload([{**LATE_REPORT, "startsAt": "2026-11-26T09:05:00Z"}])
        resp = world.post_alerts(again)
        assert resp.json()["reopened"] == [1] and resp.json()["opened"] == []
        world.settle()

        [inc] = incidents(world)
        assert inc.reopened_count == 1 and inc.alert_count == 2 and inc.level == "L2"
        assert len(world.slack.messages(ALERTS)) == 1
        assert "reopened (1×)" in world.slack.message(ALERTS, root["ts"])["text"]
        [report] = world.slack.thread(ALERTS, root["ts"])  # Level 1 ran again, in the same thread
        assert "Level 1 report · INC-1" in report["text"]
        with Session(world.bot.services.engine) as s:  # type: ignore[union-attr]
            kinds = [e.kind for e in s.exec(select(TimelineEvent).where(TimelineEvent.incident_id == 1))]
        assert kinds.count("reopened") == 1 and kinds.index("reopened") > kinds.index("alert_resolved")


def test_an_alert_firing_again_after_the_flap_window_opens_a_new_incident(clock: FakeClock) -> None:
    with SandboxWorld(clock=clock, config=config(flap_window="10m")) as world:
        resolve_at_l1(world, alertmanager_payload([LATE_REPORT]))
        clock.advance(601)
        again = alertmanager_payload([{**LATE_REPORT, "startsAt": "2026-11-26T09:11:00Z"}])
        assert world.post_alerts(again).json()["opened"] == [2]
        world.settle()

        assert [(i.id, i.status, i.reopened_count) for i in incidents(world)] == [
            (1, "resolved", 0),
            (2, "open", 0),
        ]
        assert len(world.slack.messages(ALERTS)) == 2


def test_a_resolution_brings_a_waiting_refresh_forward(clock: FakeClock) -> None:
    with SandboxWorld(clock=clock, config=config(debounce="10m")) as world:
        assert world.bot is not None
        generic = {"title": "Nightly report is late", "fingerprint": "late-1"}
        world.post_alerts(generic, path="/alerts/generic")
        world.bot.services.outbox.deliver_due()  # the root message goes out; Level 1 has not run yet
        [root] = world.slack.messages(ALERTS)
        clock.advance(1)
        world.post_alerts(generic, path="/alerts/generic")  # its refresh waits ten minutes
        world.bot.services.outbox.deliver_due()
        assert updates_of(world, root["ts"]) == 0

        resolved = {**generic, "status": "resolved"}
        assert world.post_alerts(resolved, path="/alerts/generic").json()["resolved"] == [1]
        world.settle()
        assert updates_of(world, root["ts"]) == 1  # the waiting refresh went at once, with the news
        message = world.slack.message(ALERTS, root["ts"])
        assert "The alert resolved at" in message["text"] and "Fired ×2" in context_text(message)
