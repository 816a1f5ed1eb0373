"""`chat.*`: posting, editing and deleting the bot's messages, ephemerals and permalinks."""

from __future__ import annotations

import copy

from bot.sandbox.slack.conventions import Failure, flag, valid_blocks
from bot.sandbox.slack.identity import BOT_ID, JSON
from bot.sandbox.slack.messages import MAX_MESSAGE_BLOCKS, bot_message
from bot.sandbox.slack.workspace import Workspace


def post_message(ws: Workspace, args: JSON) -> JSON:
    channel = ws.directory.member_channel(args.get("channel"))
    if channel.is_archived:
        raise Failure("is_archived")
    msg = bot_message(args)
    ws.messages.post(channel.id, msg, args.get("thread_ts"), flag(args.get("reply_broadcast")))
    return {"ok": True, "channel": channel.id, "ts": msg["ts"], "message": copy.deepcopy(msg)}


def update(ws: Workspace, args: JSON) -> JSON:
    channel = ws.directory.channel(args.get("channel"))
    msg = ws.messages.stored(channel.id, args.get("ts"))
    if msg.get("bot_id") != BOT_ID:
        raise Failure("cant_update_message")
    # As in Slack, blocks and attachments that are not sent are kept.
    if "text" in args:
        msg["text"] = args.get("text") or ""
    if args.get("blocks") is not None:
        msg["blocks"] = valid_blocks(args["blocks"], MAX_MESSAGE_BLOCKS, "invalid_blocks")
    if args.get("attachments") is not None:
        msg["attachments"] = args["attachments"]
    if isinstance(args.get("metadata"), dict):
        msg["metadata"] = args["metadata"]
    ws.messages.mark_edited(msg)
    return {
        "ok": True,
        "channel": channel.id,
        "ts": msg["ts"],
        "text": msg["text"],
        "message": copy.deepcopy(msg),
    }


def delete(ws: Workspace, args: JSON) -> JSON:
    channel = ws.directory.channel(args.get("channel"))
    msg = ws.messages.stored(channel.id, args.get("ts"))
    if msg.get("bot_id") != BOT_ID:
        raise Failure("cant_delete_message")
    ws.messages.delete(channel.id, msg["ts"])
    return {"ok": True, "channel": channel.id, "ts": msg["ts"]}


def post_ephemeral(ws: Workspace, args: JSON) -> JSON:
    channel = ws.directory.member_channel(args.get("channel"))
    user = args.get("user")
    if user not in channel.members:
        raise Failure("user_not_in_channel")
    entry = ws.messages.add_ephemeral(channel.id, str(user), bot_message(args), args.get("thread_ts"))
    return {"ok": True, "message_ts": entry["ts"]}


def get_permalink(ws: Workspace, args: JSON) -> JSON:
    channel = ws.directory.channel(args.get("channel"))
    msg = ws.messages.stored(channel.id, args.get("message_ts"))
    link = f"https://sandbox.slack.com/archives/{channel.id}/p{msg['ts'].replace('.', '')}"
    return {"ok": True, "channel": channel.id, "permalink": link}


METHODS = {
    "chat.postMessage": post_message,
    "chat.update": update,
    "chat.delete": delete,
    "chat.postEphemeral": post_ephemeral,
    "chat.getPermalink": get_permalink,
}
