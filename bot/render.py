"""Render message text from templates/ (Jinja2, mrkdwn text only; Block Kit is built in code).

Every value is escaped for Slack mrkdwn (&, <, >) unless it is `Trusted`, so alert text can never
inject a mention such as <!channel> or a fake link.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined


class Trusted(str):
    """Text the bot itself built (mentions, links): rendered as is."""


_USER_MENTION = re.compile(r"&lt;(@[UW][A-Z0-9]{2,20})&gt;")


def escape(value: str) -> str:
    """Escape mrkdwn control characters; plain user mentions (<@U…>) survive, broadcasts and links do not."""
    escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _USER_MENTION.sub(r"<\1>", escaped)


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
