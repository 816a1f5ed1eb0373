"""Alert storms: past the threshold, one summary message in the alert channel (updated as the storm
grows) stands in for the incidents' root messages; their Level 1 reports go in its thread."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from bot.config import parse_config
from bot.core.clock import FakeClock
from bot.sandbox.world import DEMO_CONFIG, SandboxWorld, alertmanager_payload
from bot.store.tables import Incident, Storm

ALERTS = "#ml-alerts"
PIPELINES = ["etl-orders", "etl-users", "score-batch"]


def storm_config(**intake: Any) -> dict[str, Any]:
    return {**DEMO_CONFIG, "intake": {"storm_threshold": 5, "storm_window": "60s", **intake}}


def alerts(first: int, count: int) -> dict[str, Any]:
    """`count` distinct alerts (no Level 1 diagnostics apply, so each is escalated after Level 1)."""
    return alertmanager_payload(
        [
            {
                "labels": {
                    "alertname": "RowCountDrop",
                    "job_name": PIPELINES[i % len(PIPELINES)],
                    "partition": f"p{i}",
                },
                "annotations": {"summary": f"row count dropped in partition p{i}"},
                "fingerprint": f"c0{i:014d}",
            }
            for i in range(first, first + count)
        ]
    )


def incidents(world: SandboxWorld) -> list[Incident]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Incident).order_by(col(Incident.id))))


def summary_of(world: SandboxWorld) -> dict[str, Any]:
    [summary] = [m for m in world.slack.messages(ALERTS) if "Alert storm" in m["text"]]
    return summary


def test_thirty_new_alerts_make_one_summary_with_every_level_1_report_in_its_thread(
    world: SandboxWorld,
) -> None:
    world.stop_bot()
    world.config = parse_config(storm_config(debounce="0s"))
    world.start_bot()

    resp = world.post_alerts(alerts(0, 30))
    assert resp.status == 202 and len(resp.json()["opened"]) == 30
    world.settle()

    top = world.slack.messages(ALERTS)
    assert len(top) == 6  # five incidents before the storm, then one summary
    summary = summary_of(world)
    assert "25 new incidents in 1 s across 3 pipelines" in summary["text"]
    assert "score-batch (9), etl-orders (8), etl-users (8)" in summary["text"]
    reports = world.slack.thread(ALERTS, summary["ts"])
    assert len(reports) == 25 and all("Level 1 report" in r["text"] for r in reports)
    # Level 1 ran for every incident, in the storm or not, and each was escalated
    assert {(i.level, i.status) for i in incidents(world)} == {("L2", "open")}
    # ... together: one message for the coordinator, each incident's escalation in its thread
    [group] = world.slack.messages("#data-coordinator")
    assert "*Level 2 · 30 incidents from one alert storm" in group["text"]
    pages = world.slack.thread("#data-coordinator", group["ts"])
    assert len(pages) == 3 and sum(b["type"] == "section" for p in pages for b in p["blocks"]) == 30

    # the storm grows: the same summary is updated, no new top-level message
    world.post_alerts(alerts(30, 10))
    world.settle()
    assert len(world.slack.messages(ALERTS)) == 6
    assert "35 new incidents" in world.slack.message(ALERTS, summary["ts"])["text"]
    assert len(world.slack.thread(ALERTS, summary["ts"])) == 35
    summary_updates = [c for c in world.slack.calls_to("chat.update") if c.args.get("ts") == summary["ts"]]
    assert len(summary_updates) == 1


def test_summary_updates_are_debounced_and_the_storm_ends_under_the_threshold(clock: FakeClock) -> None:
    with SandboxWorld(clock=clock, config=storm_config(debounce="30s")) as world:
        world.post_alerts(alerts(0, 10))
        world.settle()
        summary = summary_of(world)
        assert "5 new incidents" in summary["text"]

        for batch in range(3):  # the storm goes on within the window: refreshes wait for the debounce
            clock.advance(5)
            world.post_alerts(alerts(10 + batch * 2, 2))
            world.settle()
        assert [c for c in world.slack.calls_to("chat.update") if c.args.get("ts") == summary["ts"]] == []
        clock.advance(20)
        world.settle()
        assert "11 new incidents in 15 s" in world.slack.message(ALERTS, summary["ts"])["text"]

        clock.advance(120)  # quiet for longer than the window: the next incident posts on its own
        world.post_alerts(alerts(100, 1))
        world.settle()
        top = world.slack.messages(ALERTS)
        assert "INC-17" in top[-1]["text"]
        assert "Alert storm over" in world.slack.message(ALERTS, summary["ts"])["text"]
        with Session(world.bot.services.engine) as s:  # type: ignore[union-attr]
            [storm] = s.exec(select(Storm))
            assert storm.ended_at is not None and storm.incident_count == 11


def test_reports_wait_for_a_rate_limited_summary_and_still_land_in_its_thread(clock: FakeClock) -> None:
    with SandboxWorld(clock=clock, config=storm_config(debounce="0s")) as world:
        # the five roots and the summary meet a 429; every Level 1 report must wait for its parent
        world.slack.fail_next("chat.postMessage", status=429, retry_after=2, count=6)
        world.post_alerts(alerts(0, 30))
        world.settle()
        assert [m for m in world.slack.messages(ALERTS) if "Level 1 report" in m["text"]] == []
        # each 429 holds the channel for its Retry-After: the six are met one Retry-After after another
        for _ in range(7):
            clock.advance(3)
            world.settle()
        assert len([c for c in world.slack.calls_to("chat.postMessage") if c.status == 429]) == 6

        summary = summary_of(world)
        reports = world.slack.thread(ALERTS, summary["ts"])
        top_level = world.slack.messages(ALERTS)
    assert len(reports) == 25 and all("Level 1 report" in r["text"] for r in reports)
    assert not any("Level 1 report" in m["text"] for m in top_level)
