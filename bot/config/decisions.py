"""app.yaml's `decisions` section: the Level 4 question and its options, by category.

A category app.yaml leaves out keeps its built-in template (decision_templates.yaml, shipped with the
package); a built-in option acts only through a remediation on the allowlist, else only records the choice.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from bot.config.errors import KeyProblems, Loc
from bot.config.section import Section
from bot.core.models import Category

TEMPLATE_KEYS: tuple[str, ...] = ("default", *(c.value for c in Category))


class DecisionOption(Section):
    label: str = Field(min_length=1, max_length=75)
    trade_off: str = Field(min_length=1, max_length=300)
    action: str | None = None  # None, "resolve", or a name on remediation.allowlist
    style: Literal["primary", "danger"] | None = None


class DecisionTemplate(Section):
    question: str = Field(min_length=1, max_length=300)
    options: list[DecisionOption]

    @model_validator(mode="after")
    def _options(self) -> DecisionTemplate:
        if not 2 <= len(self.options) <= 4:
            raise KeyProblems([(("options",), f"needs 2 to 4 options (got {len(self.options)})")])
        seen: set[str] = set()
        for index, option in enumerate(self.options):
            if option.label.casefold() in seen:
                raise KeyProblems([(("options", index, "label"), f"duplicate label '{option.label}'")])
            seen.add(option.label.casefold())
        return self


@cache
def _builtin_text() -> str:
    return resources.files("bot.config").joinpath("decision_templates.yaml").read_text(encoding="utf-8")


def builtin_templates() -> dict[str, Any]:
    """The built-in templates by category, as app.yaml would write them (a fresh copy on each call)."""
    templates: dict[str, Any] = yaml.safe_load(_builtin_text())
    return templates


def _acting_within(template: dict[str, Any], allowed: Collection[str] | None) -> dict[str, Any]:
    if allowed is None:
        return template
    options = [
        {k: v for k, v in option.items() if k != "action"} if option.get("action") not in allowed else option
        for option in template["options"]
    ]
    return {**template, "options": options}


def with_builtins(data: Any, allowed: Collection[str] | None = None) -> Any:
    """The decisions section as written, with the built-in template of each category it leaves out or
    leaves empty; given `allowed`, a built-in option whose action is not in it only records the choice."""
    if not isinstance(data, dict):
        return data
    given = data.get("templates")
    if given is None:
        given = {}
    if not isinstance(given, dict):
        return data
    ours = {key: value for key, value in given.items() if value is not None}
    merged = {**builtin_templates(), **ours}
    templates = {k: v if k in ours else _acting_within(v, allowed) for k, v in merged.items()}
    return {**data, "templates": templates}


class DecisionSettings(Section):
    """L4 templates by category. Keys left out of app.yaml keep the built-in template."""

    templates: dict[str, DecisionTemplate] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _merge_builtins(cls, data: Any) -> Any:
        given = data.get("templates") if isinstance(data, dict) else None
        unknown = [key for key in given if key not in TEMPLATE_KEYS] if isinstance(given, dict) else []
        if unknown:
            known = ", ".join(TEMPLATE_KEYS)
            raise KeyProblems(
                [(("templates", str(key)), f"unknown category (known: {known})") for key in unknown]
            )
        return with_builtins(data)

    @model_validator(mode="after")
    def _has_default(self) -> DecisionSettings:
        if "default" not in self.templates:
            raise KeyProblems([(("templates",), "must contain a 'default' template")])
        return self

    def for_category(self, category: str) -> DecisionTemplate:
        """The template for `category`, or the default one."""
        return self.templates.get(str(category)) or self.templates["default"]

    def actions_outside(self, allowed: Collection[str]) -> list[tuple[Loc, str]]:
        """Every option whose action is not in `allowed`, at its key."""
        return [
            (
                ("templates", key, "options", index, "action"),
                f"'{option.action}' is neither 'resolve' nor a remediation on remediation.allowlist",
            )
            for key, template in self.templates.items()
            for index, option in enumerate(template.options)
            if option.action is not None and option.action not in allowed
        ]
