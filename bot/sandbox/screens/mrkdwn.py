"""Slack mrkdwn split into styled pieces: bold, italic, code, mentions, links, emoji."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace

from bot.sandbox.screens.style import CODE, LINK, MENTION, MENTION_BG, TEXT
from bot.sandbox.slack_text import EMOJI


@dataclass(frozen=True)
class Style:
    size: int = 15
    bold: bool = False
    italic: bool = False
    strike: bool = False
    code: bool = False
    color: str = TEXT
    highlight: str | None = None

    @property
    def face(self) -> str:
        if self.code:
            return "mono"
        return {(False, False): "regular", (True, False): "bold", (False, True): "italic"}.get(
            (self.bold, self.italic), "bold_italic"
        )


@dataclass(frozen=True)
class Piece:
    """A run of text in one style, or one emoji (`emoji` is its code: `white_check_mark`)."""

    text: str
    style: Style
    emoji: str | None = None


_ATOM = re.compile(r"<[^<>\n]+>|`[^`\n]+`|:[a-z][a-z0-9_+-]*:")
_MARK = re.compile(r"(?<!\w)([*_~])(?!\s)(.+?)(?<!\s)\1(?!\w)")
_BULLET = re.compile(r"^(\s*(?:[•◦▪\-]|\d+\.)\s+)")
_STRIP = dict.fromkeys(map(ord, "\u2060\ufe0e\ufe0f\u200d"))
_UNICODE_EMOJI = {v.translate(_STRIP): k for k, v in EMOJI.items()}
_IMAGE = " image"  # a context block's image: not an emoji code Slack could send
_EMOJI_NAMES = {"black_right_pointing_double_triangle_with_vertical_bar": "next track", "mag": "magnifier"}
# emoji drawn as Slack's look-alikes: a badge colour (or none) and a glyph (or a filled circle)
_BADGES: dict[str, tuple[str | None, str | None, str]] = {
    "white_check_mark": ("#2eb67d", "✓", "#ffffff"),
    "x": (None, "✗", "#e01e5a"),
    "warning": (None, "⚠", "#e8a200"),
    "arrow_up": ("#3a87d6", "↑", "#ffffff"),
    "black_right_pointing_double_triangle_with_vertical_bar": ("#3a87d6", "»", "#ffffff"),
    "red_circle": ("#dd2e44", None, ""),
    "large_green_circle": ("#2eb67d", None, ""),
}


class Mrkdwn:
    """Slack mrkdwn to pieces: *bold*, _italic_, ~strike~, `code`, mentions and channels by name in blue,
    links by their label, date tokens as the client formats them, emoji codes, entities unescaped."""

    def __init__(self, users: Mapping[str, str], groups: Mapping[str, str], now: float) -> None:
        self.users, self.groups, self.now = users, groups, now

    def line(self, text: str, style: Style, markup: bool = True) -> list[Piece]:
        atoms: list[str] = []

        def stash(m: re.Match[str]) -> str:
            if not markup and not m.group(0).startswith(":"):
                return m.group(0)
            atoms.append(m.group(0))
            return chr(0xE000 + len(atoms) - 1)

        pieces: list[Piece] = []
        self._styled(_ATOM.sub(stash, text), style, atoms, pieces, markup)
        return pieces

    def _styled(self, text: str, style: Style, atoms: list[str], out: list[Piece], markup: bool) -> None:
        at = 0
        for m in _MARK.finditer(text) if markup else ():
            self._plain(text[at : m.start()], style, atoms, out)
            marker = m.group(1)
            inner = replace(style, bold=style.bold or marker == "*", italic=style.italic or marker == "_")
            inner = replace(inner, strike=style.strike or marker == "~")
            self._styled(m.group(2), inner, atoms, out, markup)
            at = m.end()
        self._plain(text[at:], style, atoms, out)

    def _plain(self, text: str, style: Style, atoms: list[str], out: list[Piece]) -> None:
        for part in re.split(r"([\ue000-\uf8ff])", text):
            if len(part) == 1 and 0xE000 <= ord(part) < 0xE000 + len(atoms):
                out.append(self._atom(atoms[ord(part) - 0xE000], style))
            elif part:
                out += _emoji_apart(_unescape(part), style)

    def _atom(self, atom: str, style: Style) -> Piece:
        if atom.startswith("`"):
            return Piece(_unescape(atom[1:-1]), replace(style, code=True, color=CODE))
        if atom.startswith(":"):
            return Piece(atom, style, emoji=atom[1:-1])
        body, _, label = atom[1:-1].partition("|")
        mention = replace(style, color=MENTION, highlight=MENTION_BG)
        if body.startswith("@"):
            return Piece(f"@{self.users.get(body[1:], label or body[1:])}", mention)
        if body.startswith("#"):
            return Piece(f"#{label or body[1:]}", replace(style, color=LINK))
        if body.startswith("!subteam^"):
            group = body.removeprefix("!subteam^")
            return Piece(f"@{self.groups.get(group, label.lstrip('@') or group)}", mention)
        if body in ("!here", "!channel", "!everyone"):
            return Piece(f"@{body[1:]}", mention)
        if body.startswith("!date^"):
            return Piece(_unescape(self._date(body, label)), style)
        return Piece(_unescape(label or body), replace(style, color=LINK))

    def _date(self, body: str, fallback: str) -> str:
        """`<!date^ts^{ago}|fallback>`: "{ago}" relative to now; any other token as its fallback text."""
        parts = body.split("^")
        if len(parts) < 3 or not parts[1].isdigit() or re.sub(r"\{ago\}", "", parts[2]).count("{"):
            return fallback
        seconds = max(0, int(self.now) - int(parts[1]))
        return parts[2].replace("{ago}", _ago(seconds))


def _emoji_apart(text: str, style: Style) -> list[Piece]:
    """Text with its emoji characters (Slack's, or any from the emoji planes) as pieces of their own."""
    pieces, chunk = [], ""
    for ch in text:
        code = _UNICODE_EMOJI.get(ch)
        if code is None and ord(ch) >= 0x1F000 and unicodedata.category(ch) == "So":
            code = unicodedata.name(ch, "emoji").lower().replace(" ", "_")
        if code is None:
            chunk += ch
            continue
        if chunk:
            pieces.append(Piece(chunk, style))
        pieces.append(Piece(ch, style, emoji=code))
        chunk = ""
    return [*pieces, Piece(chunk, style)] if chunk else pieces


def _ago(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").translate(_STRIP)


# -- drawing ---------------------------------------------------------------------------------------------
