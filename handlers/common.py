"""What every listener shares: turning the service's errors into a message for the person who acted,
marking the stored request done, and reading button values strictly."""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from slack_bolt import BoltContext

from bot.core.errors import BotError, Conflict, InputError, NotAllowed, NotFound
from bot.services.outage import database_unavailable

if TYPE_CHECKING:
    from bot.services.container import Services

log = logging.getLogger("handlers")

UNAVAILABLE = (
    "The bot cannot reach its database right now, so nothing was changed. Please try again in a minute."
)
MAX_ID = 2**31 - 1
_ID = re.compile(r"(?:INC-)?([0-9]{1,10})", re.IGNORECASE | re.ASCII)
_F = TypeVar("_F", bound=Callable[..., Any])


def durable(services: Services) -> Callable[[_F], _F]:
    """Mark the listener's stored request done when it returns, however it went: only a request whose
    process died before this point is handled again after a restart."""

    def wrap(listener: _F) -> _F:
        @functools.wraps(listener)
        def run(*args: Any, **kwargs: Any) -> Any:
            context: BoltContext | None = kwargs.get("context")
            inbox_id = context.get("inbox_id") if context is not None else None
            try:
                result = listener(*args, **kwargs)
            except BaseException as exc:
                if database_unavailable(exc):  # left pending: it is handled again once the database is back
                    log.error("Slack request %s not handled, the database is unavailable: %s", inbox_id, exc)
                    raise
                _done(services, inbox_id)
                raise
            _done(services, inbox_id)
            return result

        return run  # type: ignore[return-value]

    return wrap


def _done(services: Services, inbox_id: int | None) -> None:
    if inbox_id:
        services.inbox.done(inbox_id)


def tell(
    services: Services,
    channel: str | None,
    user: str,
    fn: Callable[[], Any],
    respond: Callable[..., Any] | None = None,
) -> None:
    """Run one service call after the ack and tell `user` how it went (ephemerally, via the outbox; or
    straight through `respond` when the database, and so the outbox, cannot be reached)."""
    direct = False
    try:
        reply = fn()
        text = getattr(reply, "text", None)
    except (NotAllowed, Conflict, NotFound, InputError) as exc:
        text = str(exc)
    except BotError as exc:
        text = f"That did not work: {exc}"
    except Exception as exc:
        if database_unavailable(exc):
            log.error("database unavailable while handling a Slack request: %s", exc)
            text, direct = UNAVAILABLE, True
        else:
            error_id = uuid.uuid4().hex[:8]
            log.exception("listener failed (error id %s)", error_id)
            text = f"Something went wrong on our side (error id {error_id}); nothing was changed."
    if not text:
        return
    if not direct:
        try:
            services.replies.reply(channel, user, text)
            return
        except Exception as exc:
            log.error("could not queue a reply to %s: %s", user, exc)
            text = UNAVAILABLE
    if respond is not None:
        try:
            respond(text=text, response_type="ephemeral", replace_original=False)
        except Exception as exc:  # Slack itself may be what is down
            log.warning("could not answer %s through the response url: %s", user, exc)


def incident_id(text: str) -> int | None:
    """An incident id as a person types it (12 or INC-12), ASCII digits only and in range; else None."""
    match = _ID.fullmatch(text.strip())
    if match is None:
        return None
    value = int(match.group(1))
    return value if 0 < value <= MAX_ID else None


def parse_value(value: Any) -> tuple[int, str]:
    """Button values are "<id>:<level or option>"; anything else is an InputError."""
    left, sep, right = str(value or "").partition(":")
    number = incident_id(left)
    if not sep or number is None or not right or len(right) > 8:
        raise InputError("value", "this button's value is not one the bot made; nothing was changed")
    return number, right
