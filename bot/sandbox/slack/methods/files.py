"""`files.*`: the two calls around an upload, as `files_upload_v2` makes them.

Checked as Slack does: a file needs a name and a length above 0 (`missing_argument` for 0), alt text of at
most 1000 characters; completing needs files whose bytes arrived (`file_not_found` otherwise), channels
given by id only (a name is `channel_not_found`), the bot a member of each (`not_in_channel`), and one
channel at most with `thread_ts`. A completed file is shared as a message of the bot's with a `files`
list, in the thread when `thread_ts` names one.
"""

from __future__ import annotations

import json
from typing import Any

from bot.sandbox.slack.conventions import Failure
from bot.sandbox.slack.directory import Channel
from bot.sandbox.slack.files import MAX_ALT_TXT, MAX_FILE_SIZE, StoredFile
from bot.sandbox.slack.identity import JSON
from bot.sandbox.slack.messages import MAX_TEXT, authored
from bot.sandbox.slack.workspace import Workspace


def get_upload_url_external(ws: Workspace, args: JSON) -> JSON:
    name = args.get("filename")
    if not isinstance(name, str) or not name.strip():
        raise Failure("invalid_arguments")
    try:
        length = int(args.get("length") or 0)
    except (TypeError, ValueError) as exc:
        raise Failure("invalid_arguments") from exc
    if length <= 0:
        raise Failure("missing_argument")
    if length > MAX_FILE_SIZE:
        raise Failure("file_upload_size_restricted")
    alt_txt = args.get("alt_txt")
    if isinstance(alt_txt, str) and len(alt_txt) > MAX_ALT_TXT:
        raise Failure("alt_txt_too_large")
    stored = ws.files.reserve(name, length, alt_txt if isinstance(alt_txt, str) else None)
    return {"ok": True, "upload_url": ws.files.upload_url(stored), "file_id": stored.id}


def _listed(files: Any) -> list[JSON]:
    """The `files` argument: a JSON array (a string in a form) of objects with an `id`."""
    if isinstance(files, str):
        try:
            files = json.loads(files)
        except ValueError as exc:
            raise Failure("invalid_arguments") from exc
    if not isinstance(files, list) or not files:
        raise Failure("invalid_arguments")
    if not all(isinstance(f, dict) and f.get("id") for f in files):
        raise Failure("invalid_arguments")
    return files


def _targets(ws: Workspace, args: JSON) -> list[Channel]:
    """The channels the files are shared in, each by id, each with the bot in it."""
    refs: list[str] = []
    if args.get("channel_id"):
        refs.append(str(args["channel_id"]))
    if args.get("channels"):
        refs.extend(r.strip() for r in str(args["channels"]).split(",") if r.strip())
    if args.get("thread_ts") and len(refs) != 1:
        raise Failure("invalid_arguments")
    channels = []
    for ref in refs:
        if ref not in ws.directory.channels:  # a name is not taken here, only an id
            raise Failure("channel_not_found")
        channel = ws.directory.member_channel(ref)
        if channel.is_archived:
            raise Failure("is_archived")
        channels.append(channel)
    return channels


def complete_upload_external(ws: Workspace, args: JSON) -> JSON:
    listed = _listed(args.get("files"))
    stored: list[StoredFile] = [ws.files.completable(f["id"]) for f in listed]
    if len({f.id for f in stored}) != len(stored):
        raise Failure("invalid_arguments")
    channels = _targets(ws, args)
    comment = str(args.get("initial_comment") or "")
    if len(comment) > MAX_TEXT:
        raise Failure("msg_too_long")
    thread_ts = args.get("thread_ts") or None
    for channel in channels:
        if thread_ts:
            ws.messages.thread_parent(channel.id, thread_ts)  # thread_not_found before anything changes
    for entry, f in zip(listed, stored, strict=True):
        f.completed = True
        f.title = str(entry.get("title") or f.name)
    for channel in channels:
        for f in stored:
            f.shares.append((channel.id, ""))  # the message shows the file shared here
        msg = authored(comment)
        msg.update(upload=True, display_as_bot=False, files=[f.info(ws.files.base_url) for f in stored])
        ws.messages.post(channel.id, msg, thread_ts, False)
        for f in stored:
            f.shares[-1] = (channel.id, msg["ts"])
    return {"ok": True, "files": [f.info(ws.files.base_url) for f in stored]}


METHODS = {
    "files.getUploadURLExternal": get_upload_url_external,
    "files.completeUploadExternal": complete_upload_external,
}
