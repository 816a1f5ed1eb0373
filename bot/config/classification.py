"""app.yaml's `classification` section: rules that name an alert's category before the built-in ones."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from bot.config.section import Section
from bot.core.models import Category


class ClassificationRule(Section):
    category: Category
    pattern: Annotated[str, Field(min_length=1)]  # a regular expression, case-insensitive
    description: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise PydanticCustomError(
                "regex", "not a valid regular expression: {error}", {"error": str(exc)}
            ) from None
        return value


class ClassificationSettings(Section):
    rules: list[ClassificationRule] = Field(default_factory=list)  # tried before the built-in rules
