"""Forged, tampered, stale and replayed Slack requests change nothing.

HTTP mode: a request that is unsigned, signed with another secret, changed after signing, or signed more
than 5 minutes ago (or ahead) gets 401; the exact same signed request sent twice acts once.
Socket Mode (SLACK_APP_TOKEN set): Slack talks over the socket only, so POST /slack/events answers 404
whether it is signed or not. In both modes a modal submission whose private_metadata was forged (another
incident, a view the bot never opened, a view opened for someone else) changes nothing and the submitter
is told it cannot be accepted."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlmodel import Session, col, select

from bot.core.models import ActionId, IncidentStatus, Level
from bot.sandbox.slack_driver import Response, SlackDriver, text_value
from bot.sandbox.world import COORDINATOR, OUTSIDER, SIGNING_SECRET, TECH_LEAD, SandboxWorld
from bot.store.tables import Decision, Incident, TimelineEvent
from tests.security.helpers import (
    ALERT_CHANNEL,
    COORD_CHANNEL,
    DECISION_CHANNEL,
    FUZZ_CONFIG,
    SocketSandbox,
    ack_text,
    ask_for_decision,
    ephemerals_for,
    escalate_to_l3,
    incident_row,
    incident_state,
    open_l2,
    open_modal,
    row_counts,
    settle_until,
    without_outbox,
)

# ---- what a refused request may not do ----------------------------------------------------------------


def snapshot(world: SandboxWorld) -> tuple[dict[str, int], int, list[dict[str, Any]]]:
    world.settle()
    return row_counts(world), len(world.slack.calls), world.slack.messages(COORD_CHANNEL)


def assert_nothing_changed(
    world: SandboxWorld, before: tuple[dict[str, int], int, list[Any]], what: str
) -> None:
    rows, calls, coord = before
    world.settle()
    assert row_counts(world) == rows, f"{what}: the database changed"
    made = [c.method for c in world.slack.calls[calls:]]
    assert made == [], f"{what}: the bot called Slack: {made}"
    assert world.slack.messages(COORD_CHANNEL) == coord, f"{what}: a message changed"


def slack_requests(
    world: SandboxWorld, driver: SlackDriver, l2: dict[str, Any]
) -> dict[str, Callable[..., Response]]:
    """One request of every kind Slack sends, each of which would change something if it were accepted."""
    actions = next(b for b in l2["blocks"] if b["type"] == "actions")
    ack = next(e for e in actions["elements"] if e["action_id"] == ActionId.ACK)
    alert = {
        "type": "message",
        "channel": world.slack.channel_id(ALERT_CHANNEL),
        "ts": f"{time.time():.6f}",
        "bot_id": "B0OTHERBOT",
        "text": "[FIRING:1] KubeJobFailed (ml-pipelines feature-build-hourly)",
    }
    mention = world.slack.add_message(ALERT_CHANNEL, "<@UBOT> help", user=COORDINATOR)
    mention_event = {**world.slack.message_event(ALERT_CHANNEL, mention["ts"]), "type": "app_mention"}
    meta = {"incident_id": 1, "level": "L2", "channel": world.slack.channel_id(COORD_CHANNEL), "ts": l2["ts"]}
    return {
        "escalate_command": lambda **kw: driver.slash_command(
            "/escalate", "the feature store is down", COORDINATOR, ALERT_CHANNEL, **kw
        ),
        "escalation_ack_command": lambda **kw: driver.slash_command(
            "/escalation", "ack 1", COORDINATOR, COORD_CHANNEL, **kw
        ),
        "ack_button": lambda **kw: driver.block_action(
            COORDINATOR,
            ActionId.ACK,
            ack["value"],
            COORD_CHANNEL,
            l2["ts"],
            block_id=actions["block_id"],
            **kw,
        ),
        "resolve_view_submission": lambda **kw: driver.view_submission(
            COORDINATOR,
            ActionId.RESOLVE_VIEW,
            {"note": {"value": text_value("restarted the step")}},
            private_metadata=json.dumps(meta),
            **kw,
        ),
        "alert_channel_message": lambda **kw: driver.event(alert, **kw),
        "app_mention": lambda **kw: driver.event(mention_event, **kw),
    }


# ---- HTTP mode: signatures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_world() -> Iterator[tuple[SandboxWorld, dict[str, Any]]]:
    with SandboxWorld(config=FUZZ_CONFIG) as world:
        yield world, open_l2(world, 1)


FAULTS: dict[str, Callable[[SandboxWorld], tuple[SlackDriver, dict[str, Any]]]] = {
    "unsigned": lambda w: (w.driver, {"sign": False}),  # type: ignore[dict-item]
    "tampered": lambda w: (w.driver, {"tamper": True}),  # type: ignore[dict-item]
    "signed_6_minutes_ago": lambda w: (w.driver, {"timestamp": int(time.time()) - 6 * 60}),  # type: ignore[dict-item]
    "signed_6_minutes_ahead": lambda w: (w.driver, {"timestamp": int(time.time()) + 6 * 60}),  # type: ignore[dict-item]
    "signed_with_another_secret": lambda w: (SlackDriver(w.url, "not-the-signing-secret", w.slack), {}),
}
KINDS = [
    "escalate_command",
    "escalation_ack_command",
    "ack_button",
    "resolve_view_submission",
    "alert_channel_message",
    "app_mention",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_slack_request_that_is_not_signed_right_gets_401_and_changes_nothing(
    http_world: tuple[SandboxWorld, dict[str, Any]], fault: str, kind: str
) -> None:
    world, l2 = http_world
    driver, signature = FAULTS[fault](world)
    send = slack_requests(world, driver, l2)[kind]
    before = snapshot(world)

    response = send(**signature)

    assert response.status == 401, f"{fault} {kind}: {response.status} {response.text}"
    assert response.json().get("error"), response.text
    assert_nothing_changed(world, before, f"{fault} {kind}")


# ---- Socket Mode: /slack/events is closed -------------------------------------------------------------


@pytest.fixture(scope="module")
def socket_world() -> Iterator[tuple[SandboxWorld, dict[str, Any]]]:
    with SocketSandbox(config=FUZZ_CONFIG) as world:
        yield world, open_l2(world, 1)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_in_socket_mode_post_slack_events_answers_404_and_changes_nothing(
    socket_world: tuple[SandboxWorld, dict[str, Any]], signed: bool, kind: str
) -> None:
    world, l2 = socket_world
    # An HTTP driver that signs with the real signing secret: even a correct signature opens nothing.
    http_driver = SlackDriver(world.url, SIGNING_SECRET, world.slack)
    send = slack_requests(world, http_driver, l2)[kind]
    before = snapshot(world)

    response = send(sign=signed)

    assert response.status == 404, f"socket mode, {kind}, signed={signed}: {response.status} {response.text}"
    assert_nothing_changed(world, before, f"socket mode {kind}")


def test_in_socket_mode_the_url_verification_handshake_is_not_answered(
    socket_world: tuple[SandboxWorld, dict[str, Any]],
) -> None:
    world, _ = socket_world
    response = SlackDriver(world.url, SIGNING_SECRET, world.slack).url_verification("challenge-123")

    assert response.status == 404, f"{response.status} {response.text}"
    assert "challenge-123" not in response.text


# ---- HTTP mode: replays -------------------------------------------------------------------------------


@pytest.fixture
def world() -> Iterator[SandboxWorld]:
    with SandboxWorld(config=FUZZ_CONFIG) as w:
        yield w


def replay_driver(world: SandboxWorld) -> SlackDriver:
    """A driver of its own, so `replay()` sends exactly the request this test sent last."""
    return SlackDriver(world.url, SIGNING_SECRET, world.slack)


def incidents(world: SandboxWorld) -> list[Incident]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Incident).order_by(col(Incident.id))))


def timeline_kinds(world: SandboxWorld, incident_id: int) -> list[str]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        rows = s.exec(select(TimelineEvent).where(TimelineEvent.incident_id == incident_id))
        return [row.kind for row in rows]


def test_a_replayed_escalate_command_opens_one_incident(world: SandboxWorld) -> None:
    driver = replay_driver(world)
    first = driver.slash_command(
        "/escalate", "some problem with the feature store", COORDINATOR, ALERT_CHANNEL
    )
    world.settle()
    assert first.status == 200
    assert [i.title for i in incidents(world)] == ["some problem with the feature store"]

    again = driver.replay()  # the same body and headers, well inside the 5 minutes
    world.settle()

    assert again.status in (200, 401), f"{again.status} {again.text}"
    assert [i.title for i in incidents(world)] == ["some problem with the feature store"]
    assert len(world.slack.messages(COORD_CHANNEL)) == 1


def test_a_replayed_acknowledge_click_acts_once(world: SandboxWorld) -> None:
    l2 = open_l2(world, 1)
    driver = replay_driver(world)
    actions = next(b for b in l2["blocks"] if b["type"] == "actions")
    ack = next(e for e in actions["elements"] if e["action_id"] == ActionId.ACK)
    driver.block_action(COORDINATOR, ActionId.ACK, ack["value"], COORD_CHANNEL, l2["ts"], message=l2)
    world.settle()
    acked = incident_state(world, 1)
    assert acked[:2] == (Level.L2.value, IncidentStatus.ACKNOWLEDGED.value)
    updates = len(world.slack.calls_to("chat.update"))

    again = driver.replay()
    world.settle()

    assert again.status in (200, 401), f"{again.status} {again.text}"
    assert incident_state(world, 1) == acked
    assert timeline_kinds(world, 1).count("acknowledged") == 1
    assert len(world.slack.calls_to("chat.update")) == updates


def test_a_replayed_resolve_click_opens_one_modal(world: SandboxWorld) -> None:
    l2 = open_l2(world, 1)
    driver = replay_driver(world)
    actions = next(b for b in l2["blocks"] if b["type"] == "actions")
    resolve = next(e for e in actions["elements"] if e["action_id"] == ActionId.RESOLVE)
    driver.block_action(COORDINATOR, ActionId.RESOLVE, resolve["value"], COORD_CHANNEL, l2["ts"], message=l2)
    world.settle()
    assert len(world.slack.calls_to("views.open")) == 1

    again = driver.replay()
    world.settle()

    assert again.status in (200, 401), f"{again.status} {again.text}"
    assert len(world.slack.calls_to("views.open")) == 1, "the replayed click was acted on again"


def test_a_replayed_decision_click_decides_once_and_opens_one_rationale_modal(world: SandboxWorld) -> None:
    l4 = ask_for_decision(world, escalate_to_l3(world, open_l2(world, 1)))
    driver = replay_driver(world)
    actions = next(b for b in l4["blocks"] if b["type"] == "actions")
    option = actions["elements"][0]
    driver.block_action(
        "U0DECIDE", option["action_id"], option["value"], DECISION_CHANNEL, l4["ts"], message=l4
    )
    world.settle()
    views, state = len(world.slack.calls_to("views.open")), incident_state(world, 1)

    again = driver.replay()
    world.settle()

    assert again.status in (200, 401), f"{again.status} {again.text}"
    assert incident_state(world, 1) == state
    assert len(world.slack.calls_to("views.open")) == views, "the replayed click was acted on again"
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        [decision] = s.exec(select(Decision)).all()
    assert (decision.status, decision.chosen_by, decision.chosen_index) == ("decided", "U0DECIDE", 0)


def test_a_replayed_resolve_submission_resolves_once(world: SandboxWorld) -> None:
    l2 = open_l2(world, 1)
    world.click(COORDINATOR, ActionId.RESOLVE, COORD_CHANNEL, l2["ts"])
    world.settle()
    view = world.slack.views[-1]
    driver = replay_driver(world)
    driver.view_submission(
        COORDINATOR,
        view["callback_id"],
        {"note": {"value": text_value("re-ran the step with the fixed input path")}},
        private_metadata=view["private_metadata"],
        view_id=view["id"],
    )
    world.settle()
    resolved = incident_state(world, 1)
    assert resolved[1] == IncidentStatus.RESOLVED.value
    rows, posts = without_outbox(row_counts(world)), len(world.slack.calls_to("chat.postMessage"))

    again = driver.replay()
    world.settle()

    assert again.status in (200, 401), f"{again.status} {again.text}"
    assert incident_state(world, 1) == resolved
    assert timeline_kinds(world, 1).count("resolved") == 1
    assert without_outbox(row_counts(world)) == rows
    assert len(world.slack.calls_to("chat.postMessage")) == posts


def test_a_replayed_escalate_modal_submission_opens_one_incident(world: SandboxWorld) -> None:
    assert world.driver is not None
    world.driver.slash_command("/escalate", "", COORDINATOR, ALERT_CHANNEL)
    world.settle()
    view = world.slack.views[-1]
    assert view["callback_id"] == ActionId.ESCALATE_VIEW
    driver = replay_driver(world)
    driver.view_submission(
        COORDINATOR,
        view["callback_id"],
        {"problem": {"value": text_value("the nightly training job cannot read its features")}},
        private_metadata=view["private_metadata"],
        view_id=view["id"],
    )
    world.settle()
    assert len(incidents(world)) == 1

    again = driver.replay()
    world.settle()

    assert again.status in (200, 401), f"{again.status} {again.text}"
    assert len(incidents(world)) == 1, "the replayed submission opened a second incident"
    assert len(world.slack.messages(COORD_CHANNEL)) == 1


# ---- both modes: forged private_metadata --------------------------------------------------------------

NOT_ACCEPTED = re.compile(r"accept", re.IGNORECASE)


@pytest.fixture(params=["http", "socket_mode"])
def any_world(request: pytest.FixtureRequest) -> Iterator[SandboxWorld]:
    make = SandboxWorld if request.param == "http" else SocketSandbox
    with make(config=FUZZ_CONFIG) as w:
        yield w


def submit(
    world: SandboxWorld, user: str, view: dict[str, Any], values: dict[str, Any], **overrides: Any
) -> Response:
    assert world.driver is not None
    return world.driver.view_submission(
        user,
        overrides.get("callback_id", view["callback_id"]),
        values,
        private_metadata=overrides.get("private_metadata", view["private_metadata"]),
        view_id=overrides.get("view_id", view["id"]),
    )


def assert_told_not_accepted(world: SandboxWorld, user: str, response: Response, told_before: int) -> None:
    """Refused in the form (`response_action: errors`, or the form replaced by a notice with `update`), or
    told ephemerally, that it cannot be accepted."""
    inline: list[str] = []
    if response.body:
        answer = response.json()
        if isinstance(answer, dict) and answer.get("response_action") == "errors":
            inline = [str(m) for m in (answer.get("errors") or {}).values()]
        if isinstance(answer, dict) and answer.get("response_action") == "update":
            inline = [json.dumps(answer.get("view"))]
    told = inline + ephemerals_for(world, user)[told_before:]
    assert any(NOT_ACCEPTED.search(t) for t in told), (
        f"{user} was told {told!r}, not that it cannot be accepted"
    )


def resolve_modal_for(world: SandboxWorld, user: str, l2: dict[str, Any]) -> dict[str, Any]:
    view = open_modal(world, user, ActionId.RESOLVE, COORD_CHANNEL, l2)
    assert view["callback_id"] == ActionId.RESOLVE_VIEW
    return view


NOTE = {"note": {"value": text_value("restarted the step")}}


def test_a_resolve_submission_whose_metadata_names_another_incident_changes_nothing(
    any_world: SandboxWorld,
) -> None:
    world = any_world
    l2_first, _l2_second = open_l2(world, 1), open_l2(world, 2)
    view = resolve_modal_for(world, COORDINATOR, l2_first)
    forged = {**json.loads(view["private_metadata"]), "incident_id": 2}
    before = (incident_state(world, 1), incident_state(world, 2), without_outbox(row_counts(world)))
    told = len(ephemerals_for(world, COORDINATOR))

    response = submit(world, COORDINATOR, view, NOTE, private_metadata=json.dumps(forged))
    world.settle()

    assert (incident_state(world, 1), incident_state(world, 2), without_outbox(row_counts(world))) == before
    assert_told_not_accepted(world, COORDINATOR, response, told)


def test_a_resolve_submission_of_a_view_the_bot_never_opened_changes_nothing(any_world: SandboxWorld) -> None:
    world = any_world
    l2 = open_l2(world, 1)
    meta = {"incident_id": 1, "level": "L2", "channel": world.slack.channel_id(COORD_CHANNEL), "ts": l2["ts"]}
    view = {"callback_id": ActionId.RESOLVE_VIEW, "private_metadata": json.dumps(meta), "id": "V0NEVEROPENED"}
    before = (incident_state(world, 1), without_outbox(row_counts(world)))
    told = len(ephemerals_for(world, COORDINATOR))

    response = submit(world, COORDINATOR, view, NOTE)
    world.settle()

    assert (incident_state(world, 1), without_outbox(row_counts(world))) == before
    assert_told_not_accepted(world, COORDINATOR, response, told)


def test_a_resolve_modal_opened_for_one_person_cannot_be_submitted_by_another(
    any_world: SandboxWorld,
) -> None:
    world = any_world
    l2 = open_l2(world, 1)
    view = resolve_modal_for(world, COORDINATOR, l2)
    before = (incident_state(world, 1), without_outbox(row_counts(world)))
    told = len(ephemerals_for(world, TECH_LEAD))

    # The tech lead may act at Level 2, but this modal was opened for the coordinator.
    response = submit(world, TECH_LEAD, view, NOTE)
    world.settle()

    assert (incident_state(world, 1), without_outbox(row_counts(world))) == before
    assert_told_not_accepted(world, TECH_LEAD, response, told)


def test_an_escalate_modal_opened_for_one_person_cannot_be_submitted_by_another(
    any_world: SandboxWorld,
) -> None:
    world = any_world
    assert world.driver is not None
    world.driver.slash_command("/escalate", "", OUTSIDER, ALERT_CHANNEL)
    settle_until(world, lambda: len(world.slack.views) == 1, "/escalate opened no modal")
    view = world.slack.views[-1]
    assert view["callback_id"] == ActionId.ESCALATE_VIEW
    before = without_outbox(row_counts(world))
    told = len(ephemerals_for(world, COORDINATOR))

    response = submit(world, COORDINATOR, view, {"problem": {"value": text_value("the registry is down")}})
    world.settle()

    assert without_outbox(row_counts(world)) == before
    assert incidents(world) == []
    assert_told_not_accepted(world, COORDINATOR, response, told)


def test_an_escalate_modal_the_bot_never_opened_opens_no_incident(any_world: SandboxWorld) -> None:
    world = any_world
    meta = json.dumps({"channel": world.slack.channel_id(ALERT_CHANNEL)})
    view = {"callback_id": ActionId.ESCALATE_VIEW, "private_metadata": meta, "id": "V0NEVEROPENED"}
    told = len(ephemerals_for(world, COORDINATOR))

    response = submit(world, COORDINATOR, view, {"problem": {"value": text_value("the registry is down")}})
    world.settle()

    assert incidents(world) == []
    assert world.slack.messages(COORD_CHANNEL) == []
    assert_told_not_accepted(world, COORDINATOR, response, told)


def test_an_escalate_to_tech_lead_submission_whose_metadata_names_another_incident_changes_nothing(
    any_world: SandboxWorld,
) -> None:
    world = any_world
    l2_first, _l2_second = open_l2(world, 1), open_l2(world, 2)
    view = open_modal(world, COORDINATOR, ActionId.ESCALATE_L3, COORD_CHANNEL, l2_first)
    assert view["callback_id"] == ActionId.ESCALATE_L3_VIEW
    forged = {**json.loads(view["private_metadata"]), "incident_id": 2}
    before = (incident_state(world, 1), incident_state(world, 2), without_outbox(row_counts(world)))
    told = len(ephemerals_for(world, COORDINATOR))
    values = {
        "trigger": {"value": {"type": "static_select", "selected_option": {"value": "scalability"}}},
        "reason": {"value": text_value("needs a bigger cluster")},
    }

    response = submit(world, COORDINATOR, view, values, private_metadata=json.dumps(forged))
    world.settle()

    assert (incident_state(world, 1), incident_state(world, 2), without_outbox(row_counts(world))) == before
    assert world.slack.messages("#tech-leads") == []
    assert_told_not_accepted(world, COORDINATOR, response, told)


def test_an_unforged_resolve_submission_still_resolves(any_world: SandboxWorld) -> None:
    """The control for the forgeries above: the modal the bot opened, submitted by its person, works."""
    world = any_world
    view = resolve_modal_for(world, COORDINATOR, open_l2(world, 1))

    response = submit(world, COORDINATOR, view, NOTE)
    world.settle()

    assert response.status == 200 and ack_text(response) == ""
    assert incident_row(world, 1).status == IncidentStatus.RESOLVED.value
    assert incident_row(world, 1).resolved_by == COORDINATOR


def _post_with_headers(url: str, path: str, body: bytes, headers: list[tuple[str, str]]) -> tuple[int, str]:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)
    try:
        conn.putrequest("POST", path)
        for name, value in [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *headers,
        ]:
            conn.putheader(name, value)
        conn.endheaders(body)
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


@pytest.mark.parametrize("order", ["good first", "bad first"])
def test_a_webhook_with_two_authorization_headers_is_refused_whichever_comes_first(
    world: SandboxWorld, order: str
) -> None:
    from bot.sandbox.world import PIPELINE_ALERT, WEBHOOK_TOKEN, alertmanager_payload

    good, bad = f"Bearer {WEBHOOK_TOKEN}", "Bearer not-the-token"
    pair = [good, bad] if order == "good first" else [bad, good]
    body = json.dumps(alertmanager_payload([PIPELINE_ALERT])).encode()
    status, text = _post_with_headers(
        world.url, "/alerts/alertmanager", body, [("Authorization", v) for v in pair]
    )
    assert status == 401 and "more than one Authorization header" in text
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        assert s.exec(select(Incident)).first() is None
    status, _ = _post_with_headers(world.url, "/alerts/alertmanager", body, [("Authorization", good)])
    assert status in (200, 202)  # one header, the right token: accepted
