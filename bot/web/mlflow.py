"""POST /alerts/mlflow: MLflow's registry webhooks, HMAC-verified over the raw body; a delivery MLflow
sends again is answered as a duplicate, an event that is no problem as ignored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from bot.core.errors import InputError
from bot.core.models import AlertIn, Category
from bot.integrations.alerts.payload import Parsed, load_json
from bot.services.container import Services
from bot.store.db import unavailable
from bot.web.answers import error, unavailable_response
from bot.web.pipeline import Incoming, Source, one_header

STALE_AFTER_S = 300
PROBLEM_VALUES = {"failed", "failure", "error", "failed_registration", "invalid", "rejected"}
HEADERS = ("x-mlflow-delivery-id", "x-mlflow-timestamp", "x-mlflow-signature")


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


async def authenticate(services: Services, incoming: Incoming) -> Response | None:
    """The delivery's signature headers, a fresh timestamp, and the HMAC over the raw body."""
    secret = services.env.mlflow_webhook_secret
    if not secret:
        return error(503, "MLFLOW_WEBHOOK_SECRET is not set, so MLflow webhooks are refused")
    given = [one_header(incoming.request, name) for name in HEADERS]
    if None in given:
        return error(401, "each of X-MLflow-Delivery-Id, X-MLflow-Timestamp and X-MLflow-Signature once")
    delivery, stamp, signature = (g or "" for g in given)
    if not (delivery and stamp and signature):
        return error(401, "missing X-MLflow-Delivery-Id, X-MLflow-Timestamp or X-MLflow-Signature")
    if (
        not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12)
        or abs(time.time() - int(stamp)) > STALE_AFTER_S
    ):
        return error(401, "X-MLflow-Timestamp is missing or more than 5 minutes off", "X-MLflow-Timestamp")
    body = await incoming.body()
    if isinstance(body, Response):
        return body
    expected = mlflow_signature(secret.get_secret_value(), delivery, stamp, body)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return error(401, "X-MLflow-Signature does not match the body", "X-MLflow-Signature")
    return None


async def parse(services: Services, incoming: Incoming, body: bytes) -> Parsed | Response:
    """The alert of a registry event that signals a problem; a duplicate or an ignored event is answered."""
    try:
        payload = load_json(body)
    except InputError as exc:
        return error(400, exc.message, exc.field)
    if not isinstance(payload, dict) or "entity" not in payload or "action" not in payload:
        return error(400, "expected {entity, action, timestamp, data}", "entity")
    delivery = incoming.request.headers.get("x-mlflow-delivery-id", "")
    alert = mlflow_alert(payload, delivery)
    if alert is None:
        return JSONResponse(
            {"accepted": 0, "ignored": f"{payload['entity']}.{payload['action']} is not a problem"}
        )
    try:  # claimed before it is stored: of concurrent copies of one delivery, one is taken
        first = await run_in_threadpool(services.requests.claim, _key(delivery))
    except DBAPIError as exc:
        if not unavailable(exc):
            raise
        return unavailable_response()
    if not first:
        return JSONResponse({"accepted": 0, "duplicate": delivery})  # MLflow retried a delivery we have
    return Parsed(alerts=[alert])


async def settle(services: Services, incoming: Incoming, answer: Response | None) -> None:
    """A delivery claimed but not stored is given up, so MLflow sending it again is taken."""
    if answer is None or answer.status_code != 202:
        key = _key(incoming.request.headers.get("x-mlflow-delivery-id", ""))
        await run_in_threadpool(services.requests.release, key)


def _key(delivery: str) -> str:
    return f"mlflow-delivery:{delivery}"


MLFLOW = Source("mlflow", authenticate, parse, settle)
