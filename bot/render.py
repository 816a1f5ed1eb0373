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


ELLIPSIS = "…"
# an HTML error page quoted in an error ("<html><head><title>401 …"); not Python's "<module>"
_HTML_TAG = re.compile(
    r"</?(?:html|head|body|title|center|h[1-6]|p|br|hr|pre|div|span|a|b|i|em|strong|meta|style|script)"
    r"\b[^<>]{0,200}>",
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")
# an error code said twice ("RESOURCE_DOES_NOT_EXIST RESOURCE_DOES_NOT_EXIST: …"), a word said twice by the
# text's maker ("tracking server server error"); a word said many times on purpose is left alone
_DOUBLED_CODE = re.compile(r"(?<![\w.-])([A-Z][A-Z0-9_]{2,})(?:[:\s]+\1(?![\w.-]))+")
_DOUBLED_WORD = re.compile(r"(?<![\w.-])([A-Za-z]{4,})((?:\s+\1(?![\w.-]))+)")
_HTTP_CODE = re.compile(r" ?\(HTTP (\d{3})\)")
_URL = re.compile(r"\b([a-z][a-z0-9+.-]{1,15})://([^\s/'\"<>()]*)(/[^\s'\"<>()]*)?", re.IGNORECASE)
_ASIDE = re.compile(r" \([^()]{12,}\)")
_LONG_ID = re.compile(r"\b[0-9a-f]{24,64}\b")
# where data lives: a reader needs the whole path (which partition, which file)
DATA_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "hdfs", "abfs", "abfss", "wasbs", "dbfs", "file", "runs"})
URL_SHOWN = 40  # a URL longer than this is shown as its host and its last path segment


def shorten(value: str, limit: int) -> str:
    """`value` cut to at most `limit` characters, at a word boundary when there is one, marked with …"""
    if len(value) <= limit:
        return value
    cut = value[: max(1, limit - 1)]
    space = cut.rfind(" ")
    if not value[len(cut)].isspace() and space > limit * 0.6:  # a word was cut: leave it out
        cut = cut[:space]
    return cut.rstrip(" ,;:.(") + ELLIPSIS


def _short_url(match: re.Match[str]) -> str:
    """A URL as a reader needs it: no scheme for a web page, no user or password, and a long path as its
    last segment (a data path, s3://…, is kept whole: which partition or file matters)."""
    scheme, host, path = match.group(1).lower(), match.group(2), match.group(3) or ""
    if scheme in DATA_SCHEMES:
        return match.group(0)
    host = host.rsplit("@", 1)[-1]
    head = host if scheme in ("http", "https") else f"{match.group(1)}://{host}"
    if len(head + path) <= URL_SHOWN:
        return head + path
    last = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return f"{head}/{ELLIPSIS}/{last}" if last else head


def tidy(value: str, limit: int) -> str:
    """Untrusted text as one short readable line: no line breaks, HTML tags, repeated codes, full URLs or
    32-digit ids; when still too long, without its asides in parentheses, then cut at a word boundary.
    Escape it afterwards (`escape`), as with any untrusted text."""
    text = _SPACES.sub(" ", _HTML_TAG.sub(" ", one_line(value).replace(LINE_BREAK_MARK, " · "))).strip()
    text = _DOUBLED_CODE.sub(r"\1", text)
    text = _DOUBLED_WORD.sub(lambda m: m.group(1) if m.group(2).count(m.group(1)) == 1 else m.group(0), text)
    for code in set(_HTTP_CODE.findall(text)):
        if text.count(f"HTTP {code}") > 1:  # "error (HTTP 503): GET … → HTTP 503 Service Unavailable"
            text = text.replace(f" (HTTP {code})", "", 1)
    text = _URL.sub(_short_url, text)
    text = _LONG_ID.sub(lambda m: m.group(0)[:8] + ELLIPSIS, text)
    for aside in sorted(_ASIDE.findall(text), key=len, reverse=True):
        if len(text) <= limit:
            break
        text = text.replace(aside, "", 1)  # "(Job was active longer than specified deadline)": an aside
    return shorten(text, limit)


_LINK_UNSAFE = re.compile(r"[\s<>|]")


def link(url: str | None, label: str) -> Trusted | None:
    """A mrkdwn link to an http(s) page (from an alert or a server the bot knows); None for anything else.
    The label is escaped; the URL may not break out of the link."""
    if not url or not re.match(r"https?://[^/\s]", url, re.IGNORECASE) or len(url) > 2000:
        return None
    safe = _LINK_UNSAFE.sub(lambda m: f"%{ord(m.group(0)):02X}", url.replace("&", "&amp;"))
    return Trusted(f"<{safe}|{escape(label).replace('|', '¦')}>")


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
