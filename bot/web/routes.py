"""The web app: one route per endpoint, built from the bot's services."""

from __future__ import annotations

from slack_bolt import App
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from bot.services.container import Services
from bot.web.alertmanager import ALERTMANAGER
from bot.web.generic import GENERIC
from bot.web.limits import RateLimiter
from bot.web.mlflow import MLFLOW
from bot.web.pipeline import route
from bot.web.probes import probe_routes
from bot.web.refusals import LogRefusals
from bot.web.slack_events import slack_route

SOURCES = (ALERTMANAGER, MLFLOW, GENERIC)


def build_web(slack: App, services: Services) -> Starlette:
    limiter = RateLimiter({str(k): v for k, v in services.config.intake.rate_limits.items()})
    alerts = [Route(f"/alerts/{s.name}", route(services, limiter, s), methods=["POST"]) for s in SOURCES]
    return Starlette(
        routes=[
            Route("/slack/events", slack_route(slack, services), methods=["POST"]),
            *alerts,
            *probe_routes(services),
        ],
        middleware=[Middleware(LogRefusals)],
    )
