"""The generic JSON webhook and the MLflow registry webhook (HMAC-verified)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.core.errors import InputError
from bot.core.models import AlertIn, Category
from bot.integrations.alerts.payload import Parsed, Refused, check_count, field_path, load_json, outcome
from bot.store.db import unavailable

if TYPE_CHECKING:
    from bot.services.container import Services
    from bot.web import RateLimiter

Handler = Callable[[Request], Awaitable[Response]]
STALE_AFTER_S = 300
PROBLEM_VALUES = {"failed", "failure", "error", "failed_registration", "invalid", "rejected"}


class GenericAlert(BaseModel):
    """The documented schema of POST /alerts/generic (one alert, or {"alerts": [...]})."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=500)
    status: Literal["firing", "resolved"] = "firing"
    fingerprint: str | None = Field(default=None, max_length=200)
    severity: str | None = None
    text: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


def _bad(message: str, field: str | None = None, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message, **({"field": field} if field else {})}, status_code=status)


def parse_generic(body: bytes, max_alerts: int) -> Parsed:
    """One alert or {"alerts": [...]}; an alert that does not fit the schema is refused by index and title
    while the others are accepted (InputError when none is left, or the shape itself is wrong)."""
    data = load_json(body)
    items = data.get("alerts") if isinstance(data, dict) and "alerts" in data else [data]
    if not isinstance(items, list) or not items:
        raise InputError("alerts", 'expected an alert object or {"alerts": [...]} with at least one alert')
    check_count(items, max_alerts)
    parsed = Parsed()
    for i, item in enumerate(items):
        try:
            a = GenericAlert.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = field_path(tuple(err["loc"]))
            field = (
                (f"alerts[{i}].{where}" if where else f"alerts[{i}]") if len(items) > 1 else (where or "body")
            )
            title = item.get("title") if isinstance(item, dict) else None
            name = title if isinstance(title, str) and title else f"alerts[{i}]"
            parsed.refused.append(Refused(i, name[:200], field, err["msg"].lower()))
            continue
        fp = (
            a.fingerprint
            or hashlib.sha256(json.dumps([a.title, sorted(a.labels.items())]).encode()).hexdigest()[:16]
        )
        parsed.alerts.append(
            AlertIn(
                source="generic",
                fingerprint=f"gen:{fp}",
                status=a.status,
                title=a.title,
                text=a.text,
                labels=a.labels,
                annotations=a.annotations,
                severity=a.severity or a.labels.get("severity"),
                raw=a.model_dump(),
            )
        )
    return outcome(parsed)


def generic_route(services: Services, limiter: RateLimiter) -> Handler:
    from bot.web import _body, _token_ok, ingest, refuse_if_limited, refused

    async def generic(request: Request) -> Response:
        denied = _token_ok(request, services.env.alert_webhook_token)
        if denied:
            return denied
        limited = refuse_if_limited(services, limiter, "generic")
        if limited:
            return limited
        body = await _body(request)
        if isinstance(body, Response):
            return body
        try:
            parsed = parse_generic(body, services.config.intake.max_alerts_per_request)
        except InputError as exc:
            services.metrics.alerts_rejected.labels(source="generic", reason="invalid").inc()
            return refused(exc, "invalid alert")
        return await ingest(services, "generic", parsed)

    return generic


def mlflow_signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def mlflow_alert(payload: dict[str, Any], delivery_id: str) -> AlertIn | None:
    """A registry event that signals a problem (a failure status or tag), else None."""
    found = payload.get("data")
    data: dict[str, Any] = found if isinstance(found, dict) else {}
    entity, action = str(payload.get("entity", ""))[:100], str(payload.get("action", ""))[:100]
    value = str(data.get("value", "")).lower()
    status = str(data.get("status", "")).lower()
    if value not in PROBLEM_VALUES and status not in PROBLEM_VALUES:
        return None
    name, version = str(data.get("name", "?")), str(data.get("version", "?"))
    detail = f"{data.get('key')}={data.get('value')}" if "key" in data else f"status {data.get('status')}"
    return AlertIn(
        source="mlflow",
        fingerprint=f"mlflow:{name}:{version}:{data.get('key', 'status')}",
        status="firing",
        title=f"Model registration failed: {name} v{version} ({detail})",
        labels={"model": name, "model_version": version, "mlflow_event": f"{entity}.{action}"},
        category=Category.MODEL_REGISTRATION_FAILED.value,
        category_reason=f"MLflow registry event {entity}.{action}",
        annotations={"delivery_id": delivery_id},
        raw=payload,
    )


def mlflow_route(services: Services, limiter: RateLimiter) -> Handler:
    from bot.web import _body, ingest, refuse_if_limited, unavailable_response

    async def mlflow(request: Request) -> Response:
        secret = services.env.mlflow_webhook_secret
        if not secret:
            return _bad("MLFLOW_WEBHOOK_SECRET is not set, so MLflow webhooks are refused", status=503)
        delivery = request.headers.get("x-mlflow-delivery-id", "")
        stamp = request.headers.get("x-mlflow-timestamp", "")
        signature = request.headers.get("x-mlflow-signature", "")
        if not (delivery and stamp and signature):
            return _bad("missing X-MLflow-Delivery-Id, X-MLflow-Timestamp or X-MLflow-Signature", status=401)
        if (
            not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12)
            or abs(time.time() - int(stamp)) > STALE_AFTER_S
        ):
            return _bad("X-MLflow-Timestamp is missing or more than 5 minutes off", "X-MLflow-Timestamp", 401)
        body = await _body(request)
        if isinstance(body, Response):
            return body
        if not hmac.compare_digest(
            signature.encode(), mlflow_signature(secret, delivery, stamp, body).encode()
        ):
            return _bad("X-MLflow-Signature does not match the body", "X-MLflow-Signature", 401)
        # only an authenticated sender spends the rate limit: others cannot starve MLflow's deliveries
        limited = refuse_if_limited(services, limiter, "mlflow")
        if limited:
            return limited
        try:
            payload = load_json(body)
        except InputError as exc:
            return _bad(exc.message, exc.field)
        if not isinstance(payload, dict) or "entity" not in payload or "action" not in payload:
            return _bad("expected {entity, action, timestamp, data}", "entity")
        key = f"mlflow-delivery:{delivery}"
        try:
            seen = await run_in_threadpool(services.requests.seen, key)
        except DBAPIError as exc:
            if not unavailable(exc):
                raise
            return unavailable_response()
        if seen:
            return JSONResponse({"accepted": 0, "duplicate": delivery})  # MLflow retried a delivery we have
        alert = mlflow_alert(payload, delivery)
        if alert is None:
            return JSONResponse(
                {"accepted": 0, "ignored": f"{payload['entity']}.{payload['action']} is not a problem"}
            )
        answer = await ingest(services, "mlflow", Parsed(alerts=[alert]))
        if answer.status_code == 202:
            await run_in_threadpool(services.requests.claim, key)
        return answer

    return mlflow
