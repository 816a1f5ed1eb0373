"""How the server reads a write and a query: merge patches and label or field selectors."""

from __future__ import annotations

import copy
from typing import Any

from bot.sandbox.kube.errors import ApiError

PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


def merge(target: Any, patch: Any, strategic: bool) -> Any:
    """RFC 7386 merge; a strategic merge also merges lists of named objects by name."""
    if isinstance(patch, list) and strategic and isinstance(target, list):
        merged = [copy.deepcopy(item) for item in target]
        for item in patch:
            at = next(
                (
                    i
                    for i, t in enumerate(merged)
                    if isinstance(item, dict) and isinstance(t, dict) and t.get("name") == item.get("name")
                ),
                None,
            )
            if at is None:
                merged.append(item)
            else:
                merged[at] = merge(merged[at], item, strategic)
        return merged
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value, strategic)
    return result


def lookup(obj: Any, dotted: str) -> Any:
    """The value at a field path such as `status.phase`, or None."""
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def selector(raw: str | None, param: str) -> list[tuple[str, str]]:
    """The `key=value` (or `key==value`) terms of a selector; 400 for any other kind of term."""
    pairs = []
    for term in filter(None, (raw or "").split(",")):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if not sep or "!" in key:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {param} {term!r}")
        pairs.append((key.strip(), value.strip()))
    return pairs


def matches(obj: dict[str, Any], labels: list[tuple[str, str]], fields: list[tuple[str, str]]) -> bool:
    """Whether `obj` has every label and every field value asked for."""
    return all(obj["metadata"].get("labels", {}).get(key) == value for key, value in labels) and all(
        str(lookup(obj, key)) == value for key, value in fields
    )
