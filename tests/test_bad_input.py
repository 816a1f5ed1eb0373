"""Every entry point refuses bad input with a clear message, and a refused request changes nothing.

Slack requests go to the bot signed (or mis-signed) exactly as Slack sends them, Alertmanager
webhooks are posted over HTTP, and what happened is read back from the Slack emulator and the database.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import inspect, text
from sqlmodel import Session, select

from bot.core.models import ActionId, IncidentStatus, Level
from bot.sandbox.slack_driver import Response, select_value, text_value
from bot.sandbox.slack_emulator import BOT_ID
from bot.sandbox.world import (
    COORDINATOR,
    DECIDER,
    OUTSIDER,
    PIPELINE_ALERT,
    TECH_LEAD,
    WEBHOOK_TOKEN,
    SandboxWorld,
    alertmanager_payload,
)
from bot.store.tables import Decision, Incident

COORD_CHANNEL, LEAD_CHANNEL, DECISION_CHANNEL, ALERT_CHANNEL = (
    "#data-coordinator",
    "#tech-leads",
    "#ml-decisions",
    "#ml-alerts",
)
# Reads the bot may make to check who is in the coordinator / tech-lead / decider groups.
GROUP_READS = {"usergroups.list", "usergroups.users.list"}


# ---- reading the world back ---------------------------------------------------------------------------


def row_counts(world: SandboxWorld) -> dict[str, int]:
    """Rows in every table of the bot's database (incidents, timeline, outbox, decisions, …)."""
    assert world.bot is not None
    engine = world.bot.services.engine
    tables = sorted(t for t in inspect(engine).get_table_names() if t != "alembic_version")
    assert {"alerts", "incidents", "timeline", "outbox", "decisions", "escalations", "timers"} <= set(tables)
    with Session(engine) as s:
        return {
            t: int(s.connection().execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one()) for t in tables
        }


def without_outbox(counts: dict[str, int]) -> dict[str, int]:
    """Row counts apart from the outbox (where an ephemeral answer to the person who clicked is queued)
    and the inbox (where every signed request is stored before it is acknowledged)."""
    return {table: n for table, n in counts.items() if table not in ("outbox", "inbox")}


def incident(world: SandboxWorld, incident_id: int = 1) -> Incident:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        return inc


def incident_state(world: SandboxWorld, incident_id: int = 1) -> tuple[Any, ...]:
    inc = incident(world, incident_id)
    return inc.level, inc.status, inc.version, inc.acked_by, inc.resolved_by, inc.resolution_note


def decision(world: SandboxWorld) -> Decision:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        dec = s.exec(select(Decision)).one()
        return dec


def methods_since(world: SandboxWorld, mark: int) -> list[str]:
    return [c.method for c in world.slack.calls[mark:]]


def latest(world: SandboxWorld, channel: str) -> dict[str, Any]:
    return world.slack.messages(channel)[-1]


def ephemeral_texts(world: SandboxWorld, user: str) -> list[str]:
    return [e["text"] for e in world.slack.ephemerals(user=user)]


# ---- getting an incident to a level -------------------------------------------------------------------


def open_l2(world: SandboxWorld) -> dict[str, Any]:
    """A failing pipeline step that Level 1 cannot fix: INC-1's Level 2 message in #data-coordinator."""
    assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202
    world.settle()
    assert incident_state(world)[:2] == (Level.L2.value, IncidentStatus.OPEN.value)
    return latest(world, COORD_CHANNEL)


def escalate_to_l3(world: SandboxWorld, l2: dict[str, Any]) -> dict[str, Any]:
    world.click(COORDINATOR, ActionId.ESCALATE_L3, COORD_CHANNEL, l2["ts"])
    world.settle()
    world.submit_latest_view(
        COORDINATOR,
        {
            "trigger": {"value": select_value("architecture_redesign")},
            "reason": {
                "value": text_value("The upstream partition layout changed; the step needs a redesign.")
            },
        },
    )
    world.settle()
    assert incident_state(world)[:2] == (Level.L3.value, IncidentStatus.OPEN.value)
    return latest(world, LEAD_CHANNEL)


