"""Hypothesis strategies for what an attacker, a buggy sender or a hostile alert can put on the wire."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

# Pieces that have broken parsers, databases and Slack messages before.
NASTY = [
    "\x00",
    "\ud800",  # a lone surrogate: not encodable as UTF-8
    "\udfff",
    "\u202e",  # right-to-left override
    "\u200b",
    "\ufeff",
    "```",
    "<!channel>",
    "<!here>",
    "<@U123ABC>",
    "<!subteam^S123>",
    "@here",
    "&lt;",
    "%00",
    "%ff",
    "\r\n",
    "\n",
    "\t",
    "'; DROP TABLE incidents; --",
    "${jndi:ldap://x}",
    "{{7*7}}",
    "9" * 30,
    "-1",
    "0",
    "1e400",
    "²",
    "١٢٣",
    "INC-",
    "INC-1",
    "1:L2",
    "1:L4",
    ":",
    "L2",
    "null",
    "[]",
    "{}",
    " " * 5,
    "x" * 3100,
    # secrets a sender should never have put there, which the bot must not keep or repeat
    "xoxb-1234567890-abcdefABCDEF",
    "postgres://u:hunter2@db/x",
    "AKIAABCDEFGHIJKLMNOP",
    "password=hunter2",
]

any_text = st.text(st.characters(exclude_categories=()), max_size=40)


def nasty_text(max_pieces: int = 5) -> st.SearchStrategy[str]:
    """Short strings mixing arbitrary code points (surrogates and controls included) with known trouble."""
    piece = st.one_of(st.sampled_from(NASTY), any_text)
    return st.lists(piece, max_size=max_pieces).map("".join)


# Integers far outside any column's range, floats JSON cannot carry, and everyday values.
numbers = st.one_of(
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 10**30, 10**300, -(10**300)]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, nasty_text())


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(nasty_text(2), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def to_json(value: Any) -> bytes:
    """JSON as Python writes it: NaN and Infinity included, lone surrogates as \\uXXXX escapes."""
    return json.dumps(value).encode()


def deep_nesting(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# Bodies that are not JSON, or JSON that no decoder should need to recurse into.
odd_bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"\x00" * 16,
            b"\xff\xfe\xfd",
            b'{"title": "\xc3\x28"}',
            b'{"title": "a\x00b"}',
            b'"\\ud800"',
            b"[" * 100_000 + b"]" * 100_000,
            b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
            b"1" * 5000,
            b"1e99999",
            b"-" + b"9" * 4400,
            b"NaN",
            b"{" * 10,
        ]
    ),
    st.integers(min_value=1000, max_value=120_000).map(deep_nesting),
)

label_dicts = st.dictionaries(nasty_text(2), nasty_text(), max_size=4)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Any], max_mutations: int = 3) -> Any:
    """A value of `base` with a few of its leaves or branches replaced by anything, or deleted."""
    value = copy.deepcopy(draw(base))
    for _ in range(draw(st.integers(0, max_mutations))):
        paths = list(_paths(value))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _resolve(value, path[:-1]), path[-1]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[key]
        else:
            parent[key] = draw(json_values(6))
    return value


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_paths(v, (*prefix, k)))
    return out


def _resolve(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


# ---- well-formed shapes with hostile contents ---------------------------------------------------------


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` about four times in five, else `other`: most examples get past the first check."""
    return st.integers(0, 4).flatmap(lambda n: other if n == 0 else valid)


# Well-formed values for the fields a parser checks first: the hostile part is the free text in them
# (and `mutated` breaks the shape).
timestamps = st.sampled_from(
    ["2026-11-26T09:00:00Z", "0001-01-01T00:00:00Z", "2026-11-26T09:00:00+14:00", "9999-12-31T23:59:59Z"]
)
statuses = st.sampled_from(["firing", "resolved"])


@st.composite
def alertmanager_alerts(draw: st.DrawFn) -> dict[str, Any]:
    labels = {"alertname": draw(nasty_text(3)), **draw(label_dicts)}
    alert: dict[str, Any] = {
        "status": draw(statuses),
        "labels": labels,
        "annotations": draw(label_dicts),
        "startsAt": draw(timestamps),
        "endsAt": draw(st.one_of(st.just("0001-01-01T00:00:00Z"), nasty_text(2))),
        "generatorURL": draw(nasty_text(2)),
    }
    if draw(st.booleans()):
        alert["fingerprint"] = draw(nasty_text(2))
    return alert


@st.composite
def alertmanager_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Webhook v4 deliveries: the documented shape, with anything inside it."""
    alerts = draw(st.lists(alertmanager_alerts(), min_size=1, max_size=3))
    return {
        "version": "4",
        "groupKey": draw(nasty_text(2)),
        "truncatedAlerts": draw(mostly(st.integers(0, 5), numbers)),
        "status": draw(statuses),
        "receiver": draw(nasty_text(1)),
        "groupLabels": draw(label_dicts),
        "commonLabels": draw(label_dicts),
        "commonAnnotations": draw(label_dicts),
        "externalURL": draw(nasty_text(1)),
        "alerts": alerts,
    }


@st.composite
def generic_alerts(draw: st.DrawFn) -> dict[str, Any]:
    alert: dict[str, Any] = {"title": draw(nasty_text())}
    for key, strategy in (
        ("status", statuses),
        ("fingerprint", nasty_text(2)),
        ("severity", nasty_text(1)),
        ("text", nasty_text()),
        ("labels", label_dicts),
        ("annotations", label_dicts),
    ):
        if draw(st.booleans()):
            alert[key] = draw(strategy)
    return alert


generic_bodies = st.one_of(
    generic_alerts(), st.fixed_dictionaries({"alerts": st.lists(generic_alerts(), max_size=3)})
)


@st.composite
def mlflow_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """MLflow registry webhook deliveries (model_version / model_version_tag events)."""
    data: dict[str, Any] = {"name": draw(nasty_text(2)), "version": draw(st.one_of(nasty_text(1), numbers))}
    if draw(st.booleans()):
        data |= {"key": draw(nasty_text(1)), "value": draw(st.one_of(st.just("failed"), nasty_text(1)))}
    else:
        data["status"] = draw(st.one_of(st.sampled_from(["FAILED_REGISTRATION", "READY"]), nasty_text(1)))
    return {
        "entity": draw(st.one_of(st.sampled_from(["model_version", "model_version_tag"]), nasty_text(1))),
        "action": draw(st.one_of(st.sampled_from(["created", "set", "updated"]), nasty_text(1))),
        "timestamp": draw(timestamps),
        "data": data,
    }
