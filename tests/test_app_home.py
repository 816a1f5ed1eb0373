"""The App Home tab, end to end: someone opens the bot's Home (a Slack-signed `app_home_opened` event), and
the bot publishes, through its outbox and the real slack_sdk client, what waits on them, the open
incidents by level and this week's rates against the protocol's targets; it publishes again when that
changes, at most once per slack.home_refresh each, only for people who opened it."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.app import Bot
from bot.core.clock import FakeClock
from bot.core.models import ActionId
from bot.integrations.slack.home_view import DETAILS, HomeBoard, HomeIncident, LevelCount, home_view
from bot.sandbox.slack_driver import select_value, text_value
from bot.sandbox.world import (
    COORDINATOR,
    DECIDER,
    OOM_ALERT,
    OUTSIDER,
    PIPELINE_ALERT,
    TECH_LEAD,
    SandboxWorld,
    alertmanager_payload,
)
from bot.store.tables import OutboxMessage
from tests.test_postgres import replica

REFRESH_S = 30  # slack.home_refresh's default


def texts(view: dict[str, Any]) -> list[str]:
    """Every section's text and fields, and every context line, top to bottom."""
    found = []
    for block in view["blocks"]:
        if block.get("text"):
            found.append(block["text"]["text"])
        found += [f["text"] for f in block.get("fields", [])]
        found += [e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn"]
    return found


def waiting(view: dict[str, Any]) -> list[str]:
    """The incident lines under "Waiting on you"."""
    shown = texts(view)
    start = next(i for i, t in enumerate(shown) if t.startswith("*Waiting on you*"))
    end = next(i for i, t in enumerate(shown) if t.startswith("*Open incidents*"))
    return [t for t in shown[start + 1 : end] if t.startswith("*INC-")]


def details_buttons(view: dict[str, Any]) -> list[str]:
    accessories = [b.get("accessory") or {} for b in view["blocks"]]
    return [a["value"] for a in accessories if a.get("action_id") == DETAILS]


def publishes(world: SandboxWorld, user: str) -> int:
    return sum(1 for c in world.slack.calls_to("views.publish") if c.args.get("user_id") == user)


def open_home(world: SandboxWorld, user: str, tab: str = "home") -> dict[str, Any]:
    assert world.driver is not None
    assert world.driver.app_home_opened(user, tab).status == 200
    world.settle()
    return world.slack.home(user) if tab == "home" else {}


def refresh(world: SandboxWorld) -> int:
    """One run of the bot's periodic Home job (the scheduler's, run here by hand), then delivery."""
    assert world.bot is not None
    queued = world.bot.services.home.refresh()
    world.settle()
    return queued


def escalate_to_l2(world: SandboxWorld) -> dict[str, Any]:
    assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202
    world.settle()
    [l2] = world.slack.messages("#data-coordinator")
    return l2


def test_opening_home_shows_the_coordinator_the_l2_incident_waiting_on_them(world: SandboxWorld) -> None:
    escalate_to_l2(world)
    view = open_home(world, COORDINATOR)

    assert view["type"] == "home"
    [call] = world.slack.calls_to("views.publish")
    assert (call.args["user_id"], call.status, call.error) == (COORDINATOR, 200, None)
    [line] = waiting(view)
    assert line.startswith("*INC-1* · L2 · pipeline step failed · escalated <!date^")
    assert "{ago}" in line and "feature-build-daily" in line
    assert "*Waiting on you* · 1, oldest first" in texts(view)
    assert "*Open incidents* · 1" in texts(view)
    assert "*L2* · data coordinator\n1" in texts(view)
    assert details_buttons(view) == ["1:L2", "1:L2"]  # waiting on them, and the oldest at L2


def test_a_details_button_on_home_opens_the_incidents_evidence(world: SandboxWorld) -> None:
    escalate_to_l2(world)
    view = open_home(world, COORDINATOR)
    assert world.driver is not None
    opened_before = len(world.slack.views)
    assert world.driver.view_action(COORDINATOR, view, DETAILS, "1:L2").status == 200
    world.settle()
    refused = world.driver.view_action(OUTSIDER, view, DETAILS, "1:L2")
    world.settle()
    [modal, refusal] = world.slack.views[opened_before:]  # the coordinator's; the outsider is told no
    assert refused.status == 200
    assert modal["callback_id"] == ActionId.DETAILS_VIEW and "INC-1" in json.dumps(modal)
    assert refusal["title"]["text"] == "Details not shown"
    assert "so they were not opened" in json.dumps(refusal)


def test_someone_nothing_waits_on_sees_the_open_incidents_and_the_messages_tab_publishes_nothing(
    world: SandboxWorld,
) -> None:
    escalate_to_l2(world)
    open_home(world, OUTSIDER, tab="messages")
    assert world.slack.calls_to("views.publish") == []

    view = open_home(world, OUTSIDER)
    assert waiting(view) == []
    assert "*Waiting on you*\nNothing is waiting on you right now." in texts(view)
    assert "*L2* · 1 open" in texts(view)
    assert details_buttons(view) == []  # outside the escalation chain: how many, not which
    assert not any("feature-build-daily" in t for t in texts(view))


def test_slacks_retry_of_the_same_event_publishes_once(world: SandboxWorld) -> None:
    assert world.driver is not None
    event = world.slack.app_home_opened(COORDINATOR)
    assert world.driver.event(event, event_id="Ev0HOME1").status == 200
    assert world.driver.event(event, event_id="Ev0HOME1", retry_num=1).status == 200
    world.settle()
    assert publishes(world, COORDINATOR) == 1


def test_two_openings_before_delivery_publish_once(world: SandboxWorld) -> None:
    assert world.driver is not None and world.bot is not None
    assert world.driver.app_home_opened(OUTSIDER).status == 200
    escalate_to_l2(world)  # delivers the first publish, then the incident appears
    assert world.driver.app_home_opened(COORDINATOR).status == 200
    assert world.driver.app_home_opened(COORDINATOR).status == 200
    world.bot.listeners.wait_idle(10)
    with Session(world.bot.services.engine) as s:
        rows = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "home")).all()
    assert [r.payload["user_id"] for r in rows] == [OUTSIDER, COORDINATOR]  # the second opening rewrote it
    world.settle()
    assert publishes(world, COORDINATOR) == 1 and len(waiting(world.slack.home(COORDINATOR))) == 1