def ask_for_decision(world: SandboxWorld, l3: dict[str, Any]) -> dict[str, Any]:
    world.click(TECH_LEAD, ActionId.ASK_DECISION, LEAD_CHANNEL, l3["ts"])
    world.settle()
    world.submit_latest_view(TECH_LEAD, {"question": {"value": text_value("How do we proceed tonight?")}})
    world.settle()
    assert incident_state(world)[:2] == (Level.L4.value, IncidentStatus.DECISION_PENDING.value)
    return latest(world, DECISION_CHANNEL)


def option(n: int) -> str:
    return f"{ActionId.DECISION_OPTION}_{n}"


def click_on(
    world: SandboxWorld, user: str, action_id: str, channel: str, message: dict[str, Any]
) -> Response:
    """Click a button on `message` as it was when it was fetched (an old copy still shows used buttons)."""
    assert world.driver is not None
    for block in message.get("blocks", []):
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return world.driver.block_action(
                    user,
                    action_id,
                    element["value"],
                    channel,
                    message["ts"],
                    block_id=block.get("block_id", "b"),
                    message=message,
                )
    raise LookupError(f"no button {action_id} on message {message['ts']}")


# ---- 1. Slack signatures ------------------------------------------------------------------------------

BAD_SIGNATURES: dict[str, Callable[[], dict[str, Any]]] = {
    "unsigned": lambda: {"sign": False},
    "tampered": lambda: {"tamper": True},  # the body is changed after it was signed
    "signed_6_minutes_ago": lambda: {"timestamp": int(time.time()) - 6 * 60},
}
# What the 401 says, per fault: the missing timestamp header, or the signature that does not match.
SAYS = {
    "unsigned": "X-Slack-Request-Timestamp must be a Unix time in seconds",
    "tampered": "the Slack signature does not match",
    "signed_6_minutes_ago": "older than 5 minutes",
}


@pytest.mark.parametrize("fault", list(BAD_SIGNATURES))
def test_a_slack_request_with_a_bad_signature_gets_401_and_changes_nothing(
    world: SandboxWorld, fault: str
) -> None:
    signature = BAD_SIGNATURES[fault]()
    l2 = open_l2(world)
    assert world.driver is not None
    driver = world.driver
    actions = next(b for b in l2["blocks"] if b["type"] == "actions")
    ack_button = next(e for e in actions["elements"] if e["action_id"] == ActionId.ACK)
    mention = world.slack.add_message(ALERT_CHANNEL, "<@UBOT> what can you do?", user=COORDINATOR)
    mention_event = {**world.slack.message_event(ALERT_CHANNEL, mention["ts"]), "type": "app_mention"}
    block_id, value = actions["block_id"], ack_button["value"]
    requests: dict[str, Callable[[], Response]] = {
        "block action": lambda: driver.block_action(
            COORDINATOR, ActionId.ACK, value, COORD_CHANNEL, l2["ts"], block_id=block_id, **signature
        ),
        "slash command": lambda: driver.slash_command(
            "/escalation", "ack 1", COORDINATOR, COORD_CHANNEL, **signature
        ),
        "event": lambda: driver.event(mention_event, **signature),
    }
    before_rows, before_state, before_calls = row_counts(world), incident_state(world), len(world.slack.calls)

    for kind, send in requests.items():
        response = send()
        assert response.status == 401, f"{kind}: {response.status} {response.text}"
        assert SAYS[fault] in response.json()["error"], kind
    world.settle()

    assert row_counts(world) == before_rows
    assert incident_state(world) == before_state
    assert methods_since(world, before_calls) == []
    assert world.slack.message(COORD_CHANNEL, l2["ts"]) == l2
    assert world.slack.thread(ALERT_CHANNEL, mention["ts"]) == []


# ---- 2. Alertmanager webhook --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def refusing_world() -> Iterator[SandboxWorld]:
    """One world for the webhook refusals: each test checks that its own refused request stored nothing."""
    with SandboxWorld() as w:
        yield w


def _assert_nothing_accepted(world: SandboxWorld, before: dict[str, int]) -> None:
    world.settle()
    after = row_counts(world)
    assert after == before
    assert after["alerts"] == after["incidents"] == 0
    assert world.kube.requests == []
    assert world.slack.messages(ALERT_CHANNEL) == []


def _without_alerts(p: dict[str, Any]) -> None:
    del p["alerts"]


def _burning(p: dict[str, Any]) -> None:
    p["alerts"][0]["status"] = "burning"


def _version_3(p: dict[str, Any]) -> None:
    p["version"] = "3"


