"""What Claude costs, kept in the database: each request's tokens are recorded against its incident, and
the daily token budget is one for every process on the database, surviving a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from bot.config import AppConfig, Env, LlmSettings
from bot.core.clock import FakeClock
from bot.llm import ANSWER_TOOL, Answer, Fallback, FallbackReason, Request, language_model
from bot.metrics import Metrics
from bot.services.assistant import Assistant
from bot.services.usage import tokens_of, tokens_since
from bot.store.db import make_engine, migrate
from tests.anthropic_server import AnthropicServer, message, tool_use, usage

KEY = "sk-ant-usage-key"
SCHEMA = {
    "type": "object",
    "properties": {"hypothesis": {"type": "string"}},
    "required": ["hypothesis"],
    "additionalProperties": False,
}
ASK = Request("investigate", "Cite your findings.", "train-7 failed", SCHEMA)


@pytest.fixture
def server() -> Iterator[AnthropicServer]:
    with AnthropicServer(KEY) as s:
        yield s


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    migrate(engine)
    return engine


def process(server: AnthropicServer, engine: Engine, clock: FakeClock, **settings: Any) -> Assistant:
    """One bot process's assistant: its own client and in-memory count, the shared database."""
    env = Env.from_environ({"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.url})
    metrics = Metrics()
    llm = language_model(
        LlmSettings(**settings), env, metrics, clock, lambda start: tokens_since(engine, start)
    )
    return Assistant(engine, clock, llm, metrics, lambda: AppConfig())


def test_each_request_is_recorded_against_its_incident(server: AnthropicServer, engine: Engine) -> None:
    clock = FakeClock()
    server.script(
        message(tool_use(ANSWER_TOOL, {"hypothesis": "oom"}), tokens=usage(300, 50, cache_read=100)),
        message(tool_use(ANSWER_TOOL, {"hypothesis": "oom"}), tokens=usage(200, 20)),
    )
    one = process(server, engine, clock)
    assert isinstance(one.complete(ASK, 7), Answer)
    assert isinstance(one.complete(ASK, 8), Answer)
    assert (tokens_of(engine, 7), tokens_of(engine, 8), tokens_of(engine, 9)) == (450, 220, 0)


def test_replicas_share_the_daily_budget_and_a_restart_does_not_reset_it(
    server: AnthropicServer, engine: Engine
) -> None:
    clock = FakeClock()
    answer = message(tool_use(ANSWER_TOOL, {"hypothesis": "oom"}), tokens=usage(700, 400))
    server.script(answer, answer)
    first = process(server, engine, clock, daily_token_budget=1_000)
    assert isinstance(first.complete(ASK, 1), Answer)  # 1,100 tokens: the day's budget is spent

    second = process(server, engine, clock, daily_token_budget=1_000)  # another replica, or a restart
    spent = second.complete(ASK, 2)
    assert isinstance(spent, Fallback) and spent.reason is FallbackReason.BUDGET_SPENT
    assert len(server.received) == 1
    assert tokens_of(engine, 2) == 0  # the fallback is recorded, with no tokens

    clock.advance(24 * 3600)  # a new UTC day
    assert isinstance(second.complete(ASK, 3), Answer)
    assert len(server.received) == 2
