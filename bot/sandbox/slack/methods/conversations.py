"""`conversations.*`: channel history, threads, channel info and the channel list, paged by cursor."""

from __future__ import annotations

import copy
from decimal import Decimal

from bot.sandbox.slack.conventions import flag, page, ts_key
from bot.sandbox.slack.directory import Channel
from bot.sandbox.slack.identity import BOT_USER_ID, JSON
from bot.sandbox.slack.messages import is_top_level
from bot.sandbox.slack.workspace import Workspace


def history(ws: Workspace, args: JSON) -> JSON:
    channel = ws.directory.member_channel(args.get("channel"))
    inclusive = flag(args.get("inclusive"))
    oldest = ts_key(args.get("oldest") or "0", "invalid_ts_oldest")
    latest = ts_key(args["latest"], "invalid_ts_latest") if args.get("latest") else None
    selected = []
    for msg in reversed(ws.messages.by_channel[channel.id].values()):
        key = Decimal(msg["ts"])
        if not is_top_level(msg):
            continue
        if key < oldest or (key == oldest and not inclusive):
            continue
        if latest is not None and (key > latest or (key == latest and not inclusive)):
            continue
        selected.append(msg)
    chunk, cursor = page(selected, args)
    metadata = flag(args.get("include_all_metadata"))
    return {
        "ok": True,
        "messages": [_public(m, metadata) for m in chunk],
        "has_more": bool(cursor),
        "pin_count": 0,
        "response_metadata": {"next_cursor": cursor},
    }


def replies(ws: Workspace, args: JSON) -> JSON:
    channel = ws.directory.member_channel(args.get("channel"))
    parent = ws.messages.thread_parent(channel.id, args.get("ts"))
    thread = [parent, *ws.messages.replies(channel.id, parent["ts"])]
    chunk, cursor = page(thread, args, default_limit=1000)
    metadata = flag(args.get("include_all_metadata"))
    return {
        "ok": True,
        "messages": [_public(m, metadata) for m in chunk],
        "has_more": bool(cursor),
        "response_metadata": {"next_cursor": cursor},
    }


def info(ws: Workspace, args: JSON) -> JSON:
    return {"ok": True, "channel": _channel_object(ws.directory.channel(args.get("channel")))}


def list_channels(ws: Workspace, args: JSON) -> JSON:
    skip_archived = flag(args.get("exclude_archived"))
    channels = [
        _channel_object(c) for c in ws.directory.channels.values() if not (skip_archived and c.is_archived)
    ]
    chunk, cursor = page(channels, args)
    return {"ok": True, "channels": chunk, "response_metadata": {"next_cursor": cursor}}


def _public(msg: JSON, include_metadata: bool) -> JSON:
    out = copy.deepcopy(msg)
    if not include_metadata:
        out.pop("metadata", None)
    return out


def _channel_object(channel: Channel) -> JSON:
    return {
        "id": channel.id,
        "name": channel.name,
        "name_normalized": channel.name,
        "is_channel": True,
        "is_group": False,
        "is_im": False,
        "is_private": False,
        "is_archived": channel.is_archived,
        "is_general": False,
        "is_member": BOT_USER_ID in channel.members,
        "created": channel.created,
        "creator": BOT_USER_ID,
        "num_members": len(channel.members),
        "topic": {"value": "", "creator": "", "last_set": 0},
        "purpose": {"value": "", "creator": "", "last_set": 0},
    }


METHODS = {
    "conversations.history": history,
    "conversations.replies": replies,
    "conversations.info": info,
    "conversations.list": list_channels,
}