def _without_labels(p: dict[str, Any]) -> None:
    del p["alerts"][0]["labels"]


MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], None] | bytes, str]] = {
    "not_json": (b'{"version": "4", "alerts": [', "body"),
    "missing_alerts": (_without_alerts, "alerts"),
    "status_burning": (_burning, "alerts[0].status"),
    "version_3": (_version_3, "version"),
    "missing_labels": (_without_labels, "alerts[0].labels"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_alertmanager_payload_gets_400_naming_the_field_and_stores_nothing(
    refusing_world: SandboxWorld, case: str
) -> None:
    change, field = MALFORMED[case]
    if isinstance(change, bytes):
        body = change
    else:
        payload = alertmanager_payload([PIPELINE_ALERT])
        change(payload)
        body = json.dumps(payload).encode()
    before = row_counts(refusing_world)

    response = refusing_world.post_alerts(body)

    assert response.status == 400, response.text
    answer = response.json()
    assert answer["field"] == field
    assert answer["error"].startswith(f"invalid Alertmanager payload: {field}: ")
    _assert_nothing_accepted(refusing_world, before)


@pytest.mark.parametrize(
    "token", [None, "not-the-token", f"{WEBHOOK_TOKEN}x"], ids=["missing", "wrong", "longer"]
)
def test_an_alertmanager_webhook_without_the_bearer_token_gets_401_and_stores_nothing(
    refusing_world: SandboxWorld, token: str | None
) -> None:
    before = row_counts(refusing_world)

    response = refusing_world.post_alerts(alertmanager_payload([PIPELINE_ALERT]), token=token)

    assert response.status == 401
    assert "bearer token" in response.json()["error"]
    _assert_nothing_accepted(refusing_world, before)


def _connect(world: SandboxWorld, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(world.url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)


def _start(conn: http.client.HTTPConnection, **headers: str) -> None:
    conn.putrequest("POST", "/alerts/alertmanager")
    for name, value in {
        "Authorization": f"Bearer {WEBHOOK_TOKEN}",
        "Content-Type": "application/json",
        **headers,
    }.items():
        conn.putheader(name, value)
    conn.endheaders()


def _send_chunks(conn: http.client.HTTPConnection, body: bytes, size: int = 50_000) -> None:
    for i in range(0, len(body), size):
        chunk = body[i : i + size]
        conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")


def _big_body() -> bytes:
    """A well-formed webhook of about 1.1 MB: it would be accepted if it were not too large."""
    annotations = {"summary": "Job ml-pipelines/feature-build-daily failed", "description": "x" * 1_100_000}
    return json.dumps(alertmanager_payload([{**PIPELINE_ALERT, "annotations": annotations}])).encode()


def _answer(conn: http.client.HTTPConnection) -> tuple[int, dict[str, Any]]:
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def test_an_alertmanager_body_declared_over_1_mb_gets_413_before_it_is_sent(
    refusing_world: SandboxWorld,
) -> None:
    before = row_counts(refusing_world)
    conn = _connect(refusing_world, timeout=10)
    try:
        # Only the headers are sent: the declared length is enough to refuse it.
        _start(conn, **{"Content-Length": str(len(_big_body()))})
        status, answer = _answer(conn)
    finally:
        conn.close()

    assert status == 413
    assert "larger than 1000000 bytes" in answer["error"]
    _assert_nothing_accepted(refusing_world, before)


def test_an_alertmanager_body_streamed_without_a_length_over_1_mb_gets_413(
    refusing_world: SandboxWorld,
) -> None:
    before = row_counts(refusing_world)
    conn = _connect(refusing_world, timeout=10)
    try:
        _start(conn, **{"Transfer-Encoding": "chunked"})
        _send_chunks(conn, _big_body())
        conn.send(b"0\r\n\r\n")
        status, answer = _answer(conn)
    finally:
        conn.close()

    assert status == 413
    assert "larger than 1000000 bytes" in answer["error"]
    _assert_nothing_accepted(refusing_world, before)


def test_an_endless_streamed_alertmanager_body_is_refused_once_it_passes_1_mb(
    refusing_world: SandboxWorld,
) -> None:
    before = row_counts(refusing_world)
    conn = _connect(refusing_world, timeout=5)
    try:
        _start(conn, **{"Transfer-Encoding": "chunked"})
        # Just past the limit, and the stream never ends: the answer must not wait for its end.
        _send_chunks(conn, _big_body()[:1_000_100])
        status, answer = _answer(conn)
    finally:
        conn.close()

    assert status == 413
    assert "larger than 1000000 bytes" in answer["error"]
    _assert_nothing_accepted(refusing_world, before)


# ---- 3. Slack event retries ---------------------------------------------------------------------------


def _mention(world: SandboxWorld) -> tuple[dict[str, Any], dict[str, Any]]:
    msg = world.slack.add_message(ALERT_CHANNEL, "<@UBOT> help", user=COORDINATOR)
    return msg, {**world.slack.message_event(ALERT_CHANNEL, msg["ts"]), "type": "app_mention"}


def _bot_replies(world: SandboxWorld, msg: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in world.slack.thread(ALERT_CHANNEL, msg["ts"]) if m.get("bot_id") == BOT_ID]


def _at_once(*sends: Callable[[], Response]) -> list[int]:
    """Send the requests concurrently (released together) and return their statuses in order."""
    gate = threading.Barrier(len(sends))
    statuses: list[int] = [0] * len(sends)

    def run(i: int, send: Callable[[], Response]) -> None:
        gate.wait()
        statuses[i] = send().status

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(sends)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return statuses


def test_a_retried_slack_event_is_acked_and_processed_once(world: SandboxWorld) -> None:
    assert world.driver is not None
    driver = world.driver
    msg, event = _mention(world)

    first = driver.event(event, event_id="Ev0RETRY0001")
    world.settle()
    assert first.status == 200
    assert len(_bot_replies(world, msg)) == 1
    posts = len(world.slack.calls_to("chat.postMessage"))

    statuses = _at_once(
        lambda: driver.event(event, event_id="Ev0RETRY0001", retry_num=1),
        lambda: driver.event(event, event_id="Ev0RETRY0001", retry_num=2, retry_reason="http_error"),
        lambda: driver.event(event, event_id="Ev0RETRY0001"),
    )
    world.settle()

    assert statuses == [200, 200, 200]  # acked, so Slack stops retrying
    assert len(_bot_replies(world, msg)) == 1
    assert len(world.slack.calls_to("chat.postMessage")) == posts


def test_concurrent_first_deliveries_of_one_slack_event_are_processed_once(world: SandboxWorld) -> None:
    assert world.driver is not None
    driver = world.driver
    msg, event = _mention(world)

    statuses = _at_once(*[lambda: driver.event(event, event_id="Ev0TWICE0001")] * 4)
    world.settle()

    assert statuses == [200] * 4
    assert len(_bot_replies(world, msg)) == 1
    assert "/escalation" in _bot_replies(world, msg)[0]["text"]


# ---- 4. Unauthorised clicks ---------------------------------------------------------------------------


def _assert_only_told_not_allowed(world: SandboxWorld, mark: int, user: str, level: str) -> None:
    called = methods_since(world, mark)
    assert "views.open" not in called
    assert set(called) <= GROUP_READS | {"chat.postEphemeral"}, called
    assert called.count("chat.postEphemeral") == 1
    told = ephemeral_texts(world, user)
    assert len(told) == 1
    assert "not allowed" in told[0].lower()
    assert f"INC-1 at {level}" in told[0]


@pytest.mark.parametrize(
    "button",
    [ActionId.ACK, ActionId.RESOLVE, ActionId.ESCALATE_L3],
    ids=["acknowledge", "resolved", "escalate_to_tech_lead"],
)
def test_an_outsider_clicking_an_l2_button_is_told_no_and_nothing_changes(
    world: SandboxWorld, button: str
) -> None:
    l2 = open_l2(world)
    before_rows, before_state, mark = row_counts(world), incident_state(world), len(world.slack.calls)

    response = world.click(OUTSIDER, button, COORD_CHANNEL, l2["ts"])
    world.settle()

    assert response.status == 200
    _assert_only_told_not_allowed(world, mark, OUTSIDER, "L2")
    assert incident_state(world) == before_state
    assert world.slack.message(COORD_CHANNEL, l2["ts"]) == l2
    assert world.slack.views == []
    after = row_counts(world)
    assert after["outbox"] == before_rows["outbox"] + 1  # the ephemeral answer, and nothing else
    assert without_outbox(after) == without_outbox(before_rows)


@pytest.mark.parametrize(
    "who", [OUTSIDER, COORDINATOR, TECH_LEAD], ids=["outsider", "coordinator", "tech_lead"]
)
def test_someone_who_is_not_a_decider_cannot_choose_an_l4_option(world: SandboxWorld, who: str) -> None:
    l4 = ask_for_decision(world, escalate_to_l3(world, open_l2(world)))
    views = len(world.slack.views)
    before_rows, before_state, mark = row_counts(world), incident_state(world), len(world.slack.calls)
    told_before = len(ephemeral_texts(world, who))

    response = world.click(who, option(0), DECISION_CHANNEL, l4["ts"])
    world.settle()

    assert response.status == 200
    called = methods_since(world, mark)
    assert "views.open" not in called
    assert set(called) <= GROUP_READS | {"chat.postEphemeral"}, called
    told = ephemeral_texts(world, who)[told_before:]
    assert len(told) == 1
    assert "not allowed" in told[0].lower()
    assert "INC-1 at L4" in told[0]
    assert len(world.slack.views) == views
    assert incident_state(world) == before_state
    dec = decision(world)
    assert (dec.status, dec.chosen_by, dec.chosen_index) == ("pending", None, None)
    assert world.slack.message(DECISION_CHANNEL, l4["ts"]) == l4
    assert without_outbox(row_counts(world)) == without_outbox(before_rows)


# ---- 5. Buttons that were already used ----------------------------------------------------------------


def test_every_button_on_an_l2_message_already_escalated_answers_already_decided(world: SandboxWorld) -> None:
    old_l2 = open_l2(world)
    l3 = escalate_to_l3(world, old_l2)
    views, l3_messages = len(world.slack.views), world.slack.messages(LEAD_CHANNEL)
    before_rows, before_state = row_counts(world), incident_state(world)
    updated_l2 = world.slack.message(COORD_CHANNEL, old_l2["ts"])

    for button in (ActionId.ESCALATE_L3, ActionId.RESOLVE, ActionId.ACK):
        mark, told_before = len(world.slack.calls), len(ephemeral_texts(world, COORDINATOR))
        response = click_on(world, COORDINATOR, button, COORD_CHANNEL, old_l2)
        world.settle()

        assert response.status == 200, button
        assert set(methods_since(world, mark)) <= GROUP_READS | {"chat.postEphemeral"}, button
        told = ephemeral_texts(world, COORDINATOR)[told_before:]
        assert len(told) == 1, button
        assert re.search(rf"already decided by <@{COORDINATOR}>", told[0], re.IGNORECASE), told[0]
        assert "escalated" in told[0]

    assert len(world.slack.views) == views  # no second modal
    assert incident_state(world) == before_state
    assert world.slack.messages(LEAD_CHANNEL) == l3_messages == [l3]
    assert world.slack.message(COORD_CHANNEL, old_l2["ts"]) == updated_l2
    assert without_outbox(row_counts(world)) == without_outbox(before_rows)


def test_a_second_acknowledge_is_answered_with_who_acknowledged_first(world: SandboxWorld) -> None:
    l2 = open_l2(world)
    assert world.click(COORDINATOR, ActionId.ACK, COORD_CHANNEL, l2["ts"]).status == 200
    world.settle()
    before_state, acked_message = incident_state(world), world.slack.message(COORD_CHANNEL, l2["ts"])
    assert before_state[:2] == (Level.L2.value, IncidentStatus.ACKNOWLEDGED.value)
    mark = len(world.slack.calls)

    # The tech lead's Slack still shows the message as it was, with its Acknowledge button.
    response = click_on(world, TECH_LEAD, ActionId.ACK, COORD_CHANNEL, l2)
    world.settle()

    assert response.status == 200
    assert set(methods_since(world, mark)) <= GROUP_READS | {"chat.postEphemeral"}
    told = ephemeral_texts(world, TECH_LEAD)
    assert len(told) == 1
    assert "already decided by" in told[0].lower()
    assert f"<@{COORDINATOR}>" in told[0]
    assert incident_state(world) == before_state
    assert world.slack.message(COORD_CHANNEL, l2["ts"]) == acked_message


def _choose(world: SandboxWorld, l4: dict[str, Any], index: int) -> None:
    assert world.click(DECIDER, option(index), DECISION_CHANNEL, l4["ts"]).status == 200
    world.settle()
    dec = decision(world)
    assert (dec.status, dec.chosen_by, dec.chosen_index) == ("decided", DECIDER, index)


def test_a_second_decision_click_is_answered_already_decided_and_changes_nothing(world: SandboxWorld) -> None:
    l4 = ask_for_decision(world, escalate_to_l3(world, open_l2(world)))
    _choose(world, l4, 1)
    views, before_state = len(world.slack.views), incident_state(world)
    before_rows, decided_message = row_counts(world), world.slack.message(DECISION_CHANNEL, l4["ts"])
    mark, told_before = len(world.slack.calls), len(ephemeral_texts(world, DECIDER))

    # Clicked on the copy of the message that still shows the options.
    response = click_on(world, DECIDER, option(0), DECISION_CHANNEL, l4)
    world.settle()

    assert response.status == 200
    assert set(methods_since(world, mark)) <= GROUP_READS | {"chat.postEphemeral"}
    told = ephemeral_texts(world, DECIDER)[told_before:]
    assert len(told) == 1
    assert "already decided by" in told[0].lower()
    assert len(world.slack.views) == views  # no second rationale modal
    dec = decision(world)
    assert (dec.status, dec.chosen_by, dec.chosen_index) == ("decided", DECIDER, 1)
    assert incident_state(world) == before_state
    assert world.slack.message(DECISION_CHANNEL, l4["ts"]) == decided_message
    assert without_outbox(row_counts(world)) == without_outbox(before_rows)


def test_a_second_decision_click_after_the_choice_was_carried_out_names_who_decided(
    world: SandboxWorld,
) -> None:
    l4 = ask_for_decision(world, escalate_to_l3(world, open_l2(world)))
    _choose(world, l4, 1)
    chosen = decision(world).chosen_label
    assert incident_state(world)[1] == IncidentStatus.RESOLVED.value  # the choice was acted on
    told_before = len(ephemeral_texts(world, DECIDER))

    click_on(world, DECIDER, option(0), DECISION_CHANNEL, l4)
    world.settle()

    told = ephemeral_texts(world, DECIDER)[told_before:]
    assert len(told) == 1
    assert "already decided by" in told[0].lower()
    assert f"<@{DECIDER}>" in told[0]
    assert str(chosen) in told[0]


# ---- 6. Modal validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("note", ["", "   \n  "], ids=["empty", "blank"])
def test_the_resolve_modal_refuses_an_empty_note_in_the_form_and_nothing_changes(
    world: SandboxWorld, note: str
) -> None:
    l2 = open_l2(world)
    world.click(COORDINATOR, ActionId.RESOLVE, COORD_CHANNEL, l2["ts"])
    world.settle()
    assert world.slack.views[-1]["callback_id"] == ActionId.RESOLVE_VIEW
    before_rows, before_state, mark = row_counts(world), incident_state(world), len(world.slack.calls)

    response = world.submit_latest_view(COORDINATOR, {"note": {"value": text_value(note)}})
    world.settle()

    assert response.status == 200
    answer = response.json()
    assert answer["response_action"] == "errors"
    assert list(answer["errors"]) == ["note"]
    assert answer["errors"]["note"].strip()
    assert without_outbox(row_counts(world)) == without_outbox(before_rows)
    assert row_counts(world)["outbox"] == before_rows["outbox"]
    assert incident_state(world) == before_state
    assert methods_since(world, mark) == []
    assert world.slack.message(COORD_CHANNEL, l2["ts"]) == l2


def test_the_escalate_modal_refuses_a_missing_reason_in_the_form_and_nothing_changes(
    world: SandboxWorld,
) -> None:
    l2 = open_l2(world)
    world.click(COORDINATOR, ActionId.ESCALATE_L3, COORD_CHANNEL, l2["ts"])
    world.settle()
    before_rows, before_state, mark = row_counts(world), incident_state(world), len(world.slack.calls)

    response = world.submit_latest_view(
        COORDINATOR,
        {"trigger": {"value": select_value("architecture_redesign")}, "reason": {"value": text_value("")}},
    )
    world.settle()

    assert response.json()["response_action"] == "errors"
    assert list(response.json()["errors"]) == ["reason"]
    assert without_outbox(row_counts(world)) == without_outbox(before_rows)
    assert row_counts(world)["outbox"] == before_rows["outbox"]
    assert incident_state(world) == before_state
    assert methods_since(world, mark) == []
    assert world.slack.messages(LEAD_CHANNEL) == []
