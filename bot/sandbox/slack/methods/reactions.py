"""`reactions.add`: the bot's emoji reaction on a message, once per name."""

from __future__ import annotations

from bot.sandbox.slack.conventions import Failure
from bot.sandbox.slack.identity import BOT_USER_ID, JSON
from bot.sandbox.slack.workspace import Workspace


def add(ws: Workspace, args: JSON) -> JSON:
    channel = ws.directory.channel(args.get("channel"))
    name = str(args.get("name") or "")
    if not name or ":" in name or " " in name:
        raise Failure("invalid_name")
    msg = ws.messages.stored(channel.id, args.get("timestamp"))
    reactions: list[JSON] = msg.setdefault("reactions", [])
    reaction = next((r for r in reactions if r["name"] == name), None)
    if reaction is None:
        reaction = {"name": name, "users": [], "count": 0}
        reactions.append(reaction)
    if BOT_USER_ID in reaction["users"]:
        raise Failure("already_reacted")
    reaction["users"].append(BOT_USER_ID)
    reaction["count"] += 1
    return {"ok": True}


METHODS = {"reactions.add": add}
