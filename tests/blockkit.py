"""Slack's documented Block Kit limits for every block, element and text object the bot sends, as a checker
that lists each problem it finds (as Slack documents them for each block and element type).

Slack refuses a message or view that breaks one of these (invalid_blocks, invalid_arguments) or cuts it
without saying so; a test that runs `problems` on what the bot sends finds that before Slack does."""

from __future__ import annotations

import json
import re
from typing import Any

MESSAGE_BLOCKS, VIEW_BLOCKS = 50, 100
MESSAGE_TEXT = 40_000  # chat.postMessage truncates `text` beyond this
SHORT_TEXT = 4_000  # what Slack advises a message's `text` to stay under
VIEW_BYTES = 250_000  # views.open refuses a larger view (view_too_large)
TEXT_OBJECT = 3_000  # any text object
SECTION_TEXT, SECTION_FIELDS, FIELD_TEXT = 3_000, 10, 2_000
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BUTTON_TEXT, BUTTON_VALUE, BUTTON_URL = 75, 2_000, 3_000
ACTION_ID = BLOCK_ID = CALLBACK_ID = 255
CONFIRM = {"title": 100, "text": 300, "confirm": 30, "deny": 30}
VIEW_TITLE = VIEW_BUTTON = 24
PRIVATE_METADATA = 3_000
INPUT_LABEL = INPUT_HINT = 2_000
INPUT_MAX_LENGTH = 3_000
OPTIONS, OPTION_TEXT, OPTION_VALUE = 100, 75, 150
STYLES = {"primary", "danger"}
# what may follow "&" in mrkdwn (the three escapes) and what may stand in <…> (mentions, links)
_AMP = re.compile(r"&(?!amp;|lt;|gt;)")
_ANGLED = re.compile(r"<([^<>]*)>")
_LIVE = re.compile(r"^(?:@[UW][A-Z0-9]+|!subteam\^S[A-Z0-9]+|#C[A-Z0-9]+|https?://[^\s|<>]+\|[^<>]+)$")


def problems(payload: dict[str, Any], surface: str = "message") -> list[str]:
    """Every limit `payload` breaks: a chat.postMessage/chat.update body (surface "message") or a modal."""
    found: list[str] = []
    blocks = payload.get("blocks") or []
    if surface == "message":
        text = str(payload.get("text") or "")
        if not text.strip():
            found.append("message: no text fallback for notifications")
        if len(text) > MESSAGE_TEXT:
            found.append(f"message: text {len(text)} > {MESSAGE_TEXT}")
        _most(found, "message blocks", blocks, MESSAGE_BLOCKS)
    else:
        found += _modal(payload)
        _most(found, "modal blocks", blocks, VIEW_BLOCKS)
    ids: set[str] = set()
    for i, block in enumerate(blocks):
        found += [f"blocks[{i}] {p}" for p in _block(block, ids)]
    return found


