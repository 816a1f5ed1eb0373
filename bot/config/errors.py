"""How a problem with app.yaml is located and worded: one "<key.path>: <message>" line each.

A validator raises `KeyProblems` to report problems at keys below the one it validates; `problems_from`
turns a pydantic ValidationError into those lines, in words a person editing app.yaml can act on.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from bot.core.redact import redact

Loc = tuple[str | int, ...]


class KeyProblems(ValueError):
    """Raised inside a validator to report problems at keys below the one being validated."""

    def __init__(self, problems: Sequence[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = list(problems)


def _message(error: ErrorDetails) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing" or (value is None and kind.endswith("_type")):
        return "needs a value"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "expected a whole number"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return "expected a number"
    if kind in ("bool_type", "bool_parsing"):
        return "expected true or false"
    if kind == "string_type":
        return "expected text"
    if kind == "list_type":
        return "expected a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "expected a mapping of keys to values"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}"
    if kind == "string_too_short":
        return (
            "must not be empty"
            if ctx.get("min_length") == 1
            else f"must be at least {ctx['min_length']} characters"
        )
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters (got {len(str(value))})"
    message = error["msg"]
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def located(exc: ValidationError) -> list[tuple[Loc, str]]:
    """Every problem in `exc` with its location, a validator's KeyProblems spread to their own keys."""
    found: list[tuple[Loc, str]] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, KeyProblems):
            found.extend(((*loc, *sub), message) for sub, message in cause.problems)
        else:
            found.append((loc, _message(error)))
    return found


def key_path(loc: Loc) -> str:
    """Render a location as app.yaml's key path: ("levels", "l1", "budget") -> "levels.l1.budget". A key is
    text someone typed, so one that looks like a secret (a token pasted in the wrong place) is redacted."""
    path = ""
    for part in loc:
        name = redact(str(part))
        path += f"[{part}]" if isinstance(part, int) else (f".{name}" if path else name)
    return path or "(top level)"


def problems_from(exc: ValidationError) -> list[str]:
    """One "<key.path>: <message>" line per validation error."""
    return [f"{key_path(loc)}: {message}" for loc, message in located(exc)]
