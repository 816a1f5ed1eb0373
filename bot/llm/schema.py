"""The part of JSON Schema the bot writes for tool inputs and answers, checked without a library.

`problems(value, schema)` lists where a value breaks its schema ("$.confidence: must be one of ...");
`unsupported(schema)` lists keywords this checker does not know, so a schema never claims a rule that is
silently not checked.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
_CHECKED = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
}
_NOTES = {"description", "title", "default", "examples", "$comment"}


def unsupported(schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Keywords in `schema` (at any depth) that `problems` would not check."""
    found = [f"{path}: {key}" for key in schema if key not in _CHECKED | _NOTES]
    for name, sub in (schema.get("properties") or {}).items():
        found += unsupported(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), Mapping):
        found += unsupported(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        found.append(f"{path}: additionalProperties as a schema")
    return found


def _is(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind != "boolean":
        return False  # JSON's true is not the number 1
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(kind, ()))


def problems(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Where `value` breaks `schema`, one line each; empty when it satisfies it."""
    kinds = schema.get("type")
    if kinds is not None:
        allowed = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is(value, k) for k in allowed):
            return [f"{path}: expected {' or '.join(allowed)}, got {type(value).__name__}"]
    found: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: must be one of {', '.join(map(repr, schema['enum']))}")
    if isinstance(value, dict):
        found += _object_problems(value, schema, path)
    elif isinstance(value, list):
        found += _size(len(value), schema, "minItems", "maxItems", "items", path)
        if isinstance(schema.get("items"), Mapping):
            for i, item in enumerate(value):
                found += problems(item, schema["items"], f"{path}[{i}]")
    elif isinstance(value, str):
        found += _size(len(value), schema, "minLength", "maxLength", "characters", path)
        if "pattern" in schema and not _compiled(schema["pattern"]).search(value):
            found.append(f"{path}: must match {schema['pattern']!r}")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{path}: must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{path}: must be at most {schema['maximum']}")
    return found


def _object_problems(value: dict[str, Any], schema: Mapping[str, Any], path: str) -> list[str]:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    found = [f"{path}.{name}: required" for name in schema.get("required", ()) if name not in value]
    for name, item in value.items():
        if name in properties:
            found += problems(item, properties[name], f"{path}.{name}")
        elif schema.get("additionalProperties") is False:
            found.append(f"{path}.{name}: not allowed")
    return found


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    """A schema pattern as JSON Schema means it: a final `$` ends the string (in Python it also matches
    before a final newline, so "ml-pipelines\\n" would pass `^[a-z-]+$`)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _size(size: int, schema: Mapping[str, Any], low: str, high: str, unit: str, path: str) -> list[str]:
    if low in schema and size < schema[low]:
        return [f"{path}: needs at least {schema[low]} {unit}"]
    if high in schema and size > schema[high]:
        return [f"{path}: takes at most {schema[high]} {unit}"]
    return []
