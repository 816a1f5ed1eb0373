"""The steps every alert webhook goes through, in this order: authenticate → rate limit → read the body
(size-capped) → parse → ingest (stored before the answer). A source is its name and its own
authenticate and parse steps (and, for MLflow, a step after a delivery was stored)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.core.errors import InputError
from bot.integrations.alerts.payload import Parsed
from bot.services.container import Services
from bot.store.db import unavailable
from bot.web.answers import error, refused, unavailable_response
from bot.web.limits import RateLimiter, refuse_if_limited

log = logging.getLogger(__name__)

MAX_BODY = 1_000_000
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
Handler = Callable[[Request], Awaitable[Response]]


async def read_body(request: Request) -> bytes | Response:
    """The raw body, or a 413 once it is larger than MAX_BODY (declared or counted as it arrives)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        return error(413, f"body larger than {MAX_BODY} bytes")
    chunks, size = [], 0
    async for (
        chunk
    ) in request.stream():  # counted as it arrives: a sender without Content-Length is cut off too
        size += len(chunk)
        if size > MAX_BODY:
            return error(413, f"body larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class Incoming:
    """One webhook request on its way through the steps; its body is read once, when a step first asks."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self._body: bytes | None = None

    async def body(self) -> bytes | Response:
        if self._body is None:
            read = await read_body(self.request)
            if isinstance(read, Response):
                return read
            self._body = read
        return self._body


Authenticate = Callable[[Services, Incoming], Awaitable[Response | None]]
Parse = Callable[[Services, Incoming, bytes], Awaitable[Parsed | Response]]
Settle = Callable[[Services, Incoming, Response | None], Awaitable[None]]  # None: ingest raised


@dataclass(frozen=True)
class Source:
    name: str
    authenticate: Authenticate  # None when the sender may go on, else the answer that refuses it
    parse: Parse  # the alerts, or the answer when there is nothing to store
    settle: Settle | None = None  # after the delivery was answered by ingest


def route(services: Services, limiter: RateLimiter, source: Source) -> Handler:
    """The endpoint of one alert source."""

    async def handle(request: Request) -> Response:
        incoming = Incoming(request)
        denied = await source.authenticate(services, incoming)
        if denied is not None:
            return denied
        # only an authenticated sender spends the rate limit: others cannot starve a source's deliveries
        limited = refuse_if_limited(services, limiter, source.name)
        if limited is not None:
            return limited
        with services.foreground.serving():  # background work steps aside while this sender waits
            return await _store(services, source, incoming)

    return handle


async def _store(services: Services, source: Source, incoming: Incoming) -> Response:
    """Read, parse and store one authenticated delivery, and answer it."""
    body = await incoming.body()
    if isinstance(body, Response):
        return body
    parsed = await source.parse(services, incoming, body)
    if isinstance(parsed, Response):
        return parsed
    answer: Response | None = None
    try:
        answer = await ingest(services, source.name, parsed)
    finally:
        if source.settle is not None:
            await source.settle(services, incoming, answer)
    return answer


def one_header(request: Request, name: str) -> str | None:
    """The header's value; "" when it is absent, None when it is sent more than once (which copy counts
    would depend on who reads it: a proxy in front may read another one than the bot)."""
    values = request.headers.getlist(name)
    return None if len(values) > 1 else (values[0] if values else "")


async def bearer(services: Services, incoming: Incoming) -> Response | None:
    """Webhooks need `Authorization: Bearer <ALERT_WEBHOOK_TOKEN>`; with no token set, loopback only."""
    request, token = incoming.request, services.env.alert_webhook_token
    if token:
        given = one_header(request, "authorization")
        if given is None:
            return error(401, "more than one Authorization header: send exactly one", "Authorization")
        if not hmac.compare_digest(given.encode(), f"Bearer {token.get_secret_value()}".encode()):
            return error(401, "missing or wrong bearer token (Authorization: Bearer <ALERT_WEBHOOK_TOKEN>)")
        return None
    host = request.client.host if request.client else ""
    if host not in LOOPBACK:
        return error(401, "ALERT_WEBHOOK_TOKEN is not set, so only loopback senders are accepted")
    return None


def parsed_by(source: str, parse: Callable[[bytes, int], Parsed], what: str) -> Parse:
    """A parse step for a parser of whole deliveries: a payload it refuses is counted and answered 4xx."""

    async def step(services: Services, _incoming: Incoming, body: bytes) -> Parsed | Response:
        try:
            return parse(body, services.config.intake.max_alerts_per_request)
        except InputError as exc:
            services.metrics.alerts_rejected.labels(source=source, reason="invalid").inc()
            return refused(exc, what)

    return step


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