def _modal(view: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if view.get("type") != "modal":
        found.append("modal: type is not modal")
    found += _text(view.get("title"), "title", VIEW_TITLE, plain=True)
    for key in ("close", "submit"):
        if view.get(key) is not None:
            found += _text(view[key], key, VIEW_BUTTON, plain=True)
    if any(b.get("type") == "input" for b in view.get("blocks") or []) and not view.get("submit"):
        found.append("modal: input blocks need a submit button")
    _longest(found, "private_metadata", view.get("private_metadata"), PRIVATE_METADATA)
    _longest(found, "callback_id", view.get("callback_id"), CALLBACK_ID)
    size = len(json.dumps(view, ensure_ascii=False).encode())
    if size > VIEW_BYTES:
        found.append(f"modal: {size} bytes > {VIEW_BYTES}")
    return found


def _block(block: dict[str, Any], ids: set[str]) -> list[str]:
    kind = block.get("type")
    found: list[str] = []
    _longest(found, "block_id", block.get("block_id"), BLOCK_ID)
    if kind == "section":
        if block.get("text") is None and not block.get("fields"):
            found.append("section: neither text nor fields")
        if block.get("text") is not None:
            found += _text(block["text"], "section text", SECTION_TEXT)
        fields = block.get("fields") or []
        _most(found, "section fields", fields, SECTION_FIELDS)
        for field in fields:
            found += _text(field, "section field", FIELD_TEXT)
        if block.get("accessory"):
            found += _element(block["accessory"], ids)
    elif kind == "header":
        found += _text(block.get("text"), "header", HEADER_TEXT, plain=True)
    elif kind == "context":
        elements = block.get("elements") or []
        _most(found, "context elements", elements, CONTEXT_ELEMENTS, least=1)
        for element in elements:
            found += _text(element, "context element", TEXT_OBJECT)
    elif kind == "actions":
        elements = block.get("elements") or []
        _most(found, "actions elements", elements, ACTIONS_ELEMENTS, least=1)
        for element in elements:
            found += _element(element, ids)
    elif kind == "input":
        found += _text(block.get("label"), "input label", INPUT_LABEL, plain=True)
        if block.get("hint") is not None:
            found += _text(block["hint"], "input hint", INPUT_HINT, plain=True)
        found += _element(block.get("element") or {}, ids)
    elif kind != "divider":
        found.append(f"a {kind!r} block: not one the bot is known to send")
    return found


def _element(element: dict[str, Any], ids: set[str]) -> list[str]:
    kind = element.get("type")
    found: list[str] = []
    action = element.get("action_id")
    _longest(found, "action_id", action, ACTION_ID)
    if action is not None:
        if action in ids:
            found.append(f"action_id {action!r} is used twice")
        ids.add(action)
    if kind == "button":
        found += _text(element.get("text"), "button text", BUTTON_TEXT, plain=True)
        _longest(found, "button value", element.get("value"), BUTTON_VALUE)
        _longest(found, "button url", element.get("url"), BUTTON_URL)
        if element.get("style") is not None and element["style"] not in STYLES:
            found.append(f"button style {element['style']!r}")
        confirm = element.get("confirm")
        for key, most in CONFIRM.items() if confirm else ():
            found += _text(confirm.get(key), f"confirm {key}", most, plain=key != "text")
    elif kind == "plain_text_input":
        max_length = element.get("max_length")
        if max_length is not None and not 1 <= max_length <= INPUT_MAX_LENGTH:
            found.append(f"plain_text_input max_length {max_length}")
        _longest(found, "initial_value", element.get("initial_value"), INPUT_MAX_LENGTH)
    elif kind == "static_select":
        options = element.get("options") or []
        _most(found, "select options", options, OPTIONS, least=1)
        for option in options:
            found += _text(option.get("text"), "option text", OPTION_TEXT, plain=True)
            _longest(found, "option value", option.get("value"), OPTION_VALUE)
    else:
        found.append(f"a {kind!r} element: not one the bot is known to send")
    return found


def _text(obj: Any, what: str, most: int, *, plain: bool = False) -> list[str]:
    """A text object: the right type, not empty, not too long, and (mrkdwn) no broken escape or link."""
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"{what}: not a text object"]
    if plain and obj["type"] != "plain_text":
        return [f"{what}: must be plain_text"]
    text = str(obj.get("text", ""))
    found = []
    if not text.strip():
        found.append(f"{what}: empty")
    if len(text) > min(most, TEXT_OBJECT):
        found.append(f"{what}: {len(text)} characters > {min(most, TEXT_OBJECT)}")
    if obj["type"] == "mrkdwn":
        found += [f"{what}: {p}" for p in mrkdwn_problems(text)]
    return found


def mrkdwn_problems(text: str) -> list[str]:
    """What would show wrongly in mrkdwn: a bare &, a <…> neither a mention nor a link, an open fence."""
    found = []
    if _AMP.search(text):
        found.append("a bare & (not &amp; &lt; &gt;)")
    for inner in _ANGLED.findall(text):
        if not _LIVE.match(inner):
            found.append(f"<{inner[:40]}> is neither a mention nor a link")
    if text.count("```") % 2:
        found.append("an unclosed ``` fence")
    return found


def _most(found: list[str], what: str, items: list[Any], most: int, least: int = 0) -> None:
    if not least <= len(items) <= most:
        found.append(f"{what}: {len(items)} (allowed {least}–{most})")


def _longest(found: list[str], what: str, value: Any, most: int) -> None:
    if value is not None and len(str(value)) > most:
        found.append(f"{what}: {len(str(value))} characters > {most}")
