"""POST /alerts/alertmanager: Alertmanager's webhook (v4)."""

from __future__ import annotations

from starlette.responses import Response

from bot.integrations.alerts.alertmanager import parse_alertmanager
from bot.services.container import Services
from bot.web.pipeline import Incoming, Source, bearer, parsed_by


async def authenticate(services: Services, incoming: Incoming) -> Response | None:
    denied = await bearer(services, incoming)
    if denied is not None:
        services.metrics.alerts_rejected.labels(source="alertmanager", reason="auth").inc()
    return denied


ALERTMANAGER = Source(
    "alertmanager",
    authenticate,
    parsed_by("alertmanager", parse_alertmanager, "invalid Alertmanager payload"),
)
