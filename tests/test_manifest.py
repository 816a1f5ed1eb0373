"""The Slack app manifest generated from app.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import AppConfig, load_config, parse_config
from bot.core.errors import ConfigError
from bot.manifest import build_manifest, manifest_yaml

REPO_APP_YAML = Path(__file__).resolve().parents[1] / "app.yaml"

# Scope each subscribed event needs (Slack's event reference; app_home_opened needs none).
EVENT_SCOPES = {
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "app_mention": "app_mentions:read",
    "app_home_opened": None,
}


def repo_config(public_url: str = "https://escalation.acme.io") -> AppConfig:
    """The repository's app.yaml with slack.public_url set, as an operator serving HTTP would have it."""
    data = yaml.safe_load(REPO_APP_YAML.read_text(encoding="utf-8"))
    data["slack"]["public_url"] = public_url
    return parse_config(data)


def request_urls(manifest: dict[str, Any]) -> list[str | None]:
    settings = manifest["settings"]
    return [
        *(command.get("url") for command in manifest["features"]["slash_commands"]),
        settings["event_subscriptions"].get("request_url"),
        settings["interactivity"].get("request_url"),
    ]


def test_manifest_for_http_mode_points_every_url_at_the_events_endpoint() -> None:
    config = parse_config({"slack": {"public_url": "https://escalation.acme.io/"}})
    manifest = build_manifest(config, socket_mode=False)
    assert request_urls(manifest) == ["https://escalation.acme.io/slack/events"] * 4
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert manifest["settings"]["interactivity"]["is_enabled"] is True


def test_an_http_mode_manifest_without_a_public_url_is_refused_naming_the_key_and_both_ways_out() -> None:
    with pytest.raises(ConfigError) as refused:
        build_manifest(load_config(REPO_APP_YAML), socket_mode=False)  # public_url: null
    [problem] = refused.value.problems
    assert problem.startswith("slack.public_url: needs a value for a manifest in HTTP mode")
    assert "set slack.public_url in app.yaml" in problem and "pass --socket-mode" in problem
    assert "example.com" not in problem


def test_a_socket_mode_manifest_needs_no_public_url() -> None:
    assert build_manifest(load_config(REPO_APP_YAML), socket_mode=True) == build_manifest(
        repo_config(), socket_mode=True
    )


def test_socket_mode_drops_every_request_url() -> None:
    config = parse_config({"slack": {"public_url": "https://escalation.acme.io"}})
    manifest = build_manifest(config, socket_mode=True)
    assert request_urls(manifest) == [None] * 4
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["interactivity"] == {"is_enabled": True}
    assert manifest["settings"]["event_subscriptions"] == {
        "bot_events": ["message.channels", "message.groups", "app_mention", "app_home_opened"]
    }


def test_manifest_shape() -> None:
    manifest = build_manifest(repo_config(), socket_mode=False)
    assert list(manifest) == ["_metadata", "display_information", "features", "oauth_config", "settings"]
    assert manifest["_metadata"] == {"major_version": 1, "minor_version": 1}
    info = manifest["display_information"]
    assert info["name"] == "escalation-bot"
    assert len(info["name"]) <= 35 and 0 < len(info["description"]) <= 140
    assert manifest["features"]["bot_user"] == {"display_name": "escalation-bot", "always_online": True}
    assert manifest["features"]["app_home"] == {  # the Home tab the bot publishes; no DMs to it
        "home_tab_enabled": True,
        "messages_tab_enabled": False,
        "messages_tab_read_only_enabled": False,
    }
    assert manifest["oauth_config"]["scopes"]["bot"] == [
        "app_mentions:read",
        "channels:history",
        "groups:history",
        "channels:read",
        "groups:read",
        "chat:write",
        "files:write",
        "commands",
        "reactions:write",
        "users:read",
        "usergroups:read",
    ]
    settings = manifest["settings"]
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def test_every_subscribed_event_has_the_scope_it_needs() -> None:
    manifest = build_manifest(AppConfig(), socket_mode=True)
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert set(events) == set(EVENT_SCOPES)
    assert {EVENT_SCOPES[event] for event in events} - {None} <= scopes


def test_slash_commands_follow_the_config() -> None:
    config = parse_config(
        {
            "slack": {
                "app_name": "ml-oncall",
                "commands": {"escalate": "/page-ml", "escalation": "/ml-incidents"},
            }
        }
    )
    manifest = build_manifest(config, socket_mode=True)
    commands = {command["command"]: command for command in manifest["features"]["slash_commands"]}
    assert list(commands) == ["/page-ml", "/ml-incidents"]
    assert commands["/page-ml"]["usage_hint"] == "[problem]"
    assert commands["/page-ml"]["description"] == "Open an incident by hand"
    hint = "list | show ID | ack ID | resolve ID NOTE | stats [7d|30d|90d] | help"
    assert commands["/ml-incidents"]["usage_hint"] == hint
    assert all(command["should_escape"] is True for command in commands.values())
    assert manifest["display_information"]["name"] == "ml-oncall"
    assert manifest["features"]["bot_user"]["display_name"] == "ml-oncall"


def test_manifest_yaml_is_the_same_manifest_in_slack_key_order() -> None:
    config = repo_config()
    text = manifest_yaml(config, socket_mode=False)
    assert text.startswith("_metadata:\n")
    assert yaml.safe_load(text) == build_manifest(config, socket_mode=False)
    assert yaml.safe_load(manifest_yaml(config, True)) == build_manifest(config, socket_mode=True)
