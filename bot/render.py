"""Render message text from templates/ (Jinja2, mrkdwn text only; Block Kit is built in code).

Every value is escaped for Slack mrkdwn (&, <, >) unless it is `Trusted`, so alert text can never
inject a mention such as <!channel> or a fake link.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined


class Trusted(str):
    """Text the bot itself built (mentions, links): rendered as is."""


def escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _finalize(value: Any) -> Any:
    if isinstance(value, Trusted) or not isinstance(value, str):
        return "" if value is None else value
    return escape(value)


@lru_cache(maxsize=1)
def environment() -> Environment:
    folder = str(files("templates"))
    env = Environment(
        loader=FileSystemLoader(folder),
        autoescape=False,
        finalize=_finalize,
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=False,
    )
    return env


def render(name: str, **values: Any) -> str:
    """Render templates/<name>.txt.j2 with `values`; the result has no trailing whitespace."""
    return environment().get_template(f"{name}.txt.j2").render(**values).strip()
