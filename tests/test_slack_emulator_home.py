"""The emulator's App Home: `views.publish` through the real slack_sdk client, the `app_home_opened` event
Slack sends when someone opens the app, and clicks in a Home tab, driven into a real bolt app."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from bot.sandbox.slack_driver import SlackDriver
from bot.sandbox.slack_emulator import SlackEmulator
from tests.test_slack_emulator import error_of

SECRET = "sandbox-signing-secret"


def home(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "home", "blocks": list(blocks)}


def section(text: str, button_value: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if button_value is not None:
        block["accessory"] = {
            "type": "button",
            "action_id": "incident_details",
            "text": {"type": "plain_text", "text": "Details"},
            "value": button_value,
        }
    return block


@pytest.fixture
def emu() -> Iterator[SlackEmulator]:
    with SlackEmulator() as emulator:
        emulator.add_user("U1", "alice")
        emulator.add_user("U2", "bob")
        yield emulator


@pytest.fixture
def client(emu: SlackEmulator) -> WebClient:
    return emu.client(retry_handlers=[])  # type: ignore[no-any-return]


def test_a_published_home_tab_is_replaced_in_place_and_a_stale_hash_is_refused(
    emu: SlackEmulator, client: WebClient
) -> None:
    first = client.views_publish(user_id="U1", view=home(section("one")))["view"]
    assert first["type"] == "home" and first["blocks"][0]["text"]["text"] == "one"
    second = client.views_publish(user_id="U1", view=home(section("two")), hash=first["hash"])["view"]
    assert second["id"] == first["id"]  # one Home view per person, replaced
    assert emu.home("U1")["blocks"][0]["text"]["text"] == "two"
    with pytest.raises(KeyError):  # U2 has none yet
        emu.home("U2")

    stale = {"user_id": "U1", "view": home(section("three")), "hash": "1.stale"}
    assert error_of(lambda: client.views_publish(**stale)) == "hash_conflict"
    assert emu.home("U1")["blocks"][0]["text"]["text"] == "two"
    assert emu.views == []  # Home tabs are not modals


def test_views_publish_refuses_what_slack_refuses(emu: SlackEmulator, client: WebClient) -> None:
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "t"}, "blocks": []}
    assert error_of(lambda: client.views_publish(user_id="U1", view=modal)) == "invalid_arguments"
    too_many = home(*[section(f"{n}") for n in range(101)])
    assert error_of(lambda: client.views_publish(user_id="U1", view=too_many)) == "invalid_arguments"
    assert error_of(lambda: client.views_publish(user_id="U404", view=home())) == "user_not_found"
    assert client.views_publish(user_id="U1", view=home(*[section(f"{n}") for n in range(100)]))["ok"]


def test_app_home_opened_carries_the_published_view_only_once_there_is_one(
    emu: SlackEmulator, client: WebClient
) -> None:
    before = emu.app_home_opened("U1")
    assert before["type"] == "app_home_opened" and before["tab"] == "home" and before["user"] == "U1"
    assert before["channel"].startswith("D") and "view" not in before

    published = client.views_publish(user_id="U1", view=home(section("hello")))["view"]
    after = emu.app_home_opened("U1")
    assert after["channel"] == before["channel"]  # the same App Home conversation
    assert (after["view"]["id"], after["view"]["hash"]) == (published["id"], published["hash"])
    assert "view" not in emu.app_home_opened("U1", tab="messages")
    assert emu.app_home_opened("U2")["channel"] != before["channel"]


def test_a_bolt_app_publishes_home_on_app_home_opened_and_opens_details_from_a_home_button(
    emu: SlackEmulator,
) -> None:
    app = App(client=emu.client(retry_handlers=[]), signing_secret=SECRET, process_before_response=True)
    clicks: list[dict[str, Any]] = []

    @app.event("app_home_opened")
    def publish(event: dict[str, Any], client: WebClient) -> None:
        if event["tab"] == "home":
            client.views_publish(
                user_id=event["user"], view=home(section("INC-7", "7"), section("INC-8", "8"))
            )

    @app.action("incident_details")
    def details(ack: Any, body: dict[str, Any], client: WebClient) -> None:
        ack()
        clicks.append(body)
        value = body["actions"][0]["value"]
        title = {"type": "plain_text", "text": f"INC-{value}"}
        client.views_open(trigger_id=body["trigger_id"], view={"type": "modal", "title": title})

    server = make_server("127.0.0.1", 0, SlackRequestHandler(app), handler_class=_QuietWSGIHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        driver = SlackDriver(f"http://127.0.0.1:{server.server_port}", SECRET, emulator=emu)
        assert driver.app_home_opened("U1").status == 200
        assert emu.wait_for(lambda: len(emu.calls_to("views.publish")) == 1)
        assert driver.app_home_opened("U1", tab="messages").status == 200
        assert driver.view_action("U1", emu.home("U1"), "incident_details", "8").status == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    assert len(emu.calls_to("views.publish")) == 1
    [click] = clicks
    assert click["container"] == {"type": "view", "view_id": emu.home("U1")["id"]}
    assert click["view"]["type"] == "home" and "channel" not in click and "response_url" not in click
    assert click["actions"][0]["value"] == "8"
    assert [v["title"]["text"] for v in emu.views] == ["INC-8"]


class _QuietWSGIHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass
