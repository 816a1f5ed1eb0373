"""What the bot asks a language model and what comes back: a validated answer, or a fallback with its reason.

A caller builds a `Request` (stable instructions, this incident's text, the schema of the answer it wants,
and read-only tools it may offer), calls `LanguageModel.complete`, and gets either an `Answer` whose `data`
satisfies the schema or a `Fallback` telling it to use its rule-based draft. Never anything in between.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal, Protocol

RULE_BASED = "rule-based"


class ToolError(Exception):
    """Raised by a tool for an expected failure (a pod that is gone, a server that does not answer): the
    model is told, as an error result, and may try something else. Any other exception is a bug."""


@dataclass(frozen=True)
class Tool:
    """A read-only tool the model may call: its input is checked against `input_schema` before `run`."""

    name: str
    description: str
    input_schema: Mapping[str, Any]  # JSON schema of an object (the subset bot.llm.schema checks)
    run: Callable[[dict[str, Any]], object]  # returns text or a JSON value; raises ToolError on failure


@dataclass(frozen=True)
class Request:
    """One question to the model, answered through tool calls into one structured answer."""

    purpose: str  # what it is for ("investigate", "draft", "answer"): labels metrics and logs
    system: str  # the stable instructions: the cached prefix, the same for every incident
    prompt: str  # this incident's text; untrusted, redacted before it is sent
    answer_schema: Mapping[str, Any]  # JSON schema of an object: the answer must satisfy it
    tools: tuple[Tool, ...] = ()
    time_limit: timedelta | None = None  # wall time for all steps (e.g. what is left of Level 1's budget)


@dataclass(frozen=True)
class Usage:
    """Tokens one request used, as the API reported them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
        )

    @property
    def total(self) -> int:
        """Every token counted: what the daily budget and a request's bound are measured in."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_input_tokens
            + self.cache_creation_input_tokens
        )

    def by_kind(self) -> dict[str, int]:
        """The counts under the names the metrics use."""
        return {
            "input": self.input_tokens,
            "output": self.output_tokens,
            "cache_read": self.cache_read_input_tokens,
            "cache_creation": self.cache_creation_input_tokens,
        }


@dataclass(frozen=True)
class ToolCall:
    """A tool the model called, with the input it gave (the evidence behind an answer)."""

    name: str
    input: dict[str, Any]
    is_error: bool  # the tool raised ToolError


@dataclass(frozen=True)
class Answer:
    """A complete answer: `data` satisfies the request's answer schema."""

    data: dict[str, Any]
    usage: Usage
    model: str
    steps: int  # API calls made
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def drafted_by(self) -> str:
        return self.model


class FallbackReason(StrEnum):
    NO_KEY = "no_key"
    BUDGET_SPENT = "budget_spent"
    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    REFUSED = "refused"
    API_ERROR = "api_error"
    TIMEOUT = "timeout"
    BAD_TOOL_CALL = "bad_tool_call"
    STEP_LIMIT = "step_limit"
    TOKEN_LIMIT = "token_limit"


_SAYS = {
    FallbackReason.NO_KEY: "no ANTHROPIC_API_KEY is set",
    FallbackReason.BUDGET_SPENT: "today's token budget is spent",
    FallbackReason.MALFORMED: "Claude's answer was malformed",
    FallbackReason.TRUNCATED: "Claude's answer was cut off",
    FallbackReason.REFUSED: "Claude declined to answer",
    FallbackReason.API_ERROR: "the Anthropic API failed",
    FallbackReason.TIMEOUT: "Claude took too long",
    FallbackReason.BAD_TOOL_CALL: "Claude asked for a tool call outside its schema",
    FallbackReason.STEP_LIMIT: "Claude needed more steps than allowed",
    FallbackReason.TOKEN_LIMIT: "Claude needed more tokens than allowed",
}


@dataclass(frozen=True)
class Fallback:
    """No answer: the caller uses its rule-based draft. `detail` is for the log, `says` for people."""

    reason: FallbackReason
    detail: str
    usage: Usage = field(default_factory=Usage)
    steps: int = 0
    tool_calls: tuple[ToolCall, ...] = ()
    drafted_by: Literal["rule-based"] = "rule-based"

    @property
    def says(self) -> str:
        """Why the draft is rule-based, for a message's context line."""
        return _SAYS[self.reason]


class LanguageModel(Protocol):
    def complete(self, request: Request) -> Answer | Fallback:
        """Answer `request` within the configured bounds, or fall back; never raises for the model's sake."""
        ...
