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
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.core.models import AlertIn
from bot.core.redact import redact

if TYPE_CHECKING:
    from bot.app import Services
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


def generic_route(services: Services, limiter: RateLimiter) -> Handler:
    from bot.web import _body, _token_ok, refuse_if_limited

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
            data = json.loads(body)
        except ValueError as exc:
            return _bad(f"not valid JSON ({exc})", "body")
        items = data.get("alerts") if isinstance(data, dict) and "alerts" in data else [data]
        if not isinstance(items, list) or not items:
            return _bad('expected an alert object or {"alerts": [...]} with at least one alert', "alerts")
        alerts = []
        for i, item in enumerate(items):
            try:
                a = GenericAlert.model_validate(item)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                return _bad(f"{err['msg'].lower()}", f"alerts[{i}].{where}" if len(items) > 1 else where)
            fp = (
                a.fingerprint
                or hashlib.sha256(json.dumps([a.title, sorted(a.labels.items())]).encode()).hexdigest()[:16]
            )
            alerts.append(
                AlertIn(
                    source="generic",
                    fingerprint=f"gen:{fp}",
                    status=a.status,
                    title=redact(a.title),
                    text=redact(a.text),
                    labels=a.labels,
                    annotations=a.annotations,
                    severity=a.severity or a.labels.get("severity"),
                    raw=a.model_dump(),
                )
            )
        result = await run_in_threadpool(services.intake.ingest, alerts)
        return JSONResponse(
            {
                "accepted": result.accepted,
                "opened": result.opened,
                "updated": result.updated,
                "resolved": result.resolved,
                "reopened": result.reopened,
            },
            status_code=202,
        )

    return generic


def mlflow_signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def mlflow_alert(payload: dict[str, Any], delivery_id: str) -> AlertIn | None:
    """A registry event that signals a problem (a failure status or tag), else None."""
    data = payload.get("data") or {}
    entity, action = payload.get("entity", ""), payload.get("action", "")
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
        title=redact(f"Model registration failed: {name} v{version} ({detail})"),
        labels={
            "model": name,
            "model_version": version,
            "category": "model_registration_failed",
            "mlflow_event": f"{entity}.{action}",
        },
        annotations={"delivery_id": delivery_id},
        raw=payload,
    )


def mlflow_route(services: Services, limiter: RateLimiter) -> Handler:
    from bot.web import _body, refuse_if_limited

    async def mlflow(request: Request) -> Response:
        secret = services.env.mlflow_webhook_secret
        if not secret:
            return _bad("MLFLOW_WEBHOOK_SECRET is not set, so MLflow webhooks are refused", status=503)
        limited = refuse_if_limited(services, limiter, "mlflow")
        if limited:
            return limited
        body = await _body(request)
        if isinstance(body, Response):
            return body
        delivery = request.headers.get("x-mlflow-delivery-id", "")
        stamp = request.headers.get("x-mlflow-timestamp", "")
        signature = request.headers.get("x-mlflow-signature", "")
        if not (delivery and stamp and signature):
            return _bad("missing X-MLflow-Delivery-Id, X-MLflow-Timestamp or X-MLflow-Signature", status=401)
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > STALE_AFTER_S:
            return _bad("X-MLflow-Timestamp is missing or more than 5 minutes off", "X-MLflow-Timestamp", 401)
        if not hmac.compare_digest(signature, mlflow_signature(secret, delivery, stamp, body)):
            return _bad("X-MLflow-Signature does not match the body", "X-MLflow-Signature", 401)
        try:
            payload = json.loads(body)
        except ValueError as exc:
            return _bad(f"not valid JSON ({exc})", "body")
        if not isinstance(payload, dict) or "entity" not in payload or "action" not in payload:
            return _bad("expected {entity, action, timestamp, data}", "entity")
        key = f"mlflow-delivery:{delivery}"
        if await run_in_threadpool(services.incidents.was_processed, key):
            return JSONResponse({"accepted": 0, "duplicate": delivery})  # MLflow retried a delivery we have
        alert = mlflow_alert(payload, delivery)
        if alert is None:
            return JSONResponse(
                {"accepted": 0, "ignored": f"{payload['entity']}.{payload['action']} is not a problem"}
            )
        result = await run_in_threadpool(services.intake.ingest, [alert])
        await run_in_threadpool(services.incidents.claim_request, key)
        return JSONResponse({"accepted": result.accepted, "opened": result.opened}, status_code=202)

    return mlflow
