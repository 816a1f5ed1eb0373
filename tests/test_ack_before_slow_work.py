"""Slack requests and alert webhooks are answered before any slow work.

Slow work is anything that waits on Slack or Kubernetes (diagnostics, modals, posts). The Slack emulator
and the sandbox Kubernetes API hold those calls at a gate; the bot must still answer the request, and the
held work must go through once the gate opens. Times are `time.monotonic()` on both sides: the emulator
records when each call arrived (`Call.at`) and whether it was answered (`Call.status`, 0 until then).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.core.models import ActionId, IncidentStatus, Level
from bot.sandbox.slack_driver import Response, text_value
from bot.sandbox.slack_emulator import BOT_ID, Call
from bot.sandbox.world import (
    COORDINATOR,
    PIPELINE_ALERT,
    WEBHOOK_TOKEN,
    SandboxWorld,
    alertmanager_payload,
)
from bot.store.tables import Alert, Incident

COORD_CHANNEL, ALERT_CHANNEL = "#data-coordinator", "#ml-alerts"
JOB_PATH = "/apis/batch/v1/namespaces/ml-pipelines/jobs/feature-build-daily"
# A webhook sender that gets no answer gives up after this long (so a bot that waits on a held call fails
# the test instead of hanging it). Slack itself gives up after 3 s, and Bolt answers an un-acked request
# with an error after its own 3 s, so Slack requests need no timeout of their own.
WEBHOOK_TIMEOUT = 5.0


@dataclass
class Answered:
    """A request's response and when it was sent and answered (monotonic seconds)."""

    response: Response
    sent: float
    answered: float
    calls_before: int  # emulator calls recorded before the request was sent


def timed(world: SandboxWorld, send: Callable[[], Response]) -> Answered:
    mark = len(world.slack.calls)
    sent = time.monotonic()
    response = send()
    return Answered(response, sent, time.monotonic(), mark)


def completed(calls: list[Call]) -> list[tuple[str, int]]:
    """The calls that had been answered, as (method, status)."""
    return [(c.method, c.status) for c in calls if c.status != 0]


