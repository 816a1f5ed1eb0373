"""Slack listeners only: each module parses a payload, calls one service method and returns."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt import App

from handlers import actions, commands, events, groups, home, inbox, views

if TYPE_CHECKING:
    from bot.services.container import Services


def register_all(app: App, services: Services) -> None:
    inbox.register(app, services)  # first: every request is stored before it is acknowledged
    events.register(app, services)
    commands.register(app, services)
    actions.register(app, services)
    groups.register(app, services)
    views.register(app, services)
    home.register(app, services)
