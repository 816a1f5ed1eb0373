"""The Slack app manifest for app.yaml: paste it at api.slack.com/apps to create or update the app."""

from __future__ import annotations

from typing import Any

import yaml

from bot.config import AppConfig
from bot.core.errors import ConfigError

DESCRIPTION = "Fixes ML pipeline failures at Level 1 and escalates the rest to people, level by level."
EVENTS_PATH = "/slack/events"
NO_PUBLIC_URL = (
    "slack.public_url: needs a value for a manifest in HTTP mode (Slack posts events, commands and button "
    "clicks to <public_url>/slack/events). Either set slack.public_url in app.yaml to the https URL Slack "
    "reaches the bot at, or use Socket Mode: pass --socket-mode (and run the bot with SLACK_APP_TOKEN set)"
)

BOT_SCOPES: tuple[str, ...] = (
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "channels:read",
    "groups:read",
    "chat:write",
    "files:write",  # the digest's chart (files_upload_v2)
    "commands",
    "reactions:write",
    "users:read",
    "usergroups:read",
)
# app_home_opened needs no scope: the bot's Home tab is published when someone opens it
BOT_EVENTS: tuple[str, ...] = ("message.channels", "message.groups", "app_mention", "app_home_opened")


def build_manifest(config: AppConfig, *, socket_mode: bool) -> dict[str, Any]:
    """The manifest as a dict; request URLs are left out in Socket Mode, where Slack does not use them.

    ConfigError in HTTP mode without slack.public_url: a placeholder URL would install an app that never
    reaches the bot."""
    slack = config.slack
    if not socket_mode and slack.public_url is None:
        raise ConfigError([NO_PUBLIC_URL])
    url = None if socket_mode else str(slack.public_url).rstrip("/") + EVENTS_PATH
    with_url: dict[str, str] = {} if url is None else {"url": url}
    with_request_url: dict[str, str] = {} if url is None else {"request_url": url}
    commands = [
        {
            "command": slack.commands.escalate,
            **with_url,
            "description": "Open an incident by hand",
            "usage_hint": "[problem]",
            "should_escape": True,
        },
        {
            "command": slack.commands.escalation,
            **with_url,
            "description": "List, inspect, acknowledge and resolve incidents",
            "usage_hint": "list | show ID | ack ID | resolve ID NOTE | stats [7d|30d|90d] | help",
            "should_escape": True,
        },
    ]
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {"name": slack.app_name, "description": DESCRIPTION},
        "features": {
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": False,
                "messages_tab_read_only_enabled": False,
            },
            "bot_user": {"display_name": slack.app_name, "always_online": True},
            "slash_commands": commands,
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "event_subscriptions": {**with_request_url, "bot_events": list(BOT_EVENTS)},
            "interactivity": {"is_enabled": True, **with_request_url},
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }


def manifest_yaml(config: AppConfig, socket_mode: bool) -> str:
    """The manifest as YAML, in the key order Slack's editor shows."""
    return yaml.safe_dump(
        build_manifest(config, socket_mode=socket_mode), sort_keys=False, allow_unicode=True
    )
