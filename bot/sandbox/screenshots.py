"""Pictures of what the bot shows in Slack, drawn from the Block Kit the Slack emulator stored: a message
the way the Slack client shows it (a white card with the app's name and the time, sections with *bold*,
mentions by name, bullet lines, context lines in small grey, buttons) and a person's App Home tab, as PNG.

`python bench/screenshots.py [DIR]` runs a short sandbox scenario (a failing pipeline step escalated to the
data coordinator, an OOM-killed training job fixed at Level 1, the coordinator opening Home) and writes
DIR/l2-message.png, DIR/l1-report.png and DIR/app-home.png.

Pillow draws them; it is not one of the bot's dependencies (install it to use this module). DejaVu fonts
are used when the machine has them, Pillow's own font otherwise; an emoji the font cannot draw shows as
its name in brackets."""

from __future__ import annotations

import argparse
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from bot.sandbox.demo import names
from bot.sandbox.mlflow_api import SandboxMlflowAPI
from bot.sandbox.slack_text import EMOJI
from bot.sandbox.world import COORDINATOR, OOM_ALERT, PIPELINE_ALERT, SandboxWorld, alertmanager_payload

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Draw = ImageDraw.ImageDraw
Op = Callable[[Draw], None]

# Slack's own colours
TEXT, GREY, LINK, LINE = "#1d1c1d", "#616061", "#1264a3", "#dddddd"
BACKDROP, CARD = "#f4f4f5", "#ffffff"
MENTION, MENTION_BG = "#1264a3", "#e8f5fa"
CODE, CODE_BG = "#c01343", "#f6f6f6"
PRIMARY, DANGER = "#007a5a", "#e01e5a"
AVATAR = "#4a154b"

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
FACES = {
    "regular": "DejaVuSans.ttf",
    "bold": "DejaVuSans-Bold.ttf",
    "italic": "DejaVuSans-Oblique.ttf",
    "bold_italic": "DejaVuSans-BoldOblique.ttf",
    "mono": "DejaVuSansMono.ttf",
}
MESSAGE_WIDTH, HOME_WIDTH = 780, 780
MAX_BYTES = 200_000


class Fonts:
    """DejaVu faces found under `dirs` by file name; Pillow's default font for a face that is not there."""

    def __init__(self, dirs: Iterable[Path] = FONT_DIRS) -> None:
        dirs = [d for d in dirs if d.is_dir()]
        self.files = {face: _find(name, dirs) for face, name in FACES.items()}
        self._fonts: dict[tuple[str, int], Font] = {}
        self._glyphs: dict[tuple[int, str], bool] = {}

    def get(self, face: str, size: int) -> Font:
        if (face, size) not in self._fonts:
            path = self.files.get(face) or self.files["regular"]
            font = ImageFont.truetype(str(path), size) if path else ImageFont.load_default(size)
            self._fonts[face, size] = font
        return self._fonts[face, size]

    def fake_bold(self, face: str) -> bool:
        """Bold asked for and no bold face: drawn twice, a pixel apart."""
        return face.startswith("bold") and self.files.get(face) is None

    def has(self, font: Font, ch: str) -> bool:
        """Whether `font` draws `ch` (rather than its box for a missing glyph)."""
        key = (id(font), ch)
        if key not in self._glyphs:
            self._glyphs[key] = _has_glyph(font, ch)
        return self._glyphs[key]


def _find(name: str, dirs: Sequence[Path]) -> Path | None:
    for directory in dirs:
        found = next(directory.rglob(name), None)
        if found is not None:
            return found
    return None


def _has_glyph(font: Font, ch: str) -> bool:
    if not isinstance(font, ImageFont.FreeTypeFont):
        return ord(ch) < 256  # Pillow's bitmap font: Latin-1
    try:
        mask, missing = font.getmask(ch), font.getmask("\U0010fffd")
    except (OSError, ValueError):
        return False
    return (mask.size, bytes(mask)) != (missing.size, bytes(missing))


# -- Slack mrkdwn as styled pieces ------------------------------------------------------------------------


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