def test_a_change_is_published_after_the_debounce_and_only_to_people_who_opened_home(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    l2 = escalate_to_l2(world)
    assert len(waiting(open_home(world, COORDINATOR))) == 1

    assert world.click(COORDINATOR, ActionId.ACK, "#data-coordinator", l2["ts"]).status == 200
    world.settle()
    assert refresh(world) == 0  # published moments ago: it waits out slack.home_refresh
    assert publishes(world, COORDINATOR) == 1

    clock.advance(REFRESH_S)
    assert refresh(world) == 1
    view = world.slack.home(COORDINATOR)
    assert waiting(view) == []  # acknowledged: no longer waiting on anyone
    assert "*L2* · 1 open" in texts(view)
    assert publishes(world, TECH_LEAD) == 0  # never opened Home

    clock.advance(REFRESH_S)
    assert refresh(world) == 0  # nothing changed: nothing sent
    assert publishes(world, COORDINATOR) == 2

    # opening Home again publishes at once, and Slack's event carried what was on it
    event = world.slack.app_home_opened(COORDINATOR)
    assert event["view"]["id"] == view["id"]
    open_home(world, COORDINATOR)
    assert publishes(world, COORDINATOR) == 3


def test_the_deciders_see_the_decision_waiting_on_them(world: SandboxWorld) -> None:
    l2 = escalate_to_l2(world)
    world.click(COORDINATOR, ActionId.ESCALATE_L3, "#data-coordinator", l2["ts"])
    world.settle()
    world.submit_latest_view(
        COORDINATOR,
        {
            "trigger": {"value": select_value("scalability")},
            "reason": {"value": text_value("Bigger cluster")},
        },
    )
    world.settle()
    [l3] = world.slack.messages("#tech-leads")
    world.click(TECH_LEAD, ActionId.ASK_DECISION, "#tech-leads", l3["ts"])
    world.settle()
    world.submit_latest_view(
        TECH_LEAD, {"question": {"value": text_value("Which way?")}, "context": {"value": text_value("")}}
    )
    world.settle()

    [line] = waiting(open_home(world, DECIDER))
    assert line.startswith("*INC-1* · L4 · pipeline step failed · asked <!date^")
    assert line.endswith("\nDecision: Which way?")
    assert waiting(open_home(world, COORDINATOR)) == []
    assert "*L4* · decision\n1" in texts(world.slack.home(COORDINATOR))


def test_this_weeks_rates_are_shown_against_the_protocols_targets(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    world = timed_world
    assert world.post_alerts(alertmanager_payload([OOM_ALERT])).status == 202  # fixed at Level 1
    world.settle()

    shown = texts(open_home(world, OUTSIDER))
    assert "*This week* (the last 7 days) · 1 incident, 1 resolved" in shown
    assert "*Resolved at L1*\n100% :white_check_mark: target 70%" in shown
    assert "*Of the rest, resolved at L2*\nno incidents to measure – target 80%" in shown
    assert "*Reached L4*\n0% :white_check_mark: target under 2%" in shown
    assert "*Open incidents*\nNo open incidents." in shown

    clock.advance(8 * 24 * 3600)  # a week later that incident is no longer this week's
    assert refresh(world) == 1
    assert "*This week* (the last 7 days) · 0 incidents, 0 resolved\nNo incidents this week." in texts(
        world.slack.home(OUTSIDER)
    )


@pytest.mark.parametrize(
    "error",
    [
        pytest.param("not_enabled", id="home-tab-switched-off"),
        pytest.param("user_not_found", id="no-such-person"),
    ],
)
def test_a_home_tab_slack_refuses_is_given_up_not_retried(world: SandboxWorld, error: str) -> None:
    world.slack.error_next("views.publish", error)
    assert world.driver is not None and world.bot is not None
    assert world.driver.app_home_opened(COORDINATOR).status == 200
    world.settle()
    with Session(world.bot.services.engine) as s:
        [row] = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "home")).all()
    assert (row.status, row.error, row.attempts) == ("dead", error, 1)
    assert [c.error for c in world.slack.calls_to("views.publish")] == [error]


