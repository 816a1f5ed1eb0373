"""What every listener shares: answering Slack the moment it acks, turning the service's errors into a
message for the person who acted, marking the stored request done, and reading button values strictly."""

from __future__ import annotations

import functools
import inspect
import logging
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any, TypeVar

from slack_bolt import Ack, BoltContext

from bot.core.errors import BotError, Conflict, InputError, NotAllowed, NotFound
from bot.core.models import Level
from bot.logs import about
from bot.services.outage import database_unavailable

if TYPE_CHECKING:
    from bot.services.container import Services

log = logging.getLogger("handlers")

UNAVAILABLE = (
    "The bot cannot reach its database right now, so nothing was changed. Please try again in a minute."
)
MAX_ID = 2**31 - 1
_ID = re.compile(r"(?:INC-)?([0-9]{1,10})", re.IGNORECASE | re.ASCII)
# A button's value exactly as the bot writes it: "<id>:<level or option>", the id in ASCII digits with no
# sign, space or leading zero (so one id has one spelling), the rest a level (L2) or an option (0).
_VALUE = re.compile(r"([1-9][0-9]{0,9}):([A-Z0-9]{1,8})")
NOT_OURS = "this button's value is not one the bot made; nothing was changed"
Notice = tuple[str, str]  # where a click in a view (App Home) is answered: its trigger id, a modal title
_F = TypeVar("_F", bound=Callable[..., Any])


ACK_TIMEOUT_S = 3.0  # Slack's: an ack later than this is not seen


def durable(services: Services, executor: Executor) -> Callable[[_F], _F]:
    """A listener that Slack gets its answer from as soon as it acks, and whose stored request is marked
    done when it returns, however it went (only a request whose process died before then is handled again
    after a restart).

    bolt runs it in the request's thread (`process_before_response=True`); it hands the listener to
    `executor` and returns the moment the listener calls `ack()`, so the work after the ack goes on in the
    background and Slack's answer waits neither for it nor for bolt's 10 ms ack polling. A listener that
    takes no `ack` (events) is acked at once by bolt. One that fails before it acks fails the request."""

    def wrap(listener: _F) -> _F:
        acks = "ack" in inspect.signature(listener).parameters
        finish = _finishing(services, listener)

        @functools.wraps(listener)
        def answer_at_ack(*args: Any, **kwargs: Any) -> Any:
            if not acks:
                executor.submit(finish, *args, **kwargs).add_done_callback(_log_failure)
                return None
            acked = threading.Event()
            ack: Ack = kwargs["ack"]

            def ack_now(*a: Any, **kw: Any) -> Any:
                try:
                    return ack(*a, **kw)
                finally:
                    acked.set()

            work = executor.submit(finish, *args, **{**kwargs, "ack": ack_now})
            work.add_done_callback(lambda _: acked.set())
            acked.wait(ACK_TIMEOUT_S)
            failed = work.exception() if work.done() else None
            if failed is not None and ack.response is None:
                raise failed  # it failed before it acked: bolt's error handler answers 500
            work.add_done_callback(_log_failure)  # a failure after the ack is logged
            return None

        return answer_at_ack  # type: ignore[return-value]

    return wrap


def _log_failure(work: Future[Any]) -> None:
    exc = work.exception()
    if exc is not None:
        log.error("Failed to run listener function (error: %s)", exc, exc_info=exc)


def _finishing(services: Services, listener: Callable[..., Any]) -> Callable[..., Any]:
    """The listener, marking its stored request done when it returns."""

    def run(*args: Any, **kwargs: Any) -> Any:
        context: BoltContext | None = kwargs.get("context")
        inbox_id = context.get("inbox_id") if context is not None else None
        try:
            with about(source="slack"):  # its log lines say they came from Slack
                result = listener(*args, **kwargs)
        except BaseException as exc:
            if database_unavailable(exc):  # left pending: it is handled again once the database is back
                log.error("Slack request %s not handled, the database is unavailable: %s", inbox_id, exc)
                raise
            _done(services, inbox_id)
            raise
        _done(services, inbox_id)
        return result

    return run


def _done(services: Services, inbox_id: int | None) -> None:
    if inbox_id:
        services.inbox.done(inbox_id)


def tell(
    services: Services,
    channel: str | None,
    user: str,
    fn: Callable[[], Any],
    respond: Callable[..., Any] | None = None,
    notice: Notice | None = None,
) -> None:
    """Run one service call after the ack and tell `user` how it went (ephemerally, via the outbox; in a
    modal opened with `notice`'s trigger id when the click has no channel to answer in, as on App Home;
    or straight through `respond` when the database, and so the outbox, cannot be reached)."""
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
            if channel is None and notice is not None:
                services.replies.notice(*notice, text)
            else:
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
    """A button's value as the bot writes it, "<id>:<level or option>", read the same for every button
    (the id at most MAX_ID); anything else, `+1:L2`, ` 1:L2` or a full-width digit, is an InputError."""
    match = _VALUE.fullmatch(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) > MAX_ID:
        raise InputError("value", NOT_OURS)
    return int(match.group(1)), match.group(2)


def level_value(value: Any) -> tuple[int, Level]:
    """An incident's (or a group's) button: its id and the level it was clicked at."""
    number, level = parse_value(value)
    try:
        return number, Level(level)
    except ValueError:
        raise InputError("value", NOT_OURS) from None


def option_value(value: Any) -> tuple[int, int]:
    """A decision's option button: the decision's id and the option's index."""
    number, option = parse_value(value)
    if not option.isdigit() or len(option) > 2:
        raise InputError("value", NOT_OURS)
    return number, int(option)


def ask_why(services: Services, body: dict[str, Any], user: str, meta: dict[str, Any], choice: str) -> None:
    """After a decision, the modal asking the decider why `choice` (its submission records the reason)."""
    from bot.integrations.slack import blocks

    services.views.open(
        str(body.get("trigger_id", "")),
        user,
        lambda private: blocks.rationale_modal(meta, choice, private),
        meta,
    )
