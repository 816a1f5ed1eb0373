"""The first middleware: every Slack request is stored before the listeners run (and so before its ack).

A repeat of a stored request (Slack's retry of an event, or a signed request replayed inside Slack's
five-minute window) is acknowledged and dropped. Every string in the request is cleaned and redacted
here, once, before any listener sees it. When the database cannot take the request, the person is
told to try again (Slack retries an event answered with a 5xx). Requests handed in again after a restart
(see Bot.replay_inbox) carry their stored id in the request context and are not stored twice."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_bolt.error import BoltUnhandledRequestError

from bot.core.untrusted import scrub
from bot.integrations.slack.blocks import notice_modal
from bot.services.inbox import request_key
from bot.services.outage import database_unavailable
from handlers.common import UNAVAILABLE

if TYPE_CHECKING:
    from bot.services.container import Services

log = logging.getLogger("handlers")
REPLAY = "inbox_replay_id"  # set in the request context by Bot.replay_inbox, never by a request


def register(app: App, services: Services) -> None:
    def store_before_ack(
        req: BoltRequest, body: dict[str, Any], context: BoltContext, next: Callable[[], BoltResponse]
    ) -> BoltResponse | None:
        replayed = context.get(REPLAY)
        if replayed:
            context["inbox_id"] = replayed
            return next()
        found = request_key(body, req.raw_body if req.mode == "http" else None)
        # what people typed and other bots posted is cleaned and redacted once, here, for every listener
        scrubbed = scrub(body)
        body.clear()
        body.update(scrubbed)
        if found is None:
            return next()
        kind, key = found
        try:
            inbox_id = services.inbox.accept(kind, key, body)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            log.error("database unavailable; Slack %s request not accepted: %s", kind, exc)
            return _unavailable(kind, body, context)
        if inbox_id is None:
            log.info("Slack %s request %s was handled before; dropped", kind, key)
            return BoltResponse(status=200, body="")
        context["inbox_id"] = inbox_id
        return next()

    def on_error(error: Exception, request: BoltRequest) -> None:
        if isinstance(error, BoltUnhandledRequestError):
            # no listener takes it (an event or action the bot does not use): answered 404, done with
            services.inbox.done(request.context.get("inbox_id"))
            log.info("Slack request without a listener: %s", error)
            return
        log.error("Failed to run listener function (error: %s)", error, exc_info=error)

    app.middleware(store_before_ack)
    app.error(on_error)


def _unavailable(kind: str, body: dict[str, Any], context: BoltContext) -> BoltResponse:
    """What Slack and the person see when the request could not be stored."""
    if kind == "event_callback":
        # a 5xx makes Slack deliver the event again (up to three times, over five minutes)
        return BoltResponse(status=503, body="database unavailable", headers={"retry-after": "60"})
    if kind == "command":
        return _json({"response_type": "ephemeral", "text": UNAVAILABLE})
    if kind == "view_submission":
        view = body.get("view") if isinstance(body.get("view"), dict) else {}
        values = ((view or {}).get("state") or {}).get("values") or {}
        first = next(iter(values), None) if isinstance(values, dict) else None
        if first:
            return _json({"response_action": "errors", "errors": {first: UNAVAILABLE}})
        return _json({"response_action": "update", "view": notice_modal("Try again", UNAVAILABLE)})
    if context.respond is not None:
        try:
            context.respond(text=UNAVAILABLE, response_type="ephemeral", replace_original=False)
        except Exception as exc:  # Slack may be unreachable too; the click is simply not taken
            log.warning("could not tell the person to try again: %s", exc)
    return BoltResponse(status=200, body="")


def _json(payload: dict[str, Any]) -> BoltResponse:
    return BoltResponse(status=200, body=json.dumps(payload), headers={"content-type": "application/json"})
