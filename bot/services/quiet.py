"""An incident's message inside a group's thread: shown without the level's mention, because the group's
own message already mentioned the people it waits on."""

from __future__ import annotations

from bot.store.tables import Incident


def quiet(inc: Incident) -> Incident:
    """A copy of `inc` (not attached to any session) whose policy mentions nobody."""
    policy = dict(inc.policy)
    policy["mentions"] = {}
    return inc.model_copy(update={"policy": policy})
