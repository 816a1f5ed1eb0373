"""app.yaml's `llm` section: which Claude model drafts and investigates, and the bounds it works within."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from bot.config.durations import Duration, between
from bot.config.section import Section
from bot.config.values import Count, int_range, matching


class LlmSettings(Section):
    # a model id as the Messages API takes it (claude-haiku-5-5 is the current Haiku)
    model: Annotated[
        str, matching(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}", "must be a model id like 'claude-haiku-5-5'")
    ] = "claude-haiku-5-5"
    max_tokens: Annotated[Count, int_range(256, 32_000)] = 2_048  # output tokens per API call
    timeout: Annotated[Duration, between(timedelta(seconds=1), timedelta(minutes=10))] = timedelta(seconds=30)
    max_retries: Annotated[Count, int_range(0, 5)] = 2  # of a 429, 529, other 5xx or a dropped connection
    steps: Annotated[Count, int_range(1, 20)] = (
        6  # API calls one request may make: tool rounds and the answer
    )
    request_tokens: Annotated[Count, int_range(1_000, 1_000_000)] = 60_000  # tokens one request may use
    request_time: Annotated[Duration, between(timedelta(seconds=1), timedelta(minutes=30))] = timedelta(
        minutes=1
    )
    daily_token_budget: Annotated[Count, int_range(0, 1_000_000_000)] = 2_000_000  # 0: never call Claude
