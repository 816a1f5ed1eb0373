"""Slack's Web API conventions: `ok:false` failures, form booleans, timestamps, cursors, JSON arguments
sent inside a form, and the Block Kit limits every method checks."""

from __future__ import annotations

import base64
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.sandbox.slack.identity import JSON

MAX_SECTION_TEXT = 3000
# Arguments that form-encoded callers send as JSON strings, and the error Slack gives when they are not JSON.
_JSON_ARGS = {
    "blocks": "invalid_blocks",
    "attachments": "invalid_attachments",
    "view": "invalid_arguments",
    "metadata": "invalid_metadata_format",
}


class Failure(LookupError):
    """An `ok:false` answer; public helpers let it out as a LookupError (unknown channel, thread, …)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def flag(value: Any) -> bool:
    """Slack's booleans: JSON true, or "1"/"true" in a form."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def ts_key(ts: Any, error: str) -> Decimal:
    """A message timestamp as a number that sorts; `error` if it is not one."""
    try:
        return Decimal(str(ts))
    except InvalidOperation as exc:
        raise Failure(error) from exc


def page(items: list[JSON], args: JSON, default_limit: int = 100) -> tuple[list[JSON], str]:
    """One page of `items` for the `cursor` and `limit` arguments, and the cursor of the next page."""
    cursor = args.get("cursor") or ""
    try:
        offset = int(base64.b64decode(cursor).decode().removeprefix("offset:")) if cursor else 0
        limit = int(args.get("limit") or default_limit)
    except ValueError as exc:
        raise Failure("invalid_cursor" if cursor else "invalid_limit") from exc
    limit = max(1, min(limit, 999))
    chunk = items[offset : offset + limit]
    more = offset + limit < len(items)
    next_cursor = base64.b64encode(f"offset:{offset + limit}".encode()).decode() if more else ""
    return chunk, next_cursor


def decode_json_args(args: JSON) -> None:
    """Parse, in place, the arguments a form carries as JSON strings (blocks, attachments, view, metadata)."""
    for key, error in _JSON_ARGS.items():
        if isinstance(args.get(key), str):
            try:
                args[key] = json.loads(args[key]) if args[key] else None
            except ValueError as exc:
                raise Failure(error) from exc


def valid_blocks(blocks: Any, limit: int, error: str) -> list[JSON] | None:
    """`blocks` when it is a list of at most `limit` typed blocks with sections of legal length."""
    if blocks is None:
        return None
    if not isinstance(blocks, list) or len(blocks) > limit:
        raise Failure(error)
    for block in blocks:
        if not isinstance(block, dict) or not block.get("type"):
            raise Failure(error)
        text = block.get("text")
        if isinstance(text, dict) and len(str(text.get("text", ""))) > MAX_SECTION_TEXT:
            raise Failure(error)
    return blocks
