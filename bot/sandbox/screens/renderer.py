"""Block Kit blocks drawn on a card the way the Slack client lays them out."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from PIL import Image, ImageDraw

from bot.sandbox.screens.mrkdwn import _BADGES, _BULLET, _EMOJI_NAMES, _IMAGE, _STRIP, Mrkdwn, Piece, Style
from bot.sandbox.screens.ops import (
    _card,
    _clock,
    _control_label,
    _ellipse,
    _glyphs,
    _is_mrkdwn,
    _rect,
    _rich_texts,
    _rounded,
    _split_long,
    _text_of,
    _words,
)
from bot.sandbox.screens.style import (
    AVATAR,
    BACKDROP,
    CARD,
    CODE_BG,
    DANGER,
    GREY,
    HOME_WIDTH,
    LINE,
    MESSAGE_WIDTH,
    PRIMARY,
    TEXT,
    Font,
    Fonts,
    Op,
)
from bot.sandbox.slack_text import EMOJI


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
