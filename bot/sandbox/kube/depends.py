"""When a DAG task may run: its `dependencies` list or its `depends` expression (`A && (B.Failed ||
!C.Succeeded)`), read against the phases of the tasks it names, as Argo's enhanced depends logic does."""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"\s*(?:(?P<op>&&|\|\||[!()])|(?P<term>[A-Za-z0-9_-]+(?:\.[A-Za-z]+)?))")
# What a bare task name means, and each result a task can be asked about.
_BARE = ("Succeeded", "Skipped", "Daemoned")
_RESULTS = {
    "Succeeded": ("Succeeded",),
    "Failed": ("Failed",),
    "Errored": ("Error",),
    "Skipped": ("Skipped",),
    "Omitted": ("Omitted",),
    "Daemoned": (),
    "AnySucceeded": ("Succeeded",),
    "AllFailed": ("Failed", "Error"),
}


def upstream(task: dict[str, Any]) -> list[str]:
    """The tasks `task` waits for, in the order it names them."""
    if task.get("dependencies") and task.get("depends"):
        raise ValueError(f"task {task.get('name')!r}: cannot use both 'depends' and 'dependencies'")
    names = list(task.get("dependencies") or [])
    for match in _TOKEN.finditer(task.get("depends") or ""):
        name = (match["term"] or "").split(".")[0]
        if name and name not in names:
            names.append(name)
    return names


def satisfied(task: dict[str, Any], phases: dict[str, str]) -> bool:
    """Whether `task` runs, given the phase of each task it waits for."""
    expression = task.get("depends") or " && ".join(task.get("dependencies") or [])
    if not expression.strip():
        return True
    tokens = _tokens(expression)
    value, rest = _or(tokens, phases)
    if rest:
        raise ValueError(f"depends {expression!r}: unexpected {rest[0]!r}")
    return value


def _tokens(expression: str) -> list[str]:
    tokens, at = [], 0
    while at < len(expression.rstrip()):
        match = _TOKEN.match(expression, at)
        if match is None:
            raise ValueError(f"depends {expression!r}: cannot read {expression[at:].strip()!r}")
        tokens.append(match["op"] or match["term"])
        at = match.end()
    return tokens


def _or(tokens: list[str], phases: dict[str, str]) -> tuple[bool, list[str]]:
    value, tokens = _and(tokens, phases)
    while tokens[:1] == ["||"]:
        right, tokens = _and(tokens[1:], phases)
        value = value or right
    return value, tokens


def _and(tokens: list[str], phases: dict[str, str]) -> tuple[bool, list[str]]:
    value, tokens = _not(tokens, phases)
    while tokens[:1] == ["&&"]:
        right, tokens = _not(tokens[1:], phases)
        value = value and right
    return value, tokens


def _not(tokens: list[str], phases: dict[str, str]) -> tuple[bool, list[str]]:
    if not tokens:
        raise ValueError("depends: the expression ends too early")
    head, rest = tokens[0], tokens[1:]
    if head == "!":
        value, rest = _not(rest, phases)
        return not value, rest
    if head == "(":
        value, rest = _or(rest, phases)
        if rest[:1] != [")"]:
            raise ValueError("depends: a '(' is not closed")
        return value, rest[1:]
    if head in ("&&", "||", ")"):
        raise ValueError(f"depends: unexpected {head!r}")
    name, _, result = head.partition(".")
    if result and result not in _RESULTS:
        raise ValueError(f"depends: unknown result {result!r} of task {name!r}")
    return phases.get(name) in (_RESULTS[result] if result else _BARE), rest
