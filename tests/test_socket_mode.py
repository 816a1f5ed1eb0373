"""The bot serves Slack over Socket Mode: slack_bolt's builtin handler on a loopback WebSocket.

The bot gets an app-level token, opens its connection with `apps.connections.open` on the emulator and
is then driven only through envelopes on that socket; no request is signed."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin.connection import Connection
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Event, Ping, Pong, Request, TextMessage

from bot.app import Bot
from bot.config import Env
from bot.core.models import ActionId
from bot.sandbox.slack.socket_driver import SocketModeDriver
from bot.sandbox.slack_emulator import APP_ID, BOT_ID, TEAM_ID
from bot.sandbox.slack_socket import APP_TOKEN, SocketModeServer
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


# ---- the WebSocket protocol under Socket Mode, spoken by a bare client -------------------------------


def ticket_target(server: SocketModeServer) -> str:
    url = urlsplit(server.connections_open(APP_TOKEN)["url"])
    return f"{url.path}?{url.query}"


def upgrade_status(server: SocketModeServer, target: str, version: str = "13") -> int:
    request = (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request.encode())
        return int(sock.recv(4096).split(b" ", 2)[1])


class BareClient:
    """A WebSocket client with nothing of Slack in it, to see what the server does on the wire."""

    def __init__(self, server: SocketModeServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host="127.0.0.1", target=ticket_target(server))))
        assert isinstance(self.next_event(), AcceptConnection)
        hello = self.next_event()
        assert isinstance(hello, TextMessage) and json.loads(hello.data)["type"] == "hello"

    def next_event(self) -> Event:
        while True:
            for event in self.ws.events():
                return event
            self.ws.receive_data(self.sock.recv(4096) or None)


def test_an_upgrade_is_refused_without_a_live_ticket_or_in_another_websocket_version() -> None:
    with SocketModeServer(ping_interval=None) as server:
        assert upgrade_status(server, "/link/?ticket=made-up") == 401
        assert upgrade_status(server, ticket_target(server), version="8") == 426
        target = ticket_target(server)
        assert upgrade_status(server, target) == 101
        assert upgrade_status(server, target) == 401  # the ticket is spent
        assert server.wait_for(lambda: server.handshakes == 1)


def test_the_socket_answers_a_ping_and_echoes_a_close() -> None:
    with SocketModeServer(ping_interval=None) as server:
        client = BareClient(server)
        with client.sock:
            client.sock.sendall(client.ws.send(Ping(payload=b"still there?")))
            assert client.next_event() == Pong(payload=b"still there?")
            client.sock.sendall(client.ws.send(CloseConnection(code=1000, reason="bye")))
            closing = client.next_event()
            assert isinstance(closing, CloseConnection) and closing.code == 1000
        assert server.wait_for(lambda: server.live_connections == 0)


def test_an_unmasked_client_frame_closes_the_socket_with_a_protocol_error() -> None:
    with SocketModeServer(ping_interval=None) as server:
        client = BareClient(server)
        with client.sock:
            client.sock.sendall(b"\x81\x02hi")  # a text frame without the mask every client frame needs
            closing = client.next_event()
            assert isinstance(closing, CloseConnection) and closing.code == 1002
        assert server.wait_for(lambda: server.live_connections == 0) and server.received == []
