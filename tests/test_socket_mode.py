"""The bot serves Slack over Socket Mode: slack_bolt's builtin handler on a loopback WebSocket.

The bot gets an app-level token, opens its connection with `apps.connections.open` on the emulator and
is then driven only through envelopes on that socket; no request is signed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin.connection import Connection

from bot.app import Bot
from bot.config import Env
from bot.core.models import ActionId
from bot.sandbox.slack_emulator import APP_ID, BOT_ID, TEAM_ID
from bot.sandbox.slack_socket import APP_TOKEN, SocketModeDriver, SocketModeServer
from bot.sandbox.world import COORDINATOR, OUTSIDER, PIPELINE_ALERT, SandboxWorld, alertmanager_payload

COORD_CHANNEL = "#data-coordinator"


class SocketWorld(SandboxWorld):
    """A sandbox whose bot reaches Slack over Socket Mode; `driver` sends envelopes, not signed POSTs."""

    def __init__(self) -> None:
        super().__init__()
        # Frequent pings let the bot's builtin client notice its own close at once when it stops.
        self.socket = SocketModeServer(self.slack, APP_TOKEN, ping_interval=0.2)

    def start(self) -> SocketWorld:
        self.socket.start()
        super().start()
        return self

    def __enter__(self) -> SocketWorld:
        return self.start()

    def env(self) -> Env:
        return super().env().model_copy(update={"slack_app_token": SecretStr(APP_TOKEN)})

    def start_bot(self) -> Bot:
        bot = super().start_bot()
        self.driver = SocketModeDriver(self.socket, self.slack)
        return bot

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.socket.stop()


@pytest.fixture
def world() -> Iterator[SocketWorld]:
    with SocketWorld() as w:
        assert w.bot is not None
        w.bot.start_background()  # connects over Socket Mode and starts the scheduler
        assert w.socket.connected.wait(5), "the bot did not complete the Socket Mode handshake"
        yield w


def driver(world: SocketWorld) -> SocketModeDriver:
    assert isinstance(world.driver, SocketModeDriver)
    return world.driver


def context_text(message: dict[str, Any]) -> str:
    return "\n".join(
        e["text"] for b in message.get("blocks", []) if b["type"] == "context" for e in b["elements"]
    )


def test_the_bot_opens_its_connection_with_the_app_token(world: SocketWorld) -> None:
    [opened] = world.slack.calls_to("apps.connections.open")
    assert opened.status == 200 and opened.error is None
    assert world.socket.handshakes == 1 and world.socket.live_connections == 1
    with pytest.raises(SlackApiError) as info:
        world.slack.client().apps_connections_open(app_token=world.slack.bot_token)
    assert info.value.response["error"] == "not_allowed_token_type"


def test_a_ticket_opens_one_connection_only(world: SocketWorld) -> None:
    url = world.socket.connections_open(APP_TOKEN)["url"]
    first, second = (Connection(url, logging.getLogger("test")) for _ in range(2))
    try:
        first.connect()
        second.connect()
        assert first.is_active() and not second.is_active()
        assert world.socket.wait_for(lambda: world.socket.handshakes == 2)
    finally:
        first.close()
        second.close()
    assert world.socket.connections_open("xapp-1-someone-else") == {"ok": False, "error": "invalid_auth"}


def test_help_comes_back_in_the_ack_of_the_slash_command(world: SocketWorld) -> None:
    channel = world.slack.channel_id("#ml-alerts")
    form = {
        "token": "sandbox-verification-token",
        "team_id": TEAM_ID,
        "team_domain": "sandbox",
        "channel_id": channel,
        "channel_name": "ml-alerts",
        "user_id": COORDINATOR,
        "user_name": "alice",
        "command": "/escalation",
        "text": "help",
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": world.slack.mint_response_url(channel=channel, user=COORDINATOR),
        "trigger_id": world.slack.mint_trigger_id(user=COORDINATOR),
    }

    envelope_id = world.socket.send("slash_commands", form)
    ack = world.socket.wait_ack(envelope_id)

    assert ack["envelope_id"] == envelope_id
    assert "*/escalation help* — this help" in ack["payload"]["text"]
    assert "*/escalation resolve ID NOTE*" in ack["payload"]["text"]


def test_an_acknowledge_click_over_the_socket_updates_the_l2_message(world: SocketWorld) -> None:
    assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202
    assert world.slack.wait_for(lambda: len(world.slack.messages(COORD_CHANNEL)) == 1, timeout=10)
    [l2] = world.slack.messages(COORD_CHANNEL)
    assert "Acknowledged by" not in context_text(l2)

    click = world.click(COORDINATOR, ActionId.ACK, COORD_CHANNEL, l2["ts"])  # a block_actions envelope

    assert click.status == 200 and click.body == b""
    assert set(driver(world).last_ack) == {"envelope_id"}
    assert world.slack.wait_for(
        lambda: "Acknowledged by <@U0COORD>" in context_text(world.slack.message(COORD_CHANNEL, l2["ts"])),
        timeout=10,
    )
    buttons = [
        e["action_id"]
        for b in world.slack.message(COORD_CHANNEL, l2["ts"]).get("blocks", [])
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert ActionId.ACK.value not in buttons


def test_a_mention_is_acked_and_answered_once_even_when_slack_redelivers_it(world: SocketWorld) -> None:
    mention = world.slack.add_message("#ml-alerts", "<@UBOT> what can you do?", user=OUTSIDER)
    event = {**world.slack.message_event("#ml-alerts", mention["ts"]), "type": "app_mention"}

    first = driver(world).event(event, event_id="Ev0SOCKET0001")
    assert first.status == 200 and set(driver(world).last_ack) == {"envelope_id"}
    assert world.slack.wait_for(lambda: len(world.slack.thread("#ml-alerts", mention["ts"])) == 1, timeout=10)

    again = driver(world).event(event, event_id="Ev0SOCKET0001", retry_num=1, retry_reason="timeout")
    assert again.status == 200
    world.settle()  # listeners idle and the outbox empty: any second reply would be posted by now

    [reply] = world.slack.thread("#ml-alerts", mention["ts"])
    assert reply["bot_id"] == BOT_ID
    assert reply["text"].startswith("I handle ML pipeline alerts.")


def test_after_slack_asks_for_a_reconnect_the_new_connection_serves_commands(world: SocketWorld) -> None:
    world.socket.disconnect("refresh_requested")
    assert world.socket.wait_for(
        lambda: world.socket.handshakes == 2 and world.socket.live_connections == 1, timeout=10
    )
    assert len(world.slack.calls_to("apps.connections.open")) == 2

    reply = driver(world).slash_command("/escalation", "list", COORDINATOR, "#ml-alerts")

    assert reply.status == 200
    assert reply.json() == {"text": "No open incidents."}


def test_stopping_the_bot_closes_its_socket(world: SocketWorld) -> None:
    world.stop_bot()

    assert world.socket.wait_for(lambda: world.socket.live_connections == 0, timeout=10)
    assert not world.socket.connected.is_set()
    assert len(world.slack.calls_to("apps.connections.open")) == 1  # closing did not reconnect
