"""Slack's colours, the fonts to draw with, and the one-glyph checks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from PIL import ImageDraw, ImageFont

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
