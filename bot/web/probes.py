"""GET /healthz (the process serves), /readyz (the database takes writes and the process is not shutting
down) and /metrics (Prometheus)."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.core.redact import redact
from bot.services.container import Services
from bot.services.stats_gauges import RateGauges
from bot.web.answers import RETRY_AFTER_S

log = logging.getLogger(__name__)


def probe_routes(services: Services) -> list[Route]:
    rates = RateGauges(services.engine, services.clock, services.metrics)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_request: Request) -> Response:
        if services.timers.draining.is_set():  # shutting down: a Service routes to the other replicas
            ok, detail = False, "not ready: shutting down"
        else:
            ok, detail = await run_in_threadpool(services.ready)
        headers = {} if ok else {"Retry-After": str(RETRY_AFTER_S)}
        return PlainTextResponse(redact(detail), status_code=200 if ok else 503, headers=headers)

    async def metrics(_request: Request) -> Response:
        try:
            services.metrics.outbox_pending.set(await run_in_threadpool(services.outbox.pending))
        except DBAPIError as exc:  # the rest of the metrics are still worth scraping
            log.warning("outbox size not read for /metrics: %s", exc.orig)
        try:
            await run_in_threadpool(rates.refresh)
        except DBAPIError as exc:
            log.warning("rates not read for /metrics: %s", exc.orig)
        return Response(services.metrics.render(), media_type="text/plain; version=0.0.4")

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
