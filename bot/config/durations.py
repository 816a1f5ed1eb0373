"""Durations as app.yaml spells them ("30s", "5m", "1h30m", "500ms" or a number of seconds)."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

_DURATION_ERROR = "expected a duration like 30s, 5m, 1h"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_TEXT = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """Read "30s", "5m", "1h30m", "500ms" or a number of seconds as a timedelta."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PydanticCustomError("duration", _DURATION_ERROR)
    elif isinstance(value, str):
        text = "".join(value.split()).lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif _DURATION_TEXT.fullmatch(text):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise PydanticCustomError("duration", _DURATION_ERROR)
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise PydanticCustomError("duration", _DURATION_ERROR)
    if seconds < 0:
        raise PydanticCustomError("duration", "must not be negative")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Write a timedelta the way app.yaml spells it: "30m", "1h30m", "500ms"."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    if millis % 1000:
        return f"{millis / 1000}s"
    rest, parts = millis // 1000, []
    for unit in ("d", "h", "m", "s"):
        size = int(_UNIT_SECONDS[unit])
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


def between(low: timedelta, high: timedelta) -> AfterValidator:
    """A validator that keeps a duration within [low, high]."""

    def check(value: timedelta) -> timedelta:
        if not low <= value <= high:
            raise PydanticCustomError(
                "range", f"must be between {format_duration(low)} and {format_duration(high)}"
            )
        return value

    return AfterValidator(check)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise PydanticCustomError("range", "must be longer than 0s")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
