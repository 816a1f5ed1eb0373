"""Who the sandbox workspace and its bot are: the ids and names Slack would give them."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

TEAM_ID = "T0SANDBOX"
TEAM_NAME = "Sandbox"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
APP_ID = "ASANDBOX"
BOT_NAME = "escalation-bot"
DEFAULT_CHANNELS = ("ml-alerts", "data-coordinator", "tech-leads", "ml-decisions", "escalation-admin")
BOT_SCOPES = (
    "app_mentions:read,channels:history,groups:history,channels:read,chat:write,commands,"
    "reactions:write,users:read,usergroups:read,files:write"
)
