"""Slack requests an attacker or a crash could abuse: an open /slack/events in Socket Mode, forged modal
submissions, replayed signed requests, and a click whose process died after it was acknowledged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, func, select

from bot.core.models import ActionId, IncidentStatus, Level
from bot.sandbox.slack_driver import SlackDriver, text_value
from bot.sandbox.world import COORDINATOR, OUTSIDER, PIPELINE_ALERT, SandboxWorld, alertmanager_payload
from bot.store.tables import InboundRequest, Incident
from tests.test_bad_input import open_l2, row_counts
from tests.test_socket_mode import SocketWorld

COORD = "#data-coordinator"


def incidents(world: SandboxWorld) -> list[Incident]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Incident).order_by(Incident.id)))


def ephemerals(world: SandboxWorld, user: str) -> list[str]:
    return [e["text"] for e in world.slack.ephemerals(user=user)]


# -- Socket Mode: /slack/events is off --------------------------------------------------------------------


@pytest.fixture
def socket_world() -> Iterator[SocketWorld]:
    with SocketWorld() as w:
        assert w.bot is not None
        w.bot.start_background()
        assert w.socket.connected.wait(5)
        yield w


def test_in_socket_mode_slack_events_over_http_answer_404_signed_or_not_and_change_nothing(
    socket_world: SocketWorld,
) -> None:
    world = socket_world
    assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202
    assert world.slack.wait_for(lambda: len(world.slack.messages(COORD)) == 1, timeout=20)
    world.settle()
    l2 = world.slack.messages(COORD)[-1]
    value = next(
        e["value"]
        for b in l2["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == ActionId.ACK
    )
    # what an attacker on the network sends to the bot's open port: a click as the coordinator
    http_driver = SlackDriver(world.url, "sandbox-signing-secret", world.slack)
    before = row_counts(world)
    for sign in (False, True):
        response = http_driver.block_action(COORDINATOR, ActionId.ACK, value, COORD, l2["ts"], sign=sign)
        assert response.status == 404, response.text
        assert "Socket Mode" in response.json()["error"]
        command = http_driver.slash_command("/escalation", "resolve 1 forged", COORDINATOR, COORD, sign=sign)
        assert command.status == 404
    world.settle()

    assert row_counts(world) == before
    [inc] = incidents(world)
    assert (inc.status, inc.acked_by) == (IncidentStatus.OPEN.value, None)


# -- modals are bound to the person the bot opened them for ----------------------------------------------


def resolve_modal(world: SandboxWorld, l2: dict[str, Any], user: str = COORDINATOR) -> dict[str, Any]:
    world.click(user, ActionId.RESOLVE, COORD, l2["ts"])
    world.settle()
    view = world.slack.views[-1]
    assert view["callback_id"] == ActionId.RESOLVE_VIEW
    return view


def submit(world: SandboxWorld, user: str, view: dict[str, Any], metadata: str, note: str = "fixed") -> Any:
    assert world.driver is not None
    return world.driver.view_submission(
        user,
        ActionId.RESOLVE_VIEW,
        {"note": {"value": text_value(note)}},
        private_metadata=metadata,
        view_id=view["id"],
    )


@pytest.mark.parametrize(
    "forgery",
    [
        "what_the_old_bot_trusted",  # {"incident_id": …, "level": …} written by the attacker
        "no_metadata",
        "a_handle_the_bot_never_issued",
    ],
)
def test_a_forged_modal_submission_is_refused_and_changes_nothing(world: SandboxWorld, forgery: str) -> None:
    l2 = open_l2(world)
    view = resolve_modal(world, l2)
    metadata = {
        "what_the_old_bot_trusted": json.dumps({"incident_id": 1, "level": "L2", "channel": "C1", "ts": "1"}),
        "no_metadata": "{}",
        "a_handle_the_bot_never_issued": json.dumps({"view": "x" * 32}),
    }[forgery]
    before = row_counts(world)

    response = submit(world, COORDINATOR, view, metadata)
    world.settle()

    assert response.status == 200
    answer = response.json()
    assert answer["response_action"] == "update"
    assert "This form cannot be accepted" in json.dumps(answer["view"])
    assert incidents(world)[0].status == IncidentStatus.OPEN.value
    after = row_counts(world)
    assert {t: n for t, n in after.items() if t != "inbox"} == {
        t: n for t, n in before.items() if t != "inbox"
    }


def test_a_modal_opened_for_one_person_cannot_be_submitted_by_another(world: SandboxWorld) -> None:
    l2 = open_l2(world)
    view = resolve_modal(world, l2, COORDINATOR)

    stolen = submit(world, OUTSIDER, view, view["private_metadata"])
    world.settle()

    assert stolen.json()["response_action"] == "update"
    assert incidents(world)[0].status == IncidentStatus.OPEN.value
    # the person it was opened for still can
    assert submit(world, COORDINATOR, view, view["private_metadata"]).status == 200
    world.settle()
    assert incidents(world)[0].status == IncidentStatus.RESOLVED.value


# -- replays of signed requests inside Slack's five-minute window ----------------------------------------


def test_a_replayed_signed_escalate_command_opens_one_incident(world: SandboxWorld) -> None:
    assert world.driver is not None
    first = world.driver.slash_command("/escalate", "feature store lag on churn", COORDINATOR, COORD)
    world.settle()
    replayed = world.driver.replay()
    world.settle()

    assert first.status == replayed.status == 200
    assert replayed.body == b""  # acknowledged and dropped
    assert len(incidents(world)) == 1
    assert len(world.slack.messages(COORD)) == 1


def test_a_replayed_click_and_a_replayed_modal_submission_act_once(world: SandboxWorld) -> None:
    assert world.driver is not None
    l2 = open_l2(world)
    world.click(COORDINATOR, ActionId.ACK, COORD, l2["ts"])
    world.settle()
    told = len(ephemerals(world, COORDINATOR))
    assert world.driver.replay().body == b""
    world.settle()
    assert len(ephemerals(world, COORDINATOR)) == told  # not even "already acknowledged"

    view = resolve_modal(world, world.slack.messages(COORD)[-1])
    submit(world, COORDINATOR, view, view["private_metadata"], note="restarted the feature job")
    world.settle()
    resolved = incidents(world)[0]
    assert world.driver.replay().body == b""
    world.settle()

    again = incidents(world)[0]
    assert again.status == IncidentStatus.RESOLVED.value
    assert (again.version, again.resolution_note) == (resolved.version, "restarted the feature job")


# -- a click acknowledged just before the process died is not lost ---------------------------------------


def test_a_click_stored_but_never_handled_is_handled_after_a_restart(world: SandboxWorld) -> None:
    l2 = open_l2(world)
    assert world.bot is not None
    # The process is going down: its listener threads are gone, but the request is still stored first.
    world.bot.listeners.shutdown(wait=True)
    world.click(COORDINATOR, ActionId.ACK, COORD, l2["ts"])
    assert incidents(world)[0].acked_by is None
    world.stop_bot()
    world.start_bot()  # on the same database
    assert world.bot is not None

    replayed = world.bot.replay_inbox(older_than=timedelta(0))
    world.settle()

    assert replayed == 1
    inc = incidents(world)[0]
    assert (inc.level, inc.status, inc.acked_by) == (
        Level.L2.value,
        IncidentStatus.ACKNOWLEDGED.value,
        COORDINATOR,
    )
    assert any("You acknowledged INC-1" in t for t in ephemerals(world, COORDINATOR))
    with Session(world.bot.services.engine) as s:
        pending = s.exec(select(func.count()).where(col(InboundRequest.done_at).is_(None))).one()
    assert pending == 0
    assert world.bot.replay_inbox(older_than=timedelta(0)) == 0  # handled once


def test_a_request_no_listener_takes_is_answered_404_and_never_handed_over_again(world: SandboxWorld) -> None:
    l2 = open_l2(world)
    assert world.driver is not None and world.bot is not None
    click = world.driver.block_action(COORDINATOR, "no_such_button", "x", COORD, l2["ts"])
    event = world.driver.event({"type": "reaction_added", "user": COORDINATOR, "reaction": "eyes"})
    assert (click.status, event.status) == (404, 404)
    world.settle()
    with Session(world.bot.services.engine) as s:
        pending = s.exec(select(func.count()).where(col(InboundRequest.done_at).is_(None))).one()
    assert pending == 0
    assert world.bot.replay_inbox(older_than=timedelta(0)) == 0
