"""The local Slack workspace and the signed-request driver, exercised through the real slack_sdk client."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    FixedValueRetryIntervalCalculator,
    RateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier

from bot.core.clock import FakeClock
from bot.sandbox.slack_driver import SlackDriver, select_value, text_value
from bot.sandbox.slack_emulator import SlackEmulator

SECRET = "sandbox-signing-secret"


def seconds(clock: FakeClock) -> Callable[[], float]:
    """The emulator's clock (seconds, as `time.monotonic` gives them) read from the test's fake clock."""
    return lambda: clock.now().timestamp()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[SlackEmulator]:
    with SlackEmulator(clock=seconds(clock)) as emulator:
        yield emulator


@pytest.fixture
def client(emu: SlackEmulator) -> WebClient:
    return WebClient(token=emu.bot_token, base_url=emu.api_url, retry_handlers=[])


def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as info:
        call()
    return str(info.value.response["error"])


def test_a_post_and_its_thread_reply_read_back_through_history_and_replies(
    emu: SlackEmulator, client: WebClient
) -> None:
    parent = client.chat_postMessage(channel="#ml-alerts", text="Training crashed")
    reply = client.chat_postMessage(
        channel=parent["channel"], text="Error: OOMKilled", thread_ts=parent["ts"]
    )

    assert parent["channel"] == emu.channel_id("ml-alerts") and parent["channel"].startswith("C")
    assert parent["message"]["bot_id"] == "BBOT" and parent["message"]["user"] == "UBOT"
    assert float(reply["ts"]) > float(parent["ts"])
    history = client.conversations_history(channel="ml-alerts")["messages"]
    assert [m["text"] for m in history] == ["Training crashed"]
    assert history[0]["reply_count"] == 1 and history[0]["reply_users"] == ["UBOT"]
    replies = client.conversations_replies(channel=parent["channel"], ts=parent["ts"])["messages"]
    assert [m["text"] for m in replies] == ["Training crashed", "Error: OOMKilled"]
    assert replies[1]["thread_ts"] == parent["ts"]
    assert [m["text"] for m in emu.thread("#ml-alerts", parent["ts"])] == ["Error: OOMKilled"]
    assert (
        error_of(lambda: client.conversations_replies(channel="ml-alerts", ts="1.000001"))
        == "thread_not_found"
    )


def test_channels_resolve_by_name_and_bot_membership_is_enforced(
    emu: SlackEmulator, client: WebClient
) -> None:
    private = emu.add_channel("team-random", members=["U1"])
    emu.archive("escalation-admin")

    assert error_of(lambda: client.chat_postMessage(channel="#nope", text="x")) == "channel_not_found"
    assert error_of(lambda: client.chat_postMessage(channel=private, text="x")) == "not_in_channel"
    assert error_of(lambda: client.chat_postMessage(channel="escalation-admin", text="x")) == "is_archived"
    with pytest.warns(UserWarning):  # slack_sdk warns about a missing `text` before sending
        assert error_of(lambda: client.chat_postMessage(channel="ml-alerts", text="")) == "no_text"
    info = client.conversations_info(channel="#tech-leads")["channel"]
    assert info["name"] == "tech-leads" and info["is_member"] is True
    names = [c["name"] for c in client.conversations_list(limit=2)["channels"]]
    assert len(names) == 2
    every = [c["name"] for page in client.conversations_list(limit=2) for c in page["channels"]]
    assert {"ml-alerts", "data-coordinator", "tech-leads", "ml-decisions", "team-random"} <= set(every)


def test_the_bot_updates_its_own_message_but_not_an_alertmanager_post(
    emu: SlackEmulator, client: WebClient
) -> None:
    own = client.chat_postMessage(channel="ml-alerts", text="Problem: disk", blocks=[{"type": "divider"}])
    foreign = emu.add_message("ml-alerts", "", subtype="bot_message", bot_id="B999", username="Alertmanager")

    updated = client.chat_update(channel="ml-alerts", ts=own["ts"], text="Problem: disk (acknowledged)")

    assert updated["message"]["text"] == "Problem: disk (acknowledged)"
    stored = emu.message("ml-alerts", own["ts"])
    assert stored["text"] == "Problem: disk (acknowledged)" and stored["blocks"] == [{"type": "divider"}]
    assert "edited" in stored
    assert error_of(lambda: client.chat_update(channel="ml-alerts", ts=foreign["ts"], text="x")) == (
        "cant_update_message"
    )
    assert (
        error_of(lambda: client.chat_update(channel="ml-alerts", ts="1.000002", text="x"))
        == "message_not_found"
    )


def test_usergroup_members_are_listed_by_id(emu: SlackEmulator, client: WebClient) -> None:
    emu.add_user("U1", "alice")
    emu.add_user("U2", "bob", real_name="Bob Builder")
    emu.add_usergroup("S1", "@data-coordinator", ["U1", "U2"])

    groups = client.usergroups_list(include_users=True)["usergroups"]
    assert [(g["id"], g["handle"], g["users"]) for g in groups] == [("S1", "data-coordinator", ["U1", "U2"])]
    assert "users" not in client.usergroups_list()["usergroups"][0]
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U1", "U2"]
    assert error_of(lambda: client.usergroups_users_list(usergroup="S404")) == "no_such_subteam"
    assert client.users_info(user="U2")["user"]["real_name"] == "Bob Builder"
    assert error_of(lambda: client.users_info(user="U404")) == "user_not_found"


def test_a_429_reaches_the_client_with_retry_after_and_the_rate_limit_handler_retries(
    emu: SlackEmulator, client: WebClient
) -> None:
    emu.fail_next("chat.postMessage", status=429, retry_after=2)
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="ml-alerts", text="first")
    assert info.value.response.status_code == 429
    assert info.value.response.headers["Retry-After"] == "2"
    assert info.value.response["error"] == "ratelimited"
    assert emu.messages("ml-alerts") == []

    emu.fail_next("chat.postMessage", status=429, retry_after=0)
    retrying = WebClient(
        token=emu.bot_token,
        base_url=emu.api_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    assert retrying.chat_postMessage(channel="ml-alerts", text="second")["ok"] is True
    assert [c.status for c in emu.calls_to("chat.postMessage")] == [429, 429, 200]
    assert [m["text"] for m in emu.messages("ml-alerts")] == ["second"]


def test_server_errors_and_error_codes_are_injected_per_method(
    emu: SlackEmulator, client: WebClient, clock: FakeClock
) -> None:
    emu.fail_next("chat.postMessage", status=503)
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="ml-alerts", text="x")
    assert info.value.response.status_code == 503 and info.value.response["error"] == "internal_error"

    emu.error_next("chat.postMessage", "channel_not_found", count=2)
    assert error_of(lambda: client.chat_postMessage(channel="ml-alerts", text="x")) == "channel_not_found"
    assert error_of(lambda: client.chat_postMessage(channel="ml-alerts", text="x")) == "channel_not_found"

    emu.fail_for("users.info", seconds=30, status=500)
    assert error_of(lambda: client.users_info(user="UBOT")) == "internal_error"
    clock.advance(31)
    assert client.users_info(user="UBOT")["user"]["is_bot"] is True
    assert client.chat_postMessage(channel="ml-alerts", text="x")["ok"] is True


def test_strict_mode_rate_limits_posts_to_one_per_second_per_channel(clock: FakeClock) -> None:
    with SlackEmulator(clock=seconds(clock), strict_rate_limit=True) as emu:
        client = emu.client(retry_handlers=[])
        assert client.chat_postMessage(channel="ml-alerts", text="one")["ok"] is True
        assert client.chat_postMessage(channel="tech-leads", text="other channel")["ok"] is True
        with pytest.raises(SlackApiError) as info:
            client.chat_postMessage(channel="ml-alerts", text="too soon")
        assert info.value.response.status_code == 429 and info.value.response.headers["Retry-After"] == "1"
        clock.advance(1.0)
        assert client.chat_postMessage(channel="ml-alerts", text="two")["ok"] is True
        assert [m["text"] for m in emu.messages("ml-alerts")] == ["one", "two"]


def test_a_held_call_is_recorded_on_arrival_and_applied_only_on_release(
    emu: SlackEmulator, client: WebClient
) -> None:
    emu.hold("chat.postMessage")
    results: list[str] = []
    poster = threading.Thread(
        target=lambda: results.append(client.chat_postMessage(channel="ml-alerts", text="held")["ts"])
    )
    poster.start()

    assert emu.wait_for(lambda: len(emu.calls_to("chat.postMessage")) == 1, timeout=5)
    assert emu.calls_to("chat.postMessage")[0].status == 0
    assert client.auth_test()["user_id"] == "UBOT"  # other methods are not held
    assert emu.messages("ml-alerts") == []

    emu.release("chat.postMessage")
    poster.join(timeout=5)

    assert [c.method for c in emu.calls] == ["chat.postMessage", "auth.test"]
    assert emu.calls_to("chat.postMessage")[0].status == 200
    assert [m["ts"] for m in emu.messages("ml-alerts")] == results


def test_a_dropped_response_stores_the_message_but_the_client_sees_a_connection_error(
    emu: SlackEmulator, client: WebClient
) -> None:
    emu.drop_after_send("chat.postMessage")
    with pytest.raises(OSError):
        client.chat_postMessage(channel="ml-alerts", text="ambiguous")
    assert [m["text"] for m in emu.messages("ml-alerts")] == ["ambiguous"]
    assert emu.calls_to("chat.postMessage")[0].status == 0

    # slack_sdk's default connection-error retry turns the same ambiguity into a double post.
    emu.drop_after_send("chat.postMessage")
    naive = WebClient(
        token=emu.bot_token,
        base_url=emu.api_url,
        retry_handlers=[
            ConnectionErrorRetryHandler(interval_calculator=FixedValueRetryIntervalCalculator(0.0))
        ],
    )
    assert naive.chat_postMessage(channel="ml-alerts", text="twice")["ok"] is True
    assert [m["text"] for m in emu.messages("ml-alerts")] == ["ambiguous", "twice", "twice"]


def test_a_trigger_id_opens_one_view_once_within_three_seconds(
    emu: SlackEmulator, client: WebClient, clock: FakeClock
) -> None:
    view = {
        "type": "modal",
        "callback_id": "escalate_view",
        "title": {"type": "plain_text", "text": "Escalate"},
    }
    trigger = emu.mint_trigger_id()

    opened = client.views_open(trigger_id=trigger, view=view)["view"]

    assert opened["id"].startswith("V") and opened["hash"] and opened["state"] == {"values": {}}
    assert emu.views[0]["callback_id"] == "escalate_view"
    assert error_of(lambda: client.views_open(trigger_id=trigger, view=view)) == "exchanged_trigger_id"
    late = emu.mint_trigger_id()
    clock.advance(3.5)
    assert error_of(lambda: client.views_open(trigger_id=late, view=view)) == "expired_trigger_id"
    assert error_of(lambda: client.views_open(trigger_id="1.2.3", view=view)) == "invalid_trigger_id"

    changed = {**view, "private_metadata": "42"}
    assert (
        error_of(lambda: client.views_update(view_id=opened["id"], hash="stale", view=changed))
        == "hash_conflict"
    )
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=changed)["view"]
    assert updated["id"] == opened["id"] and emu.view(opened["id"])["private_metadata"] == "42"
    pushed = client.views_push(trigger_id=emu.mint_trigger_id(view_id=opened["id"]), view=view)["view"]
    assert pushed["previous_view_id"] == opened["id"] and pushed["root_view_id"] == opened["id"]


def test_history_pages_newest_first_and_shows_metadata_only_when_asked(
    emu: SlackEmulator, client: WebClient
) -> None:
    metadata = {"event_type": "incident_posted", "event_payload": {"incident_id": 7}}
    posted = [
        client.chat_postMessage(channel="ml-decisions", text=f"m{i}", metadata=metadata)["ts"]
        for i in range(5)
    ]

    # slack_sdk reuses one response object while paging, so read each page as it comes.
    pages = [
        (
            [m["text"] for m in page["messages"]],
            page["has_more"],
            any("metadata" in m for m in page["messages"]),
        )
        for page in client.conversations_history(channel="ml-decisions", limit=2)
    ]

    assert pages == [(["m4", "m3"], True, False), (["m2", "m1"], True, False), (["m0"], False, False)]
    with_meta = client.conversations_history(channel="ml-decisions", include_all_metadata=True, limit=1)
    assert with_meta["messages"][0]["metadata"] == metadata
    window = client.conversations_history(channel="ml-decisions", oldest=posted[1], latest=posted[3])
    assert [m["text"] for m in window["messages"]] == ["m2"]
    assert emu.messages("ml-decisions")[0]["metadata"] == metadata


def test_bad_token_unknown_method_and_malformed_json_get_ok_false(emu: SlackEmulator) -> None:
    def post(method: str, body: bytes, token: str | None = emu.bot_token) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"} | (
            {"Authorization": f"Bearer {token}"} if token else {}
        )
        request = urllib.request.Request(emu.api_url + method, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=5) as reply:
            assert reply.status == 200
            return dict(json.loads(reply.read()))

    assert post("auth.test", b"{}", token="xoxb-wrong") == {"ok": False, "error": "invalid_auth"}
    assert post("auth.test", b"{}", token=None) == {"ok": False, "error": "not_authed"}
    assert post("chat.fly", b"{}") == {"ok": False, "error": "unknown_method"}
    assert post("chat.postMessage", b'{"channel": ') == {"ok": False, "error": "invalid_json"}
    with urllib.request.urlopen(
        f"{emu.api_url}users.info?user=UBOT&token={emu.bot_token}", timeout=5
    ) as reply:
        assert json.loads(reply.read())["user"]["name"] == "escalation-bot"
    assert [c.error for c in emu.calls] == [
        "invalid_auth",
        "not_authed",
        "unknown_method",
        "invalid_json",
        None,
    ]


def test_response_url_replaces_the_original_or_answers_ephemerally(
    emu: SlackEmulator, client: WebClient
) -> None:
    emu.add_user("U1", "alice")
    original = client.chat_postMessage(channel="data-coordinator", text="Problem: feature store stale")
    url = emu.mint_response_url(channel="data-coordinator", ts=original["ts"], user="U1")

    def respond(payload: dict[str, Any]) -> int:
        data = json.dumps(payload).encode()
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as reply:
            return int(reply.status)

    assert respond({"replace_original": True, "text": "Acknowledged by <@U1>"}) == 200
    assert respond({"text": "Only you can see this"}) == 200

    assert emu.message("data-coordinator", original["ts"])["text"] == "Acknowledged by <@U1>"
    assert [e["text"] for e in emu.ephemerals(channel="data-coordinator", user="U1")] == [
        "Only you can see this"
    ]
    assert [r["text"] for r in emu.responses] == ["Acknowledged by <@U1>", "Only you can see this"]


def test_ephemerals_and_reactions_follow_slack_rules(emu: SlackEmulator, client: WebClient) -> None:
    emu.add_user("U1", "alice")
    outsider = emu.add_channel("elsewhere", members=["UBOT"])
    ts = client.chat_postMessage(channel="tech-leads", text="Problem: x")["ts"]

    assert client.chat_postEphemeral(channel="tech-leads", user="U1", text="psst")["message_ts"]
    assert (
        error_of(lambda: client.chat_postEphemeral(channel=outsider, user="U1", text="x"))
        == "user_not_in_channel"
    )
    assert client.reactions_add(channel="tech-leads", timestamp=ts, name="eyes")["ok"] is True
    assert (
        error_of(lambda: client.reactions_add(channel="tech-leads", timestamp=ts, name="eyes"))
        == "already_reacted"
    )
    assert error_of(lambda: client.reactions_add(channel="tech-leads", timestamp="1.1", name="eyes")) == (
        "message_not_found"
    )

    assert [e["text"] for e in emu.ephemerals(user="U1")] == ["psst"]
    assert emu.messages("tech-leads")[0]["reactions"] == [{"name": "eyes", "users": ["UBOT"], "count": 1}]


def test_each_bot_post_is_echoed_as_the_message_event_slack_would_send(
    emu: SlackEmulator, client: WebClient
) -> None:
    seen: list[dict[str, Any]] = []
    arrived = threading.Event()

    def hook(event: dict[str, Any]) -> None:
        seen.append(event)
        arrived.set()

    emu.on_message = hook

    ts = client.chat_postMessage(channel="ml-alerts", text="hello")["ts"]

    assert arrived.wait(5)
    event = seen[0]
    assert event["type"] == "message" and event["channel"] == emu.channel_id("ml-alerts")
    assert (event["ts"], event["event_ts"], event["bot_id"], event["user"]) == (ts, ts, "BBOT", "UBOT")


class _Recorder(BaseHTTPRequestHandler):
    """A stand-in bot endpoint that verifies Slack's signature like bolt does and records the request."""

    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = dict(self.headers.items())
        self.received.append((headers, body))
        ok = SignatureVerifier(SECRET).is_valid_request(body, headers)
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok" if ok else b"no")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Recorder", (_Recorder,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()
    thread.join()


def test_the_driver_signs_every_request_as_slack_does(
    emu: SlackEmulator, endpoint: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = endpoint
    driver = SlackDriver(url, SECRET, emulator=emu)
    emu.add_user("U1", "alice")
    ts = emu.add_message("ml-alerts", "hi", user="U1")["ts"]

    assert driver.slash_command("/escalation", "list", "U1", "#ml-alerts").status == 200
    assert driver.block_action("U1", "incident_ack", "7", "ml-alerts", ts).text == "ok"
    assert driver.view_submission("U1", "resolve_view", {"note": {"in": text_value("fixed")}}).status == 200
    assert driver.event(emu.message_event("ml-alerts", ts), retry_num=1).status == 200

    assert driver.event({"type": "app_mention"}, tamper=True).status == 401
    assert driver.event({"type": "app_mention"}, timestamp=1_600_000_000).status == 401
    assert driver.event({"type": "app_mention"}, sign=False).status == 401

    form = {k: v[0] for k, v in parse_qs(received[0][1].decode()).items()}
    assert received[0][0]["Content-Type"] == "application/x-www-form-urlencoded"
    assert (form["command"], form["text"], form["channel_id"], form["channel_name"], form["user_name"]) == (
        "/escalation",
        "list",
        emu.channel_id("ml-alerts"),
        "ml-alerts",
        "alice",
    )
    assert form["response_url"].startswith(emu.base_url + "/response/")
    assert emu.client().views_open(
        trigger_id=form["trigger_id"], view={"type": "modal", "title": {"type": "plain_text", "text": "t"}}
    )["ok"]
    action = json.loads(parse_qs(received[1][1].decode())["payload"][0])
    assert action["type"] == "block_actions" and action["message"]["text"] == "hi"
    assert action["container"] == {
        "type": "message",
        "message_ts": ts,
        "channel_id": emu.channel_id("ml-alerts"),
        "is_ephemeral": False,
    }
    assert (action["actions"][0]["action_id"], action["actions"][0]["value"]) == ("incident_ack", "7")
    submission = json.loads(parse_qs(received[2][1].decode())["payload"][0])
    assert submission["view"]["state"]["values"] == {
        "note": {"in": {"type": "plain_text_input", "value": "fixed"}}
    }
    event_headers, event_body = received[3]
    assert (event_headers["X-Slack-Retry-Num"], event_headers["X-Slack-Retry-Reason"]) == (
        "1",
        "http_timeout",
    )
    envelope = json.loads(event_body)
    assert envelope["type"] == "event_callback" and envelope["event"]["user"] == "U1"
    assert "X-Slack-Signature" not in received[6][0]


def test_a_bolt_app_over_http_opens_modals_and_updates_messages_in_the_emulator(emu: SlackEmulator) -> None:
    app = App(
        client=emu.client(retry_handlers=[]),
        signing_secret=SECRET,
        process_before_response=True,  # listeners finish before the HTTP answer, so the test needs no waiting
    )
    foreign_messages: list[str] = []

    @app.command("/escalate")
    def open_modal(ack: Any, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view = {
            "type": "modal",
            "callback_id": "escalate_view",
            "title": {"type": "plain_text", "text": "Escalate"},
        }
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view("escalate_view")
    def submitted(ack: Any, view: dict[str, Any], client: WebClient) -> None:
        ack()
        team = view["state"]["values"]["team"]["pick"]["selected_option"]["value"]
        blocks = [
            {"type": "actions", "elements": [{"type": "button", "action_id": "incident_ack", "value": team}]}
        ]
        client.chat_postMessage(channel="#data-coordinator", text=f"Problem: for {team}", blocks=blocks)

    @app.action("incident_ack")
    def acknowledged(ack: Any, action: dict[str, Any], respond: Any) -> None:
        ack()
        respond(replace_original=True, text=f"Acknowledged ({action['value']})")

    @app.event("message")
    def on_message(event: dict[str, Any]) -> None:
        foreign_messages.append(event.get("text", ""))

    server = make_server("127.0.0.1", 0, SlackRequestHandler(app), handler_class=_QuietWSGIHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        driver = SlackDriver(f"http://127.0.0.1:{server.server_port}", SECRET, emulator=emu)
        echoed = threading.Event()

        # The bot's own posts come back as message events, as in Slack; bolt must drop them.
        def echo(event: dict[str, Any]) -> None:
            driver.event(event)
            echoed.set()

        emu.on_message = echo
        emu.add_user("U1", "alice")

        assert driver.slash_command("/escalate", "", "U1", "ml-alerts").status == 200
        view_id = emu.views[0]["id"]
        values = {"team": {"pick": select_value("ml-platform")}}
        assert driver.view_submission("U1", "escalate_view", values, view_id=view_id).status == 200
        posted = emu.messages("data-coordinator")[0]
        assert driver.block_action("U1", "incident_ack", None, "data-coordinator", posted["ts"]).status == 200
        person = emu.add_message("data-coordinator", "thanks", user="U1")
        assert driver.event(emu.message_event("data-coordinator", person["ts"])).status == 200
        assert echoed.wait(5)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    assert emu.message("data-coordinator", posted["ts"])["text"] == "Acknowledged (ml-platform)"
    assert foreign_messages == ["thanks"]


class _QuietWSGIHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass
