"""The outbox's error policy: what an exception raised while sending one row says, and so what becomes
of that row and of the rows behind it.

raised while sending                          verdict       what happens
SlackApiError, HTTP 429                       rate limited  the row waits for Retry-After, and so does its
                                                            channel (a post) or its method (a tiered one)
SlackApiError, HTTP 5xx                       outage        the row backs off; the method is held, probed by
OSError (URLError, socket.timeout,            outage        one call at a time; a post is looked up in Slack
  ConnectionError, SSL), HTTPException                      before it is sent again
SlackApiError, an error in PERMANENT,         final         the row fails; the admin channel is told
  or any error for a modal or an ephemeral
SlackApiError, any other error                refused       retried with backoff, MAX_ATTEMPTS times at most
Skip (nothing to send)                        skipped       the row fails quietly
anything else: an error in the bot itself     bug           the row fails loudly (traceback logged, counted,
                                                            the admin channel told); nothing else is held

Rate limits and outages are waited out for MAX_AGE; then the row fails as final."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from slack_sdk.errors import SlackApiError

# Slack errors that no retry will fix: the row is given up and reported once.
PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_blocks",
    "msg_too_long",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "cant_update_message",
    "message_not_found",
    "user_not_in_channel",
    "no_text",
    "invalid_arguments",
    "expired_trigger_id",
    "exchanged_trigger_id",
    "edit_window_closed",
    "already_reacted",
    "restricted_action",
    "thread_not_found",
    "not_enabled",  # views.publish: the app's Home tab is switched off
    "user_not_found",  # views.publish, chat.postEphemeral: no such person in the workspace
}
UNREPEATABLE = ("view", "ephemeral")  # a trigger is used once; an ephemeral cannot be looked up
TRANSPORT = (OSError, http.client.HTTPException)
MAX_ATTEMPTS = 12  # for Slack errors that are neither rate limits nor outages
MAX_AGE = timedelta(hours=6)  # rate limits and outages are waited out this long


class Skip(Exception):
    """Nothing can be sent for this row."""


class Verdict(StrEnum):
    RATE_LIMITED = "rate limited"
    OUTAGE = "outage"
    FINAL = "final"
    REFUSED = "refused"
    SKIPPED = "skipped"
    BUG = "bug"


@dataclass(frozen=True)
class Failure:
    """What one failed send means: its verdict, the error recorded on the row, and for a rate limit or
    an outage what the retry is counted as (`reason`) and, for a 429, how long to wait."""

    verdict: Verdict
    error: str
    reason: str = ""
    retry_after: float = 0.0


def classify(exc: Exception, kind: str) -> Failure:
    """The verdict on an exception raised while sending a row of `kind`."""
    if isinstance(exc, Skip):
        return Failure(Verdict.SKIPPED, str(exc))
    if isinstance(exc, SlackApiError):
        return _api_error(exc, kind)
    if isinstance(exc, TRANSPORT):  # connection reset, timeout: possibly delivered; checked before re-posting
        return Failure(Verdict.OUTAGE, f"{type(exc).__name__}: {exc}", reason="connection")
    return Failure(Verdict.BUG, f"{type(exc).__name__}: {exc}")


def _api_error(exc: SlackApiError, kind: str) -> Failure:
    status = exc.response.status_code
    error = str(exc.response.get("error", "")) or f"http {status}"
    if status == 429:
        headers = exc.response.headers
        retry_after = seconds(headers.get("Retry-After", headers.get("retry-after")))
        return Failure(Verdict.RATE_LIMITED, f"ratelimited, retry after {retry_after:g}s", "429", retry_after)
    if status >= 500:  # Slack may have acted before failing: a post is looked up before a retry
        return Failure(Verdict.OUTAGE, f"http {status}", reason="5xx")
    if error in PERMANENT or kind in UNREPEATABLE:
        return Failure(Verdict.FINAL, error)
    return Failure(Verdict.REFUSED, error)


def seconds(value: Any) -> float:
    """A Retry-After header in seconds (1 when it is missing or not a number)."""
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 1.0


def backoff(attempts: int) -> timedelta:
    """How long a row waits after its `attempts`-th failed try."""
    return timedelta(seconds=min(60.0, 0.5 * 2 ** max(0, attempts - 1)))
