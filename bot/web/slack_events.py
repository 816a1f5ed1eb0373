"""POST /slack/events in HTTP mode (events, commands, interactivity): Slack's v0 signature is checked
over the raw bytes before anything is parsed, then bolt handles the request."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Sequence

from slack_bolt import App, BoltRequest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from bot.services.container import Services
from bot.web.answers import error
from bot.web.pipeline import Handler, read_body

log = logging.getLogger(__name__)

SLACK_WINDOW_S = 300  # a Slack request signed longer ago than this is refused (a replay)


def slack_signature_ok(secret: bytes, stamp: str, body: bytes, signature: str, now: float) -> bool:
    """Slack's v0 signature over the raw bytes (whatever they hold), within the 5-minute window."""
    if not secret or abs(now - int(stamp)) > SLACK_WINDOW_S:
        return False
    mac = hmac.new(secret, b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v0={mac}".encode(), signature.encode())


def slack_route(slack: App, services: Services) -> Handler:
    signing_secret = services.env.slack_signing_secret
    secret = signing_secret.get_secret_value().encode() if signing_secret else b""

    async def slack_events(request: Request) -> Response:
        if services.env.socket_mode:
            return error(
                404, "Slack requests come over Socket Mode (SLACK_APP_TOKEN is set); this endpoint is off"
            )
        if not services.env.slack_signing_secret:
            return error(503, "SLACK_SIGNING_SECRET is not set, so Slack requests cannot be verified")
        stamps = request.headers.getlist("x-slack-request-timestamp")
        stamp = stamps[0] if len(stamps) == 1 else ""
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            return error(
                401, "X-Slack-Request-Timestamp must be a Unix time in seconds", "X-Slack-Request-Timestamp"
            )
        signatures = request.headers.getlist("x-slack-signature")
        if len(signatures) != 1 or not signatures[0].isascii():
            return error(401, "invalid request: exactly one ASCII X-Slack-Signature header is needed")
        body = await read_body(request)
        if isinstance(body, Response):
            return body
        # checked here before bolt parses the body, so nothing unsigned is ever parsed
        if not slack_signature_ok(secret, stamp, body, signatures[0], time.time()):
            return error(
                401, "invalid request: the Slack signature does not match, or it is older than 5 minutes"
            )
        return await _dispatch(slack, request, body)

    return slack_events


async def _dispatch(slack: App, request: Request, body: bytes) -> Response:
    """Bolt's answer to a signed request; a shape Slack never sends gets a 400, not bolt's 500."""
    try:
        text = body.decode("utf-8")
        headers: dict[str, str | Sequence[str]] = {}
        for k, v in request.headers.items():
            headers[k.lower()] = [*headers.get(k.lower(), []), v]
        bolt_req = BoltRequest(body=text, query=str(request.url.query), headers=headers)
    except Exception as exc:  # not UTF-8, not JSON or a form, or JSON that is not an object
        return error(400, f"the request body cannot be read: {type(exc).__name__}", "body")
    try:
        resp = await run_in_threadpool(slack.dispatch, bolt_req)
    except Exception:  # bolt itself choked on a signed but malformed request
        error_id = uuid.uuid4().hex[:8]
        log.exception("Slack request could not be dispatched (error id %s)", error_id)
        return error(400, f"the request could not be handled (error id {error_id})")
    if resp.status == 500:  # bolt could not handle a signed request: its shape is not one Slack sends
        log.warning("Slack request of an unexpected shape: bolt answered 500 (%s)", resp.body[:200])
        return error(400, "the request's payload does not have the shape Slack sends", "payload")
    out_headers = {k: v[0] for k, v in resp.headers.items() if v and k.lower() != "content-length"}
    return Response(content=resp.body, status_code=resp.status, headers=out_headers)
