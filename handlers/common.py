"""What every listener shares: turning the service's errors into a message for the person who acted."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.core.errors import BotError, Conflict, InputError, NotAllowed, NotFound

if TYPE_CHECKING:
    from bot.app import Services

log = logging.getLogger("handlers")


def tell(services: Services, channel: str | None, user: str, fn: Callable[[], Any]) -> None:
    """Run one service call after the ack and tell `user` how it went (ephemerally, via the outbox)."""
    try:
        reply = fn()
        text = getattr(reply, "text", None)
    except (NotAllowed, Conflict, NotFound, InputError) as exc:
        text = str(exc)
    except BotError as exc:
        text = f"That did not work: {exc}"
    except Exception:
        error_id = uuid.uuid4().hex[:8]
        log.exception("listener failed (error id %s)", error_id)
        text = f"Something went wrong on our side (error id {error_id}); nothing was changed."
    if text:
        services.incidents.reply(channel, user, text)


def parse_value(value: str) -> tuple[int, str]:
    """Button values are "<id>:<level or option>"."""
    left, _, right = value.partition(":")
    return int(left), right


def meta(view: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
