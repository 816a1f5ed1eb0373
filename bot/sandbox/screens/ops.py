"""Drawing operations and the word layout the renderer uses."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bot.sandbox.screens.mrkdwn import Piece
from bot.sandbox.screens.style import CARD, LINE, Draw, Font, Op


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
