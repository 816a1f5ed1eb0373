"""Hints on an app.yaml problem: the nearest known key for an unknown one ("did you mean ack_deadline?"),
and the value that was refused ("(got 99)"), redacted and cut short, never for a key that looks secret."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from bot.config.errors import Loc, key_path
from bot.config.remediation import KNOWN_REMEDIATIONS, RemediationCaps
from bot.core.redact import redact

SHOWN_CHARS = 60
UNKNOWN_KEY = "unknown key"
# a value under a key named like this is never shown, whatever it looks like
_SECRET_KEY = re.compile(r"(?i)secret|passw|passphrase|credential|private|api_?key|auth|(^|_)(token|key)$")
# dicts whose values' model depends on the key: remediation.allowlist.<name> takes that remediation's caps
_MODEL_BY_KEY: dict[type[BaseModel], Mapping[str, type[BaseModel]]] = {RemediationCaps: KNOWN_REMEDIATIONS}
_MISSING = object()


def _unwrapped(annotation: Any) -> list[Any]:
    """The types an annotation may hold: Annotated[...] and unions opened up."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrapped(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [inner for arg in get_args(annotation) for inner in _unwrapped(arg)]
    return [annotation]


def _step(annotation: Any, part: str | int) -> Any:
    """The annotation one key or index below `annotation`; None when it cannot be followed."""
    for kind in _unwrapped(annotation):
        origin = get_origin(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(part) if isinstance(part, str) else None
            if field is not None:
                return field.annotation
        elif origin is list and isinstance(part, int):
            return get_args(kind)[0]
        elif origin is dict:
            value = get_args(kind)[1]
            for model in _unwrapped(value):
                if model in _MODEL_BY_KEY:
                    return _MODEL_BY_KEY[model].get(str(part), model)
            return value
    return None


def known_keys(root: type[BaseModel], loc: Loc) -> list[str]:
    """The keys app.yaml may hold at `loc` (a mapping's location), following sections, lists and dicts."""
    annotation: Any = root
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    return [
        name
        for kind in _unwrapped(annotation)
        if isinstance(kind, type) and issubclass(kind, BaseModel)
        for name in kind.model_fields
    ]


def _value_at(data: Any, loc: Loc) -> Any:
    """The value app.yaml gave at `loc`; _MISSING when it gave none there."""
    for part in loc:
        keyed = dict(enumerate(data)) if isinstance(data, list) else data
        if not isinstance(keyed, dict) or part not in keyed:
            return _MISSING
        data = keyed[part]
    return data


def shown_value(value: Any) -> str | None:
    """A scalar as app.yaml spells it, redacted and cut to SHOWN_CHARS; None for a mapping or a list."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, str):
        text = f"'{value}'"
    else:
        return None
    text = redact(text)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _looks_secret(loc: Loc) -> bool:
    return any(isinstance(part, str) and _SECRET_KEY.search(part) for part in loc)


def hinted(root: type[BaseModel], loc: Loc, message: str, data: Any, *, show_value: bool) -> str:
    """The problem's line, "<key.path>: <message>", with the nearest key or the refused value added."""
    line = f"{key_path(loc)}: {message}"
    if message == UNKNOWN_KEY and loc and isinstance(loc[-1], str):
        near = difflib.get_close_matches(loc[-1], known_keys(root, loc[:-1]), n=1)
        return f"{line} (did you mean {near[0]}?)" if near else line
    if not show_value or message.startswith("needs a value") or "(got " in message or _looks_secret(loc):
        return line
    value = _value_at(data, loc)
    shown = None if value is _MISSING else shown_value(value)
    if shown is None or shown in message:  # a message that already quotes the value
        return line
    return f"{line} (got {shown})"


def described(
    root: type[BaseModel], problems: list[tuple[Loc, str]], data: Any, *, show_values: bool
) -> list[str]:
    """One line per problem, each with its hint."""
    return [hinted(root, loc, message, data, show_value=show_values) for loc, message in problems]
