"""The App Home tab: published for the person who opens it (`app_home_opened`, tab "home")."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltContext

from handlers.common import durable

if TYPE_CHECKING:
    from bot.services.container import Services

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")


def register(app: App, services: Services) -> None:
    once = durable(services, app.listener_runner.listener_executor)

    @once
    def handle_app_home_opened_event(event: dict[str, Any], context: BoltContext) -> None:
        user = event.get("user")
        # the Messages tab opens the same event; only Home has something to show
        if event.get("tab") == "home" and isinstance(user, str) and _USER_ID.fullmatch(user):
            services.home.opened(user)

    app.event("app_home_opened")(handle_app_home_opened_event)
