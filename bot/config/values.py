"""Small value checks app.yaml's sections share: whole numbers in a range and text of a given shape."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError


def not_bool(value: Any) -> Any:
    """Refuse YAML's true/false where a number is expected (they would otherwise pass as 1/0)."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "expected a whole number")
    return value


Count = Annotated[int, BeforeValidator(not_bool)]


def int_range(low: int, high: int) -> AfterValidator:
    """A validator that keeps a whole number within [low, high]."""

    def check(value: int) -> int:
        if not low <= value <= high:
            raise PydanticCustomError("range", f"must be between {low} and {high}")
        return value

    return AfterValidator(check)


def matching(pattern: str, message: str) -> AfterValidator:
    """A validator that accepts text matching `pattern` whole and otherwise says `message`."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise PydanticCustomError("format", message)
        return value

    return AfterValidator(check)
