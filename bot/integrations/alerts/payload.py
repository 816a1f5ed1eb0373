"""What every webhook body goes through before a parser looks at it: JSON, bounded in depth, and a
limit on alerts per delivery. Errors name what is wrong (InputError), never a traceback."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bot.core.errors import InputError
from bot.core.models import AlertIn
from bot.core.untrusted import depth, needs_cleaning, visible_json

MAX_DEPTH = 32  # real alert payloads nest four or five levels; anything deeper is refused


class TooManyAlerts(InputError):
    """A delivery with more alerts than intake.max_alerts_per_request (answered with 413)."""

    def __init__(self, count: int, cap: int) -> None:
        super().__init__(
            "alerts",
            f"{count} alerts in one delivery is more than intake.max_alerts_per_request ({cap}); "
            "send them in smaller batches (Alertmanager: max_alerts in the webhook config)",
        )
        self.count, self.cap = count, cap


@dataclass
class Refused:
    """One alert of a delivery that was refused while the others were accepted."""

    index: int
    name: str
    field: str
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "alert": self.name, "field": self.field, "error": self.error}


@dataclass
class Parsed:
    """A delivery's alerts, and those of its alerts that were refused by name."""

    alerts: list[AlertIn] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    truncated: int = 0  # alerts the sender says it left out (Alertmanager's truncatedAlerts)


def load_json(body: bytes) -> Any:
    """The body as JSON, or InputError: not UTF-8, not JSON, or nested deeper than MAX_DEPTH."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None  # UTF-16/32, or lone surrogates: json finds out, and every string is cleaned below
    try:
        data = json.loads(text if text is not None else body)
    except RecursionError:
        raise InputError("body", f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError("body", f"not valid JSON ({str(exc)[:200]})") from None
    if depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise InputError("body", f"JSON nested deeper than {MAX_DEPTH} levels")
    if text is not None and not needs_cleaning(text):
        return data  # no string in it can hold a control character or a lone surrogate
    # what no database text holds (NUL, lone surrogates) is written out before any parser looks at it
    return visible_json(data)


def check_count(items: list[Any], cap: int) -> None:
    """Refuse a delivery with more than `cap` alerts before any of them is looked at."""
    if len(items) > cap:
        raise TooManyAlerts(len(items), cap)


def field_path(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a field path: alerts[3].labels.job ("body" for the whole of it)."""
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[") or "body"


def outcome(parsed: Parsed) -> Parsed:
    """The delivery as parsed; InputError when every alert in it was refused."""
    if not parsed.alerts and parsed.refused:
        first = parsed.refused[0]
        more = f" (and {len(parsed.refused) - 1} more)" if len(parsed.refused) > 1 else ""
        raise InputError(first.field, f"{first.error}{more}")
    return parsed
