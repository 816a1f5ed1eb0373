"""The Web API methods the workspace implements, by family; each is called with the workspace lock held
and answers a JSON body or raises `Failure` for an `ok:false` answer."""

from __future__ import annotations

from collections.abc import Callable

from bot.sandbox.slack.identity import JSON
from bot.sandbox.slack.methods import auth, chat, conversations, files, people, reactions, views
from bot.sandbox.slack.workspace import Workspace

Method = Callable[[Workspace, JSON], JSON]

METHODS: dict[str, Method] = {
    **auth.METHODS,
    **chat.METHODS,
    **conversations.METHODS,
    **views.METHODS,
    **people.METHODS,
    **reactions.METHODS,
    **files.METHODS,
}
