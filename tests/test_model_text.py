"""What a language model writes is shown as plain text: no mention, broadcast or web link survives, a
storage path keeps its detail, and secrets are redacted."""

from __future__ import annotations

import pytest

from bot.core.untrusted import closed_code, from_model
from bot.integrations.slack.blocks import rationale_modal
from bot.llm.cause import Investigation


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("page <!channel> now", "page now"),
        ("ask <@U0LEAD> and <#C0ALERTS>", "ask and"),
        ("see <https://evil.example/x|the runbook>", "see the runbook"),
        ("@here @everyone look", "here everyone look"),
        ("open https://evil.example/login or www.evil.example", "open [link removed] or [link removed]"),
        ("input s3://ml-data/part-0.parquet is missing", "input `s3://ml-data/part-0.parquet` is missing"),
        (
            "ask admin@evil.example at evil.example/login.",
            "ask `admin@evil.example` at `evil.example/login`.",
        ),
        ("needs numpy>=1.26,<3 and p95 > 5s", "needs numpy>=1.26,<3 and p95 > 5s"),
        ("a `fence` of its own", "a 'fence' of its own"),
        ("token xoxb-123456789012-abcdefghijkl leaked", "token [REDACTED] leaked"),
        # a mention or broadcast assembled from pieces is taken out too
        ("Roll back <!chan<http://a|nel>> now", "Roll back now"),
        ("ask <@UABC<https://x|DEF>>", "ask"),
        ("@@here and @@@channel", "here and channel"),
        ("two\nlines\tand <b>tags</b>", "two lines and <b>tags</b>"),
    ],
)
def test_model_text_is_one_plain_line(written: str, shown: str) -> None:
    assert from_model(written) == shown


def test_the_rationale_modal_shows_the_chosen_label_as_text() -> None:
    view = rationale_modal({"incident_id": 3, "decision_id": 4}, "Pause <!channel> <https://x|now>")
    [intro] = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]
    assert intro.startswith("You chose *Pause &lt;!channel&gt; &lt;https://x|now&gt;*")


@pytest.mark.parametrize(
    ("text", "limit", "shown"),
    [
        ("at `evil.example/l…", 40, "at `evil.example/l…`"),
        ("x" * 10 + " `evil.example/login/abc", 20, "x" * 10 + " `evil.ex`"),
        ("no code here", 40, "no code here"),
        ("`a` and `b`", 40, "`a` and `b`"),
    ],
)
def test_a_cut_never_leaves_a_code_span_open(text: str, limit: int, shown: str) -> None:
    assert closed_code(text, limit) == shown
    assert len(closed_code(text, limit)) <= max(limit, len(text) + 1)


def test_an_investigation_stored_in_another_shape_is_read_as_none() -> None:
    assert Investigation.from_json({"drafted_by": "x", "cause": {"facts": [{"finding_ids": ["a"]}]}}) is None
    assert Investigation.from_json({"drafted_by": "x", "cause": "not an object"}) is None
    read = Investigation.from_json({"drafted_by": "m", "cause": {"inconclusive": False, "hypothesis": "oom"}})
    assert read is not None and read.cause.hypothesis == "oom"