def test_a_long_board_is_cut_readably_within_slacks_limits(world: SandboxWorld) -> None:
    at = datetime(2026, 11, 26, 9, tzinfo=UTC)
    hostile = "<!channel> ping <@U0LEAD> " + "x" * 5000
    items = [
        HomeIncident(n, "L2", "training crash", hostile, at, "escalated", hostile) for n in range(1, 201)
    ]
    levels = [LevelCount(level, 200, items[:3]) for level in ("L1", "L2", "L3", "L4")]
    counts = {"total": 800, "resolved": 0, "resolved_l1": 0, "resolved_l2": 0, "beyond_l1": 600}
    view = home_view(HomeBoard(waiting=items, levels=levels, week={**counts, "reached_l4": 200}))

    assert len(view["blocks"]) <= 100
    shown = texts(view)
    assert "…and 185 more waiting on you." in shown
    assert "*L2* · the oldest 3 of 200" in shown
    assert all(len(text) <= 3000 for text in shown)
    assert not any("<!channel>" in text or "<@U0LEAD>" in text for text in shown)
    assert all(line.count("x") < 500 for line in waiting(view))  # each title cut to a readable length
    assert "*Reached L4*\n25% :warning: target under 2%" in shown
    published = world.slack.client().views_publish(user_id=COORDINATOR, view=view)
    assert published["ok"] and len(world.slack.home(COORDINATOR)["blocks"]) == len(view["blocks"])


def test_two_replicas_refreshing_at_once_on_postgres_queue_one_publish(pg_url: str, clock: FakeClock) -> None:
    with SandboxWorld(database_url=pg_url, clock=clock) as world, replica(world) as (other, _url):
        assert world.bot is not None
        l2 = escalate_to_l2(world)
        assert len(waiting(open_home(world, COORDINATOR))) == 1
        assert world.click(COORDINATOR, ActionId.ACK, "#data-coordinator", l2["ts"]).status == 200
        world.settle()
        clock.advance(REFRESH_S)

        start = threading.Barrier(2)
        queued: list[int] = []

        def refresh_in(bot: Bot) -> None:
            start.wait()
            queued.append(bot.services.home.refresh())

        threads = [threading.Thread(target=refresh_in, args=(b,)) for b in (world.bot, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(queued) == [0, 1]
        world.settle()
        assert publishes(world, COORDINATOR) == 2
        assert waiting(world.slack.home(COORDINATOR)) == []
