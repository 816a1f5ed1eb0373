"""The answers every endpoint shares: an error naming the field that is wrong, a refused delivery, and
the 503 a sender gets while the database is unavailable."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from bot.core.errors import InputError
from bot.integrations.alerts.payload import TooManyAlerts

RETRY_AFTER_S = 30  # what a sender is told to wait while the database is unavailable


def error(status: int, message: str, field: str | None = None) -> JSONResponse:
    """`{"error": message, "field": field}` (no field when there is none) with `status`."""
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


def refused(exc: InputError, what: str) -> JSONResponse:
    """400 naming the wrong field, or 413 naming the cap on alerts per delivery."""
    if isinstance(exc, TooManyAlerts):
        return error(413, str(exc.message), exc.field)
    return error(400, f"{what}: {exc}", exc.field)


def unavailable_response() -> JSONResponse:
    """503 with Retry-After: the sender keeps the alerts and sends them again."""
    return JSONResponse(
        {"error": "the bot's database is unavailable; nothing was stored, send again later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