class Canvas:
    """What to draw, recorded while the layout goes down the page; drawn once the height is known."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def image(self, width: int, height: int, background: str = BACKDROP) -> Image.Image:
        image = Image.new("RGB", (width, height), background)
        draw = ImageDraw.Draw(image)
        for op in self.ops:
            op(draw)
        return image


class Renderer:
    """Block Kit to pictures. `users` and `groups` map ids to the names a mention shows; `now` is when
    the picture is taken (for "5 minutes ago")."""

    def __init__(
        self,
        users: Mapping[str, str],
        groups: Mapping[str, str],
        *,
        fonts: Fonts | None = None,
        now: float | None = None,
    ) -> None:
        self.fonts = fonts or Fonts()
        self.markup = Mrkdwn(users, groups, time.time() if now is None else now)

    # -- the two pictures --------------------------------------------------------------------------------
    def message(self, message: Mapping[str, Any], width: int = MESSAGE_WIDTH) -> Image.Image:
        """A message as a card: the app's avatar, its name in bold, APP and the time, then its blocks."""
        canvas, margin, pad, avatar = Canvas(), 16, 18, 40
        left = margin + pad + avatar + 12
        inner = width - left - margin - pad
        name = str(
            (message.get("bot_profile") or {}).get("name") or message.get("username") or "escalation-bot"
        )
        y: float = margin + pad
        self._avatar(canvas, margin + pad, y, avatar, name)
        x = self._text(canvas, left, y, name, Style(bold=True))
        x = self._badge(canvas, x + 6, y + 2, "APP")
        stamp = _clock(str(message.get("ts", "")))
        self._text(canvas, x + 8, y + 2, stamp, Style(size=12, color=GREY))
        blocks = message.get("blocks") or [
            {"type": "section", "text": {"type": "mrkdwn", "text": message.get("text", "")}}
        ]
        y = self.blocks(canvas, blocks, left, y + 24, inner)
        height = int(max(y, margin + pad + avatar)) + pad + margin
        canvas.ops.insert(0, _card(margin, margin, width - margin, height - margin))
        return canvas.image(width, height)

    def home(
        self, view: Mapping[str, Any], app_name: str = "escalation-bot", width: int = HOME_WIDTH
    ) -> Image.Image:
        """An App Home tab: the app's name and its tabs (Home chosen) above the view's blocks."""
        canvas, margin, pad, avatar = Canvas(), 16, 24, 32
        y: float = margin + 16
        self._avatar(canvas, margin + pad, y, avatar, app_name)
        self._text(canvas, margin + pad + avatar + 10, y + 6, app_name, Style(size=17, bold=True))
        y += avatar + 14
        tabs_x: float = margin + pad
        for i, tab in enumerate(("Home", "Messages", "About")):
            chosen = i == 0
            end = self._text(
                canvas, tabs_x, y, tab, Style(size=14, bold=chosen, color=TEXT if chosen else GREY)
            )
            if chosen:
                canvas.ops.append(_rect(tabs_x, y + 25, end, y + 27, PRIMARY))
            tabs_x = end + 22
        canvas.ops.append(_rect(margin, y + 27, width - margin, y + 28, LINE))
        y = self.blocks(canvas, view.get("blocks", []), margin + pad, y + 44, width - 2 * (margin + pad))
        height = int(y) + pad + margin
        canvas.ops.insert(0, _card(margin, margin, width - margin, height - margin))
        return canvas.image(width, height)

    # -- blocks ------------------------------------------------------------------------------------------
    def blocks(
        self, canvas: Canvas, blocks: Sequence[Mapping[str, Any]], x: float, y: float, width: float
    ) -> float:
        for block in blocks:
            draw = getattr(self, f"_block_{block.get('type')}", None)
            if draw is not None:
                y = draw(canvas, block, x, y, width) + 6
        return y

    def _block_header(self, canvas: Canvas, block: Mapping[str, Any], x: float, y: float, w: float) -> float:
        return self.paragraph(
            canvas, _text_of(block.get("text")), x, y + 2, w, Style(size=20, bold=True), False
        )

    def _block_divider(
        self, canvas: Canvas, _block: Mapping[str, Any], x: float, y: float, w: float
    ) -> float:
        canvas.ops.append(_rect(x, y + 6, x + w, y + 7, LINE))
        return y + 12

    def _block_section(self, canvas: Canvas, block: Mapping[str, Any], x: float, y: float, w: float) -> float:
        accessory = block.get("accessory") or {}
        label = _control_label(accessory)
        room = w - (self._button_width(label) + 12 if label else 0)
        bottom = y
        if block.get("text"):
            bottom = self.paragraph(
                canvas, _text_of(block["text"]), x, y, room, Style(), _is_mrkdwn(block["text"])
            )
        fields = block.get("fields") or []
        column = (room - 16) / 2
        for row in range(0, len(fields), 2):
            top, row_bottom = bottom + (6 if bottom > y else 0), bottom
            for i, field in enumerate(fields[row : row + 2]):
                fx = x + i * (column + 16)
                end = self.paragraph(canvas, _text_of(field), fx, top, column, Style(), _is_mrkdwn(field))
                row_bottom = max(row_bottom, end)
            bottom = row_bottom
        if label:
            bottom = max(bottom, self._button(canvas, x + w - self._button_width(label), y, label, accessory))
        return bottom

    def _block_context(self, canvas: Canvas, block: Mapping[str, Any], x: float, y: float, w: float) -> float:
        small = Style(size=13, color=GREY)
        pieces: list[Piece] = []
        for element in block.get("elements", []):
            if pieces:
                pieces.append(Piece("   ", small))
            if element.get("type") == "image":
                pieces.append(Piece("", small, emoji=_IMAGE))
            else:
                pieces += self.markup.line(_text_of(element), small, _is_mrkdwn(element))
        return self.flow(canvas, pieces, x, y, w, 0)

    def _block_actions(self, canvas: Canvas, block: Mapping[str, Any], x: float, y: float, w: float) -> float:
        at, top, bottom = x, y + 4, y + 4
        for element in block.get("elements", []):
            label = _control_label(element)
            width = self._button_width(label)
            if at > x and at + width > x + w:
                at, top = x, bottom + 8
            bottom = self._button(canvas, at, top, label, element)
            at += width + 8
        return bottom + 2

    def _block_image(self, canvas: Canvas, block: Mapping[str, Any], x: float, y: float, w: float) -> float:
        canvas.ops.append(_rounded(x, y, x + min(w, 320), y + 90, 6, "#eeeeee", LINE))
        self._text(canvas, x + 12, y + 36, str(block.get("alt_text", "image")), Style(size=13, color=GREY))
        return y + 90

    def _block_input(self, canvas: Canvas, block: Mapping[str, Any], x: float, y: float, w: float) -> float:
        y = self.paragraph(canvas, _text_of(block.get("label")), x, y, w, Style(bold=True), False)
        placeholder = _text_of((block.get("element") or {}).get("placeholder"))
        canvas.ops.append(_rounded(x, y + 4, x + w, y + 40, 4, CARD, "#bbbbbb"))
        self._text(canvas, x + 10, y + 13, placeholder, Style(size=14, color=GREY))
        return y + 40

    def _block_rich_text(
        self, canvas: Canvas, block: Mapping[str, Any], x: float, y: float, w: float
    ) -> float:
        return self.paragraph(canvas, "".join(_rich_texts(block)), x, y, w, Style(), False)

    # -- text --------------------------------------------------------------------------------------------
    def paragraph(
        self, canvas: Canvas, text: str, x: float, y: float, width: float, style: Style, markup: bool = True
    ) -> float:
        """`text` line by line, wrapped to `width`; a bullet line's continuation starts under its text."""
        for line in text.split("\n"):
            quote = markup and line.startswith(("&gt;", ">"))
            if quote:
                line = line.removeprefix("&gt;").removeprefix(">").lstrip()
            bullet = _BULLET.match(line)
            hang = self._width(Piece(bullet.group(1), style)) if bullet else 0
            lx = x + (14 if quote else 0)
            end = self.flow(canvas, self.markup.line(line, style, markup), lx, y, width - (lx - x), hang)
            if quote:
                canvas.ops.append(_rect(x, y + 2, x + 4, end - 2, "#dddddd"))
            y = end
        return y

    def flow(
        self, canvas: Canvas, pieces: Sequence[Piece], x: float, y: float, width: float, hang: float
    ) -> float:
        """Lay `pieces` out in lines of `width`, breaking between words (inside a word only when it is
        wider than a line); lines after the first start at `hang`. Returns the y below the last line."""
        size = max((p.style.size for p in pieces), default=15)
        line_height = round(size * 1.45)
        at, fresh, space = 0.0, True, None

        def newline() -> None:
            nonlocal y, at, fresh
            y, at, fresh = y + line_height, hang, True

        for word in _words(pieces):
            if word[0].emoji is None and word[0].text.isspace():
                space = None if fresh else word[0]
                continue
            gap = self._width(space) if space is not None else 0
            if not fresh and at + gap + sum(self._width(p) for p in word) > width:
                newline()
            elif space is not None:
                self._put(canvas, space, x + at, y, line_height)
                at += gap
            for piece in _split_long(word, width - hang, self._width):
                w = self._width(piece)
                if not fresh and at + w > width:
                    newline()
                self._put(canvas, piece, x + at, y, line_height)
                at, fresh = at + w, False
            space = None
        return y + line_height

    def _width(self, piece: Piece) -> float:
        if piece.emoji is not None:
            return self._emoji_width(piece)
        return self._font(piece.style).getlength(piece.text) + (
            1 if self.fonts.fake_bold(piece.style.face) else 0
        )

    def _font(self, style: Style) -> Font:
        return self.fonts.get(style.face, style.size - (1 if style.code else 0))

    def _put(self, canvas: Canvas, piece: Piece, x: float, y: float, line_height: int) -> None:
        if piece.emoji is not None:
            self._emoji(canvas, piece, x, y, line_height)
            return
        style, font, width = piece.style, self._font(piece.style), self._width(piece)
        top = y + (line_height - style.size * 1.2) / 2
        if style.highlight and piece.text.strip():
            canvas.ops.append(_rounded(x - 1, y + 1, x + width + 1, y + line_height - 2, 3, style.highlight))
        if style.code:
            canvas.ops.append(
                _rounded(x - 2, y + 2, x + width + 2, y + line_height - 2, 3, CODE_BG, "#e2e2e2")
            )
        text = "".join(ch if ch.isspace() or self.fonts.has(font, ch) else "?" for ch in piece.text)
        canvas.ops.append(_glyphs(x, top, text, font, style.color, self.fonts.fake_bold(style.face)))
        if style.strike:
            canvas.ops.append(_rect(x, y + line_height / 2, x + width, y + line_height / 2 + 1, style.color))

    # -- emoji -------------------------------------------------------------------------------------------
    def _look(self, piece: Piece) -> str:
        """How an emoji is drawn: "badge" (Slack's look-alike), "glyph" (the font's), "name" ([warning])."""
        code = piece.emoji or ""
        badge = _BADGES.get(code)
        if code == _IMAGE or (
            badge
            and (badge[1] is None or self.fonts.has(self._font(replace(piece.style, bold=True)), badge[1]))
        ):
            return "badge"
        char = EMOJI.get(code, piece.text).translate(_STRIP)
        return "glyph" if len(char) == 1 and self.fonts.has(self._font(piece.style), char) else "name"

    def _emoji_width(self, piece: Piece) -> float:
        look = self._look(piece)
        if look == "badge":
            return piece.style.size * 1.15 + 2
        return self._width(self._emoji_text(piece, look))

    def _emoji_text(self, piece: Piece, look: str) -> Piece:
        code = piece.emoji or ""
        if look == "glyph":
            return Piece(EMOJI.get(code, piece.text).translate(_STRIP), piece.style)
        return Piece(f"[{_EMOJI_NAMES.get(code, code.replace('_', ' '))}]", replace(piece.style, color=GREY))

    def _emoji(self, canvas: Canvas, piece: Piece, x: float, y: float, line_height: int) -> None:
        look = self._look(piece)
        if look != "badge":
            self._put(canvas, self._emoji_text(piece, look), x, y, line_height)
            return
        size = piece.style.size * 1.05
        top = y + (line_height - size) / 2
        box = (x + 1, top, x + 1 + size, top + size)
        if piece.emoji == _IMAGE:
            canvas.ops.append(_rounded(*box, 3, "#cccccc"))
            return
        background, glyph, color = _BADGES[piece.emoji or ""]
        if glyph is None:
            canvas.ops.append(_ellipse(box, background or GREY))
            return
        if background:
            canvas.ops.append(_rounded(*box, 3, background))
        scale = 0.9 if background else 1.05
        font = self._font(replace(piece.style, bold=True, size=round(piece.style.size * scale)))
        left = x + 1 + (size - font.getlength(glyph)) / 2
        canvas.ops.append(_glyphs(left, top - size * 0.08, glyph, font, color, False))

    # -- small parts -------------------------------------------------------------------------------------
    def _text(self, canvas: Canvas, x: float, y: float, text: str, style: Style) -> float:
        """One line of `text` with no wrapping; returns where it ends."""
        pieces = self.markup.line(text, style, markup=False)
        line_height = round(style.size * 1.45)
        for piece in pieces:
            self._put(canvas, piece, x, y - (line_height - style.size * 1.2) / 2, line_height)
            x += self._width(piece)
        return x

    def _avatar(self, canvas: Canvas, x: float, y: float, size: int, name: str) -> float:
        canvas.ops.append(_rounded(x, y, x + size, y + size, 6, AVATAR))
        initials = "".join(part[:1] for part in re.split(r"[-_ ]+", name)[:2]).upper() or "?"
        font = self.fonts.get("bold", size * 2 // 5)
        w = font.getlength(initials)
        canvas.ops.append(_glyphs(x + (size - w) / 2, y + size * 0.28, initials, font, "#ffffff", False))
        return x + size

    def _badge(self, canvas: Canvas, x: float, y: float, label: str) -> float:
        font = self.fonts.get("bold", 10)
        w = font.getlength(label) + 8
        canvas.ops.append(_rounded(x, y + 1, x + w, y + 16, 3, "#e8e8e8"))
        canvas.ops.append(_glyphs(x + 4, y + 3, label, font, GREY, self.fonts.fake_bold("bold")))
        return x + w

    def _button_width(self, label: str) -> float:
        return self._width(Piece(label, Style(size=14, bold=True))) + 28

    def _button(self, canvas: Canvas, x: float, y: float, label: str, element: Mapping[str, Any]) -> float:
        """A button (or a menu, with its ▾) at (x, y): primary green, danger red, others outlined."""
        width, height = self._button_width(label), 32
        fill, edge, color = {
            "primary": (PRIMARY, PRIMARY, "#ffffff"),
            "danger": (DANGER, DANGER, "#ffffff"),
        }.get(str(element.get("style")), (CARD, "#bbbbbb", TEXT))
        canvas.ops.append(_rounded(x, y, x + width, y + height, 5, fill, edge))
        self._text(canvas, x + 14, y + 8, label, Style(size=14, bold=True, color=color))
        return y + height


def _words(pieces: Sequence[Piece]) -> list[list[Piece]]:
    """Pieces cut at spaces into words (a word may span pieces: "*Triage*:" is one) and the spaces."""
    words: list[list[Piece]] = []
    joined = False
    for piece in pieces:
        parts = (
            [piece]
            if piece.emoji is not None
            else [replace(piece, text=t) for t in re.findall(r"\s+|\S+", piece.text)]
        )
        for part in parts:
            space = part.emoji is None and part.text.isspace()
            if space or not joined:
                words.append([part])
            else:
                words[-1].append(part)
            joined = not space
    return words


def _split_long(word: list[Piece], width: float, measure: Callable[[Piece], float]) -> list[Piece]:
    """A word wider than a whole line, cut into single characters so that it wraps anywhere."""
    if sum(measure(p) for p in word) <= width:
        return word
    return [q for p in word for q in ([p] if p.emoji is not None else [replace(p, text=c) for c in p.text])]


def _text_of(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, Mapping) else ""


def _is_mrkdwn(obj: Any) -> bool:
    return isinstance(obj, Mapping) and obj.get("type") == "mrkdwn"


def _control_label(element: Mapping[str, Any]) -> str:
    """What a button, menu or date picker shows: its text, initial option or placeholder."""
    kind = str(element.get("type", ""))
    if not kind or kind == "image":
        return ""
    if kind == "button":
        return _text_of(element.get("text"))
    if kind == "overflow":
        return "⋯"
    chosen = element.get("initial_option") or {}
    return f"{_text_of(chosen.get('text')) or _text_of(element.get('placeholder')) or 'Select'}  ▾"


def _rich_texts(node: Any) -> list[str]:
    if isinstance(node, Mapping):
        if isinstance(node.get("text"), str):
            return [node["text"]]
        return _rich_texts(node.get("elements", []))
    if isinstance(node, list):
        return [t for n in node for t in _rich_texts(n)]
    return []


def _clock(ts: str) -> str:
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%H:%M")
    except ValueError:
        return ""


def _card(x0: float, y0: float, x1: float, y1: float) -> Op:
    return _rounded(x0, y0, x1, y1, 10, CARD, LINE)


def _rect(x0: float, y0: float, x1: float, y1: float, fill: str) -> Op:
    return lambda draw: draw.rectangle((x0, y0, x1, y1), fill=fill)


def _rounded(
    x0: float, y0: float, x1: float, y1: float, radius: float, fill: str, edge: str | None = None
) -> Op:
    return lambda draw: draw.rounded_rectangle((x0, y0, x1, y1), radius, fill=fill, outline=edge)


def _ellipse(box: tuple[float, float, float, float], fill: str) -> Op:
    return lambda draw: draw.ellipse(box, fill=fill)


def _glyphs(x: float, y: float, text: str, font: Font, color: str, fake_bold: bool) -> Op:
    def op(draw: Draw) -> None:
        draw.text((x, y), text, font=font, fill=color)
        if fake_bold:
            draw.text((x + 1, y), text, font=font, fill=color)

    return op


# -- the scenario ----------------------------------------------------------------------------------------


def capture(world: SandboxWorld) -> dict[str, Image.Image]:
    """In a started sandbox: a failing pipeline step Level 1 cannot fix goes to the data coordinator, an
    OOM-killed training job is fixed at Level 1, and the coordinator opens the bot's Home. Returns the
    pictures by file stem: the L2 message, the fixed Level 1 report and the coordinator's Home."""
    assert world.driver is not None
    world.post_alerts(alertmanager_payload([PIPELINE_ALERT, OOM_ALERT]))
    world.settle()
    assert world.driver.app_home_opened(COORDINATOR).status == 200
    world.settle()
    users, groups = names(world)
    render = Renderer(users, groups)
    [l2] = world.slack.messages("#data-coordinator")
    root = next(m for m in world.slack.messages("#ml-alerts") if "train-churn-model" in m["text"])
    [l1] = world.slack.thread("#ml-alerts", root["ts"])
    return {
        "l2-message": render.message(l2),
        "l1-report": render.message(l1),
        "app-home": render.home(world.slack.home(COORDINATOR)),
    }


def save(image: Image.Image, path: Path) -> int:
    """`image` as a PNG at `path`, down to a 256-colour palette when it would pass MAX_BYTES; its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "PNG", optimize=True)
    if path.stat().st_size > MAX_BYTES:
        image.quantize(256, dither=Image.Dither.NONE).save(path, "PNG", optimize=True)
    return path.stat().st_size


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/screenshots.py", description="Draw the README's pictures of the bot in Slack."
    )
    parser.add_argument("directory", nargs="?", default="docs/images", type=Path)
    args = parser.parse_args(argv)
    with SandboxMlflowAPI() as mlflow, SandboxWorld(mlflow_url=mlflow.url) as world:
        pictures = capture(world)
    for stem, image in pictures.items():
        path = args.directory / f"{stem}.png"
        size = save(image, path)
        print(f"{path}  {image.width}×{image.height}  {size / 1000:.0f} KB")
    return 0
