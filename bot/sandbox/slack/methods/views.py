"""`views.*`: opening, pushing and updating modals with a trigger id or a view id, and publishing a
user's Home tab."""

from __future__ import annotations

import copy

from bot.sandbox.slack.conventions import Failure
from bot.sandbox.slack.identity import JSON
from bot.sandbox.slack.views import valid_view
from bot.sandbox.slack.workspace import Workspace


def open_view(ws: Workspace, args: JSON) -> JSON:
    view = valid_view(args.get("view"))
    ws.views.use_trigger(args.get("trigger_id"))
    return {"ok": True, "view": copy.deepcopy(ws.views.store(view))}


def push(ws: Workspace, args: JSON) -> JSON:
    view = valid_view(args.get("view"))
    trigger = ws.views.use_trigger(args.get("trigger_id"))
    previous = trigger.view_id if trigger.view_id in ws.views.views else None
    return {"ok": True, "view": copy.deepcopy(ws.views.store(view, previous=previous))}


def update(ws: Workspace, args: JSON) -> JSON:
    view = valid_view(args.get("view"))
    view_id = ws.views.find(args.get("view_id"), args.get("external_id"))
    if args.get("hash") and args["hash"] != ws.views.views[view_id]["hash"]:
        raise Failure("hash_conflict")
    return {"ok": True, "view": copy.deepcopy(ws.views.store(view, view_id=view_id))}


def publish(ws: Workspace, args: JSON) -> JSON:
    user = ws.directory.user_id(args.get("user_id"))
    view = valid_view(args.get("view"))
    if view["type"] != "home":
        raise Failure("invalid_arguments")
    return {"ok": True, "view": copy.deepcopy(ws.views.publish(user, view, args.get("hash")))}


METHODS = {"views.open": open_view, "views.update": update, "views.push": push, "views.publish": publish}
