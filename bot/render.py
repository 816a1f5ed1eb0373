"""Render message text from templates/ (Jinja2, mrkdwn text only; Block Kit is built in code).

Every value is neutralised for Slack mrkdwn (bot.core.untrusted.neutralise) unless it is `Trusted`, so
text from an alert, a log or a note can never mention anyone, link anywhere or break the message.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.core.untrusted import neutralise


class Trusted(str):
    """Text the bot itself built (mentions, links): rendered as is."""


_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")


def escape(value: str) -> str:
    """Untrusted text as mrkdwn that shows it and does nothing else (no mention, link or fence)."""
    return neutralise(value)


def mention(user_id: str | None) -> Trusted | None:
    """A live mention of a Slack user id the bot got from Slack itself; None for anything else."""
    if user_id and _USER_ID.fullmatch(user_id):
        return Trusted(f"<@{user_id}>")
    return None


_LINE_BREAK = re.compile(r"[ \t]*(?:\r\n|[\r\n\v\f\x85\u2028\u2029])\s*")
LINE_BREAK_MARK = " ↵ "


def one_line(value: str) -> str:
    """Untrusted text kept on the line it is placed on: its line breaks shown as ↵, so text from an alert
    cannot start a line of its own that reads as one of the message's fields ("Result: fixed")."""
    return _LINE_BREAK.sub(LINE_BREAK_MARK, value.strip("\r\n\v\f\x85\u2028\u2029"))


def _finalize(value: Any) -> Any:
    if isinstance(value, Trusted) or not isinstance(value, str):
        return "" if value is None else value
    return escape(one_line(value))


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
