"""A delivery is parsed without walking every string when its text cannot hold anything `visible_json`
writes out; the result must be what the walk gives, for any JSON and either way it is encoded."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.untrusted import needs_cleaning, visible_json
from bot.integrations.alerts.payload import load_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=400, deadline=None)
@given(json_values, st.booleans())
def test_parsed_delivery_equals_the_cleaned_one_for_any_json(value: Any, ascii_only: bool) -> None:
    body = _utf8(json.dumps(value, ensure_ascii=ascii_only))
    assert load_json(body) == visible_json(json.loads(body))


def test_every_way_json_spells_a_control_character_or_surrogate_is_caught() -> None:
    spelled = [
        '"\\u0000"',
        '"\\u001F"',
        '"\\b"',
        '"\\f"',
        '"\\u007f"',
        '"\\u0085"',
        '"\\uD800"',
        '"\\udfff"',
        '"\x7f"',
        '"\x85"',
    ]
    for text in spelled:
        assert needs_cleaning(text), text
        assert load_json(_utf8(text)) == visible_json(json.loads(text))
    assert load_json(b'{"k\\u0000": "a\\u0000b"}') == {"k\\x00": "a\\x00b"}


def test_ordinary_alert_text_takes_the_fast_path() -> None:
    text = json.dumps({"labels": {"alertname": "KubeJobFailed", "note": "tab\there\nnew line é ✓"}})
    assert not needs_cleaning(text)
    assert load_json(text.encode()) == json.loads(text)
