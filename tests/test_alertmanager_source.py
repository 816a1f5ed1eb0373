"""Alertmanager webhook v4 as Alertmanager sends it: groups, truncated deliveries and resolved alerts,
read back from the Slack emulator and the database."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from bot.core.models import ActionId
from bot.sandbox.world import PIPELINE_ALERT, SandboxWorld, alertmanager_payload
from bot.store.tables import Alert, Incident, TimelineEvent

ALERTS, COORDINATION = "#ml-alerts", "#data-coordinator"
GROUP = '{}/{team="ml-platform"}:{alertname="FeatureFreshnessLow"}'


def context_text(message: dict[str, Any]) -> str:
    return "\n".join(
        e["text"] for b in message.get("blocks", []) if b["type"] == "context" for e in b["elements"]
    )


def buttons(message: dict[str, Any]) -> list[str]:
    return [
        e["action_id"] for b in message.get("blocks", []) if b["type"] == "actions" for e in b["elements"]
    ]


def incidents(world: SandboxWorld) -> list[Incident]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Incident).order_by(col(Incident.id))))


def timeline_kinds(world: SandboxWorld, incident_id: int) -> list[str]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        rows = s.exec(select(TimelineEvent).where(TimelineEvent.incident_id == incident_id))
        return [e.kind for e in rows]


def freshness_alert(table: str, fingerprint: str, status: str = "firing") -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "FeatureFreshnessLow", "team": "ml-platform", "table": table},
        "annotations": {"summary": f"{table} is stale"},
        "fingerprint": fingerprint,
    }


def test_a_group_delivery_opens_one_incident_per_alert_and_each_remembers_its_group(
    world: SandboxWorld,
) -> None:
    payload = alertmanager_payload(
        [freshness_alert("user_features", "f0000001"), freshness_alert("item_features", "f0000002")], GROUP
    )
    resp = world.post_alerts(payload)
    assert resp.status == 202, resp.text
    assert resp.json()["opened"] == [1, 2]
    world.settle()

    assert [i.group_key for i in incidents(world)] == [GROUP, GROUP]
    assert len(world.slack.messages(ALERTS)) == 2


def test_a_truncated_delivery_says_how_many_alerts_alertmanager_left_out(world: SandboxWorld) -> None:
    payload = alertmanager_payload([freshness_alert("user_features", "f0000003")], GROUP)
    payload["truncatedAlerts"] = 7
    assert world.post_alerts(payload).status == 202
    world.settle()

    [root] = world.slack.messages(ALERTS)
    assert "+7 alerts truncated by Alertmanager" in context_text(root)
    [inc] = incidents(world)
    assert inc.truncated_alerts == 7
    assert "alerts_truncated" in timeline_kinds(world, inc.id or 0)


def test_an_alert_that_resolves_while_level_1_runs_closes_the_incident_and_its_message_says_so(
    world: SandboxWorld,
) -> None:
    firing = alertmanager_payload([freshness_alert("user_features", "f0000004")], GROUP)
    resolved = alertmanager_payload([freshness_alert("user_features", "f0000004", "resolved")], GROUP)
    assert world.post_alerts(firing).status == 202
    resp = world.post_alerts(resolved)
    assert resp.json()["resolved"] == [1]
    world.settle()

    [inc] = incidents(world)
    assert (inc.status, inc.level) == ("resolved", "L1")
    [root] = world.slack.messages(ALERTS)
    assert "The alert resolved at" in root["text"] and "the incident is closed" in root["text"]
    assert world.slack.messages(COORDINATION) == []  # nothing escalated
    assert world.slack.thread(ALERTS, root["ts"]) == []  # Level 1 stopped: no report
    with Session(world.bot.services.engine) as s:  # type: ignore[union-attr]
        assert [a.status for a in s.exec(select(Alert).order_by(col(Alert.id)))] == ["firing", "resolved"]


def test_an_alert_that_resolves_after_escalation_marks_the_message_and_people_still_close_it(
    world: SandboxWorld,
) -> None:
    assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202
    world.settle()
    [l2] = world.slack.messages(COORDINATION)
    assert "The alert resolved" not in context_text(l2)

    resolved = {**PIPELINE_ALERT, "status": "resolved"}
    assert world.post_alerts(alertmanager_payload([resolved])).status == 202
    assert world.post_alerts(alertmanager_payload([resolved])).json()["duplicates"] == 1  # told once
    world.settle()

    l2 = world.slack.message(COORDINATION, l2["ts"])
    assert "The alert resolved at" in context_text(l2)
    assert ActionId.RESOLVE in buttons(l2)  # people still close it
    [inc] = incidents(world)
    assert (inc.status, inc.level) == ("open", "L2")
    updates = [c for c in world.slack.calls_to("chat.update") if c.args.get("ts") == l2["ts"]]
    assert len(updates) == 1
    assert "alert_resolved_received" in timeline_kinds(world, 1)


def test_a_resolved_alert_with_no_open_incident_is_stored_and_opens_nothing(world: SandboxWorld) -> None:
    resp = world.post_alerts(alertmanager_payload([freshness_alert("x", "f0000009", "resolved")], GROUP))
    assert resp.status == 202 and resp.json()["accepted"] == 1 and resp.json()["opened"] == []
    world.settle()
    assert incidents(world) == [] and world.slack.messages(ALERTS) == []
