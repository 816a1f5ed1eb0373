"""Slack message text as a person sees it in the Slack client, for a terminal: mentions by name
(`@alice`, `@data-coordinator`), links by their label, date tokens by their fallback, entities unescaped,
emoji codes as emoji, long lines wrapped."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping

EMOJI = {
    "red_circle": "🔴",
    "large_green_circle": "🟢",
    "white_check_mark": "✅",
    "rotating_light": "🚨",
    "alarm_clock": "⏰",
    "warning": "⚠️",
    "x": "❌",
    "black_right_pointing_double_triangle_with_vertical_bar": "⏭️",
    "arrow_up": "⬆️",
    "hourglass_flowing_sand": "⏳",
    "mag": "🔍",
    "link": "🔗",
}
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_GROUP = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
_DATE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
_LINK = re.compile(r"<(https?://[^|>]+)(?:\|([^>]*))?>")
_EMOJI = re.compile(r":([a-z0-9_+-]+):")


def readable(text: str, users: Mapping[str, str], groups: Mapping[str, str], width: int = 100) -> str:
    """`text` (Slack mrkdwn) as the client shows it: `users` and `groups` map ids to names."""
    text = _USER.sub(lambda m: f"@{users.get(m.group(1), m.group(1))}", text)
    text = _GROUP.sub(lambda m: f"@{groups.get(m.group(1), m.group(1))}", text)
    text = _SPECIAL.sub(lambda m: f"@{m.group(1)}", text)
    text = _DATE.sub(lambda m: m.group(1), text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("\u2060", "")
    return "\n".join(_wrap(line, width) for line in text.split("\n"))


def _wrap(line: str, width: int) -> str:
    if len(line) <= width:
        return line
    indent = " " * (len(line) - len(line.lstrip(" •-")))
    return "\n".join(textwrap.wrap(line, width, subsequent_indent=indent + "  ", break_on_hyphens=False))