def post_alert(world: SandboxWorld, payload: dict[str, Any]) -> Response:
    """POST an Alertmanager webhook, giving up after WEBHOOK_TIMEOUT (a 0 status means no answer)."""
    request = urllib.request.Request(
        world.url + "/alerts/alertmanager",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as reply:
            return Response(reply.status, dict(reply.headers), reply.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, dict(error.headers), error.read())
    except TimeoutError:
        return Response(0, {}, b"")


def incident(world: SandboxWorld, incident_id: int = 1) -> Incident:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        return inc


def open_l2(world: SandboxWorld) -> dict[str, Any]:
    """A failing pipeline step that Level 1 cannot fix: INC-1's Level 2 message in #data-coordinator."""
    assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202
    world.settle()
    assert (incident(world).level, incident(world).status) == (Level.L2.value, IncidentStatus.OPEN.value)
    return world.slack.messages(COORD_CHANNEL)[-1]


def _told_acknowledged(world: SandboxWorld) -> None:
    (told,) = world.slack.ephemerals(user=COORDINATOR)
    assert "acknowledged INC-1" in told["text"]


@pytest.fixture
def background(world: SandboxWorld) -> Iterator[Callable[[], Future[None]]]:
    """Run the bot's pending work (`settle`) in a thread, so the test can watch it wait at a gate.

    Whatever happens in the test, every gate is opened before the thread is joined."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="settle")
    yield lambda: pool.submit(world.settle, 30.0)
    world.slack.clear_faults()
    world.kube.release()
    pool.shutdown(wait=True)


# ---- Alertmanager webhook -----------------------------------------------------------------------------


def test_an_alert_is_stored_and_answered_202_before_level_1_calls_kubernetes(
    world: SandboxWorld, background: Callable[[], Future[None]]
) -> None:
    world.kube.hold()

    response = post_alert(world, alertmanager_payload([PIPELINE_ALERT]))

    assert response.status == 202, "the webhook was not answered while Kubernetes was held"
    assert response.json()["opened"] == [1]
    assert world.kube.requests == []  # Level 1 has not even started
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:  # stored before the answer
        assert [a.fingerprint for a in s.exec(select(Alert))] == ["am:a1b2c3d4e5f60002"]
        assert s.get(Incident, 1) is not None

    work = background()
    first = world.kube.wait_for(lambda r: True, timeout=10)  # Level 1 reached Kubernetes and waits there
    assert first.method == "GET"
    assert not work.done()
    assert incident(world).status == IncidentStatus.L1_RUNNING.value

    world.kube.release()
    work.result(timeout=30)

    assert any(r.method == "GET" and r.path == JOB_PATH for r in world.kube.requests)
    assert any(r.method == "POST" for r in world.kube.requests)  # the retry with debug logging
    assert incident(world).level == Level.L2.value
    assert len(world.slack.messages(COORD_CHANNEL)) == 1


def test_with_the_scheduler_running_the_202_does_not_wait_for_level_1(world: SandboxWorld) -> None:
    assert world.bot is not None
    world.bot.start_background()  # Level 1 now starts as soon as the alert is stored
    world.kube.hold()
    try:
        response = post_alert(world, alertmanager_payload([PIPELINE_ALERT]))
        assert response.status == 202, "the webhook was not answered while Kubernetes was held"
        # Level 1 runs now, on its own thread, and waits at the gate while the 202 is already back.
        world.kube.wait_for(lambda r: True, timeout=10)
        assert incident(world).status == IncidentStatus.L1_RUNNING.value
    finally:
        world.kube.release()

    assert world.slack.wait_for(lambda: len(world.slack.messages(COORD_CHANNEL)) == 1, timeout=20)
    assert any(r.path == JOB_PATH for r in world.kube.requests)


# ---- Slack requests -----------------------------------------------------------------------------------


def test_resolved_is_acked_while_views_open_is_held_and_the_modal_opens_after(
    world: SandboxWorld, background: Callable[[], Future[None]]
) -> None:
    l2 = open_l2(world)
    world.slack.hold("views.open")

    click = timed(world, lambda: world.click(COORDINATOR, ActionId.RESOLVE, COORD_CHANNEL, l2["ts"]))
    at_ack = completed(world.slack.calls_to("views.open"))

    assert click.response.status == 200
    assert at_ack == []

    work = background()
    assert world.slack.wait_for(lambda: bool(world.slack.calls_to("views.open")), timeout=10)
    (modal,) = world.slack.calls_to("views.open")
    assert modal.at > click.answered  # the modal was asked for after the ack came back
    assert modal.status == 0  # and is still held
    assert world.slack.views == []

    world.slack.release("views.open")
    work.result(timeout=30)

    assert modal.status == 200
    assert [v["callback_id"] for v in world.slack.views] == [ActionId.RESOLVE_VIEW]
    assert world.slack.views[0]["title"]["text"] == "Resolve INC-1"


def test_a_slash_command_is_acked_while_its_slack_calls_are_held(
    world: SandboxWorld, background: Callable[[], Future[None]]
) -> None:
    open_l2(world)
    assert world.driver is not None
    driver = world.driver
    held = ("chat.postEphemeral", "usergroups.list")
    for method in held:
        world.slack.hold(method)

    command = timed(world, lambda: driver.slash_command("/escalation", "ack 1", COORDINATOR, COORD_CHANNEL))
    at_ack = completed([c for c in world.slack.calls[command.calls_before :] if c.method in held])

    assert command.response.status == 200
    assert "INC-1" in command.response.text  # the ack itself says what is being done
    assert at_ack == []

    work = background()
    assert world.slack.wait_for(lambda: bool(world.slack.calls_to("chat.postEphemeral")), timeout=10)
    (reply,) = world.slack.calls_to("chat.postEphemeral")
    assert reply.at > command.answered
    assert reply.status == 0
    assert world.slack.ephemerals(user=COORDINATOR) == []

    for method in held:
        world.slack.release(method)
    work.result(timeout=30)

    assert reply.status == 200
    assert incident(world).status == IncidentStatus.ACKNOWLEDGED.value
    _told_acknowledged(world)


# ---- every kind of Slack request, with every Slack method held ----------------------------------------


def _acknowledge_button(world: SandboxWorld, l2: dict[str, Any]) -> Callable[[], Response]:
    return lambda: world.click(COORDINATOR, ActionId.ACK, COORD_CHANNEL, l2["ts"])


def _ack_command(world: SandboxWorld, _l2: dict[str, Any]) -> Callable[[], Response]:
    assert world.driver is not None
    driver = world.driver
    return lambda: driver.slash_command("/escalation", "ack 1", COORDINATOR, COORD_CHANNEL)


def _escalate_command(world: SandboxWorld, _l2: dict[str, Any]) -> Callable[[], Response]:
    assert world.driver is not None
    driver = world.driver
    return lambda: driver.slash_command("/escalate", "The feature store is stale", COORDINATOR, ALERT_CHANNEL)


def _resolve_submission(world: SandboxWorld, l2: dict[str, Any]) -> Callable[[], Response]:
    world.click(COORDINATOR, ActionId.RESOLVE, COORD_CHANNEL, l2["ts"])
    world.settle()
    note = {"note": {"value": text_value("Backfilled the missing partition and re-ran the step.")}}
    return lambda: world.submit_latest_view(COORDINATOR, note)


def _mention_event(world: SandboxWorld, _l2: dict[str, Any]) -> Callable[[], Response]:
    assert world.driver is not None
    driver = world.driver
    msg = world.slack.add_message(ALERT_CHANNEL, "<@UBOT> help", user=COORDINATOR)
    event = {**world.slack.message_event(ALERT_CHANNEL, msg["ts"]), "type": "app_mention"}
    return lambda: driver.event(event)


def _acknowledged(world: SandboxWorld) -> None:
    assert incident(world).status == IncidentStatus.ACKNOWLEDGED.value
    _told_acknowledged(world)


def _escalated_by_hand(world: SandboxWorld) -> None:
    assert (incident(world, 2).level, incident(world, 2).opened_by) == (Level.L2.value, COORDINATOR)
    assert len(world.slack.messages(COORD_CHANNEL)) == 2


def _resolved(world: SandboxWorld) -> None:
    inc = incident(world)
    assert (inc.status, inc.resolved_by) == (IncidentStatus.RESOLVED.value, COORDINATOR)


def _replied_in_thread(world: SandboxWorld) -> None:
    mention = world.slack.messages(ALERT_CHANNEL)[-1]
    replies = [m for m in world.slack.thread(ALERT_CHANNEL, mention["ts"]) if m.get("bot_id") == BOT_ID]
    assert len(replies) == 1


REQUESTS: dict[
    str,
    tuple[Callable[[SandboxWorld, dict[str, Any]], Callable[[], Response]], Callable[[SandboxWorld], None]],
] = {
    "acknowledge_button": (_acknowledge_button, _acknowledged),
    "escalation_ack_command": (_ack_command, _acknowledged),
    "escalate_command": (_escalate_command, _escalated_by_hand),
    "resolve_modal_submission": (_resolve_submission, _resolved),
    "app_mention_event": (_mention_event, _replied_in_thread),
}


@pytest.mark.parametrize("kind", list(REQUESTS))
def test_a_slack_request_is_acked_with_every_slack_method_held(world: SandboxWorld, kind: str) -> None:
    prepare, outcome = REQUESTS[kind]
    send = prepare(world, open_l2(world))
    world.slack.hold("*")
    try:
        request = timed(world, send)
        at_ack = completed(world.slack.calls[request.calls_before :])

        assert request.response.status == 200, request.response.text
        assert at_ack == []  # no Slack call had been answered when the ack arrived
    finally:
        world.slack.release("*")
    world.settle()

    outcome(world)
    assert all(c.status == 200 for c in world.slack.calls[request.calls_before :])
