"""What a language model writes is shown as plain text: no mention, broadcast or web link survives, a
storage path keeps its detail, and secrets are redacted."""

from __future__ import annotations

import pytest

from bot.core.untrusted import from_model


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("page <!channel> now", "page now"),
        ("ask <@U0LEAD> and <#C0ALERTS>", "ask and"),
        ("see <https://evil.example/x|the runbook>", "see the runbook"),
        ("@here @everyone look", "here everyone look"),
        ("open https://evil.example/login or www.evil.example", "open [link removed] or [link removed]"),
        (
            "input s3://ml-data/features/part-0.parquet is missing",
            "input s3://ml-data/features/part-0.parquet is missing",
        ),
        ("token xoxb-123456789012-abcdefghijkl leaked", "token [REDACTED] leaked"),
        ("two\nlines\tand <b>tags</b>", "two lines and btags/b"),
    ],
)
def test_model_text_is_one_plain_line(written: str, shown: str) -> None:
    assert from_model(written) == shown
