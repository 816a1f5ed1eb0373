"""`users.info` and `usergroups.*`: who someone is and who is in a group."""

from __future__ import annotations

import copy

from bot.sandbox.slack.conventions import Failure, flag
from bot.sandbox.slack.identity import JSON
from bot.sandbox.slack.workspace import Workspace


def users_info(ws: Workspace, args: JSON) -> JSON:
    return {"ok": True, "user": copy.deepcopy(ws.directory.users[ws.directory.user_id(args.get("user"))])}


def usergroups_list(ws: Workspace, args: JSON) -> JSON:
    with_users = flag(args.get("include_users"))
    groups = []
    for group in ws.directory.usergroups.values():
        out = {k: copy.deepcopy(v) for k, v in group.items() if k != "users" or with_users}
        out["user_count"] = len(group["users"])
        groups.append(out)
    return {"ok": True, "usergroups": groups}


def usergroups_users_list(ws: Workspace, args: JSON) -> JSON:
    group = ws.directory.usergroups.get(str(args.get("usergroup")))
    if group is None:
        raise Failure("no_such_subteam")
    return {"ok": True, "users": list(group["users"])}


METHODS = {
    "users.info": users_info,
    "usergroups.list": usergroups_list,
    "usergroups.users.list": usergroups_users_list,
}
