"""`auth.test`: who the bot token belongs to."""

from __future__ import annotations

from bot.sandbox.slack.identity import BOT_ID, BOT_NAME, BOT_USER_ID, JSON, TEAM_ID, TEAM_NAME
from bot.sandbox.slack.workspace import Workspace


def auth_test(ws: Workspace, args: JSON) -> JSON:
    return {
        "ok": True,
        "url": "https://sandbox.slack.com/",
        "team": TEAM_NAME,
        "user": BOT_NAME,
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
    }


METHODS = {"auth.test": auth_test}
