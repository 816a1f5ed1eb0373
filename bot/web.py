"""HTTP endpoints: Slack (/slack/events), alert webhooks, health and metrics; plus a threaded server."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import uvicorn
from slack_bolt import App, BoltRequest
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.core.errors import InputError
from bot.core.redact import redact
from bot.integrations.alerts.alertmanager import parse_alertmanager
from bot.integrations.alerts.payload import Parsed, TooManyAlerts
from bot.store.db import unavailable

if TYPE_CHECKING:
    from bot.services.container import Services

log = logging.getLogger(__name__)

MAX_BODY = 1_000_000
RETRY_AFTER_S = 30  # what a sender is told to wait while the database is unavailable
SLACK_WINDOW_S = 300  # a Slack request signed longer ago than this is refused (a replay)
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class RateLimiter:
    """A token bucket per alert source (one token per request): over the limit, a 429 with Retry-After."""

    def __init__(self, limits: Mapping[str, Any], monotonic: Callable[[], float] = time.monotonic) -> None:
        self._limits = {k: (float(v.per_second), float(v.burst)) for k, v in limits.items()}
        self._monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, source: str) -> int | None:
        """Take a token for `source`: None when the request may go on, else whole seconds to wait (≥ 1)."""
        limit = self._limits.get(source)
        if limit is None:
            return None
        rate, burst = limit
        with self._lock:
            now = self._monotonic()
            tokens, last = self._buckets.get(source, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[source] = (tokens - 1.0, now)
                return None
            self._buckets[source] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))


def refuse_if_limited(services: Services, limiter: RateLimiter, source: str) -> Response | None:
    """The 429 for a source over its rate limit, before its body is read; None when it may go on."""
    wait = limiter.retry_after(source)
    if wait is None:
        return None
    services.metrics.alerts_rejected.labels(source=source, reason="rate_limited").inc()
    limit = services.config.intake.rate_limits[source]  # type: ignore[index]
    return JSONResponse(
        {
            "error": f"rate limited: {source} may send {limit.per_second:g} requests/s "
            f"(burst {limit.burst}); retry after {wait} s",
            "retry_after": wait,
        },
        status_code=429,
        headers={"Retry-After": str(wait)},
    )


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


def slack_signature_ok(secret: bytes, stamp: str, body: bytes, signature: str, now: float) -> bool:
    """Slack's v0 signature over the raw bytes (whatever they hold), within the 5-minute window."""
    if not secret or abs(now - int(stamp)) > SLACK_WINDOW_S:
        return False
    mac = hmac.new(secret, b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v0={mac}".encode(), signature.encode())


def refused(exc: InputError, what: str) -> JSONResponse:
    """400 naming the wrong field, or 413 naming the cap on alerts per delivery."""
    if isinstance(exc, TooManyAlerts):
        return _error(413, str(exc.message), exc.field)
    return _error(400, f"{what}: {exc}", exc.field)


def unavailable_response() -> JSONResponse:
    """503 with Retry-After: the sender keeps the alerts and sends them again."""
    return JSONResponse(
        {"error": "the bot's database is unavailable; nothing was stored, send again later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def ingest(services: Services, source: str, parsed: Parsed) -> Response:
    """Store a delivery's alerts (committed before the answer) and say what became of them: applied, or
    queued when it is large or others are ahead of it."""
    try:
        body = await run_in_threadpool(
            lambda: services.deliveries.accept(source, parsed.alerts, parsed.truncated)
        )
    except DBAPIError as exc:
        if not unavailable(exc):
            raise
        log.error("database unavailable; a %s delivery was refused with 503: %s", source, exc.orig)
        services.metrics.alerts_rejected.labels(source=source, reason="unavailable").inc()
        return unavailable_response()
    if parsed.refused:
        services.metrics.alerts_rejected.labels(source=source, reason="invalid").inc(len(parsed.refused))
        body["refused"] = [r.as_dict() for r in parsed.refused]
    return JSONResponse(body, status_code=202)


async def _body(request: Request) -> bytes | JSONResponse:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        return _error(413, f"body larger than {MAX_BODY} bytes")
    chunks, size = [], 0
    async for (
        chunk
    ) in request.stream():  # counted as it arrives: a sender without Content-Length is cut off too
        size += len(chunk)
        if size > MAX_BODY:
            return _error(413, f"body larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _token_ok(request: Request, token: str | None) -> JSONResponse | None:
    """Webhooks need `Authorization: Bearer <ALERT_WEBHOOK_TOKEN>`; with no token set, loopback only."""
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _error(401, "missing or wrong bearer token (Authorization: Bearer <ALERT_WEBHOOK_TOKEN>)")
        return None
    host = request.client.host if request.client else ""
    if host not in LOOPBACK:
        return _error(401, "ALERT_WEBHOOK_TOKEN is not set, so only loopback senders are accepted")
    return None


def build_web(slack: App, services: Services) -> Starlette:
    limiter = RateLimiter({str(k): v for k, v in services.config.intake.rate_limits.items()})

    secret = (services.env.slack_signing_secret or "").encode()

    async def slack_events(request: Request) -> Response:
        if services.env.socket_mode:
            return _error(
                404, "Slack requests come over Socket Mode (SLACK_APP_TOKEN is set); this endpoint is off"
            )
        if not services.env.slack_signing_secret:
            return _error(503, "SLACK_SIGNING_SECRET is not set, so Slack requests cannot be verified")
        stamps = request.headers.getlist("x-slack-request-timestamp")
        stamp = stamps[0] if len(stamps) == 1 else ""
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            return _error(
                401, "X-Slack-Request-Timestamp must be a Unix time in seconds", "X-Slack-Request-Timestamp"
            )
        signatures = request.headers.getlist("x-slack-signature")
        if len(signatures) != 1 or not signatures[0].isascii():
            return _error(401, "invalid request: exactly one ASCII X-Slack-Signature header is needed")
        body = await _body(request)
        if isinstance(body, Response):
            return body
        # checked here before bolt parses the body, so nothing unsigned is ever parsed
        if not slack_signature_ok(secret, stamp, body, signatures[0], time.time()):
            return _error(
                401, "invalid request: the Slack signature does not match, or it is older than 5 minutes"
            )
        try:
            text = body.decode("utf-8")
            headers: dict[str, str | Sequence[str]] = {}
            for k, v in request.headers.items():
                headers[k.lower()] = [*headers.get(k.lower(), []), v]
            bolt_req = BoltRequest(body=text, query=str(request.url.query), headers=headers)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return _error(400, f"the request body cannot be read: {type(exc).__name__}", "body")
        try:
            resp = await run_in_threadpool(slack.dispatch, bolt_req)
        except Exception:  # bolt itself choked on a signed but malformed request
            error_id = uuid.uuid4().hex[:8]
            log.exception("Slack request could not be dispatched (error id %s)", error_id)
            return _error(400, f"the request could not be handled (error id {error_id})")
        if resp.status == 500:  # bolt could not handle a signed request: its shape is not one Slack sends
            log.warning("Slack request of an unexpected shape: bolt answered 500 (%s)", resp.body[:200])
            return _error(400, "the request's payload does not have the shape Slack sends", "payload")
        out_headers = {k: v[0] for k, v in resp.headers.items() if v and k.lower() != "content-length"}
        return Response(content=resp.body, status_code=resp.status, headers=out_headers)

    async def alertmanager(request: Request) -> Response:
        denied = _token_ok(request, services.env.alert_webhook_token)
        if denied:
            services.metrics.alerts_rejected.labels(source="alertmanager", reason="auth").inc()
            return denied
        limited = refuse_if_limited(services, limiter, "alertmanager")
        if limited:
            return limited
        body = await _body(request)
        if isinstance(body, Response):
            return body
        try:
            parsed = parse_alertmanager(body, services.config.intake.max_alerts_per_request)
        except InputError as exc:
            services.metrics.alerts_rejected.labels(source="alertmanager", reason="invalid").inc()
            return refused(exc, "invalid Alertmanager payload")
        return await ingest(services, "alertmanager", parsed)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_request: Request) -> Response:
        ok, detail = await run_in_threadpool(services.ready)
        headers = {} if ok else {"Retry-After": str(RETRY_AFTER_S)}
        return PlainTextResponse(redact(detail), status_code=200 if ok else 503, headers=headers)

    async def metrics(_request: Request) -> Response:
        try:
            services.metrics.outbox_pending.set(await run_in_threadpool(services.outbox.pending))
        except DBAPIError as exc:  # the rest of the metrics are still worth scraping
            log.warning("outbox size not read for /metrics: %s", exc.orig)
        return Response(services.metrics.render(), media_type="text/plain; version=0.0.4")

    from bot.web_sources import generic_route, mlflow_route

    routes = [
        Route("/slack/events", slack_events, methods=["POST"]),
        Route("/alerts/alertmanager", alertmanager, methods=["POST"]),
        Route("/alerts/mlflow", mlflow_route(services, limiter), methods=["POST"]),
        Route("/alerts/generic", generic_route(services, limiter), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes)


class WebServer:
    """uvicorn in a background thread (used by `run`, the demo and the tests)."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self, timeout: float = 10.0) -> str:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the web server did not start")
            time.sleep(0.01)
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
