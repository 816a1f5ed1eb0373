"""The language model on Anthropic's Messages API, through the official `anthropic` SDK.

One request is a conversation of at most `llm.steps` API calls: the model may call the request's tools
(each input checked against its schema before the tool runs) and ends by calling `submit_answer`, whose
input must satisfy the request's answer schema. Every body is redacted whole just before it is sent.
The tool definitions and system prompt carry a cache breakpoint (the stable prefix), and so does the
newest turn, so each step reads the previous steps from the cache. Anything but a complete, valid answer
within the bounds (steps, tokens, wall time, today's budget) is a `Fallback`, logged with its reason.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from anthropic import Anthropic, APIConnectionError, APIStatusError, APITimeoutError

from bot.config.llm import LlmSettings
from bot.core.clock import Clock
from bot.core.untrusted import scrub
from bot.llm.budget import DailyBudget, Recorded
from bot.llm.port import Answer, Fallback, FallbackReason, Request, Tool, ToolCall, ToolError, Usage
from bot.llm.reply import Block, MalformedReply, Reply, read_reply
from bot.llm.schema import problems, unsupported
from bot.llm.wire import AttemptGuard, OutOfTime
from bot.metrics import Metrics

log = logging.getLogger(__name__)

ANSWER_TOOL = "submit_answer"
_ANSWER_HELP = "Submit the final answer. Call this exactly once, when you are done; it ends the conversation."
_EPHEMERAL = {"type": "ephemeral"}
TOOL_RESULT_MAX = 8_000  # characters of one tool result sent to the model
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CUT_OFF = {"max_tokens", "model_context_window_exceeded"}


def settle(metrics: Metrics, request: Request, result: Answer | Fallback) -> Answer | Fallback:
    """Count how a request ended and log a fallback's reason; returns `result`."""
    outcome = "answer" if isinstance(result, Answer) else result.reason.value
    metrics.llm_requests.labels(purpose=request.purpose, outcome=outcome).inc()
    if isinstance(result, Fallback):
        # without a key rule-based drafts are the set-up, not a fault: said once at start-up, not per draft
        level = logging.DEBUG if result.reason is FallbackReason.NO_KEY else logging.WARNING
        log.log(level, "llm %s: rule-based fallback (%s): %s", request.purpose, result.reason, result.detail)
    return result


def check_request(request: Request) -> None:
    """Refuse a request the adapter could not honour (a programming error, not the model's)."""
    wrong: list[str] = []
    for name, schema in [
        ("answer", request.answer_schema),
        *((t.name, t.input_schema) for t in request.tools),
    ]:
        if schema.get("type") != "object":
            wrong.append(f"{name}: the schema must be of an object")
        wrong += [f"{name}: {k} is not checked" for k in unsupported(schema)]
    names = [t.name for t in request.tools]
    wrong += [
        f"tool name {n!r} is taken or invalid"
        for n in names
        if n == ANSWER_TOOL or not _TOOL_NAME.fullmatch(n)
    ]
    if len(set(names)) != len(names):
        wrong.append("tool names repeat")
    if wrong:
        raise ValueError("; ".join(wrong))


class _Conversation:
    """One request's turns so far, what they cost, and the tools the model called."""

    def __init__(self, request: Request, deadline: float) -> None:
        self.request = request
        self.deadline = deadline
        self.messages: list[dict[str, Any]] = [
            {"role": "user", "content": [{"type": "text", "text": request.prompt}]}
        ]
        self.usage = Usage()
        self.steps = 0
        self.calls: list[ToolCall] = []

    def fallback(self, reason: FallbackReason, detail: str) -> Fallback:
        return Fallback(reason, detail, self.usage, self.steps, tuple(self.calls))

    def answer(self, data: dict[str, Any], model: str) -> Answer:
        return Answer(data, self.usage, model, self.steps, tuple(self.calls))


class Claude:
    """`LanguageModel` on a configured `Anthropic` client (api_key, base_url, timeout, max_retries set)."""

    def __init__(
        self,
        client: Anthropic,
        settings: LlmSettings,
        metrics: Metrics,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
        recorded: Recorded | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._metrics = metrics
        self._budget = DailyBudget(settings.daily_token_budget, clock, recorded)
        self._monotonic = monotonic

    def complete(self, request: Request) -> Answer | Fallback:
        check_request(request)
        return settle(self._metrics, request, self._converse(request))

    def _converse(self, request: Request) -> Answer | Fallback:
        limit = request.time_limit or self._settings.request_time
        conversation = _Conversation(request, self._monotonic() + limit.total_seconds())
        bound = self._settings.request_tokens
        while conversation.steps < self._settings.steps:
            result = self._step(conversation)
            if result is not None:
                return result
            if conversation.usage.total >= bound:
                spent = f"{conversation.usage.total} tokens used before an answer, the bound is {bound}"
                return conversation.fallback(FallbackReason.TOKEN_LIMIT, spent)
        return conversation.fallback(
            FallbackReason.STEP_LIMIT, f"no answer after {conversation.steps} API calls"
        )

    def _step(self, conversation: _Conversation) -> Answer | Fallback | None:
        """One API call and what follows from it: an answer, a fallback, or None to go on."""
        if self._budget.left() <= 0:
            spent = f"today's {self._settings.daily_token_budget} tokens are used: no request made"
            return conversation.fallback(FallbackReason.BUDGET_SPENT, spent)
        last = conversation.steps + 1 == self._settings.steps
        try:
            reply = self._send(self._body(conversation, last), conversation.deadline)
        except (OutOfTime, APITimeoutError) as exc:
            return conversation.fallback(FallbackReason.TIMEOUT, str(exc) or type(exc).__name__)
        except APIStatusError as exc:
            return conversation.fallback(FallbackReason.API_ERROR, f"HTTP {exc.status_code}: {exc.message}")
        except APIConnectionError as exc:
            return conversation.fallback(FallbackReason.API_ERROR, f"connection failed: {exc}")
        except MalformedReply as exc:
            conversation.steps += 1
            return conversation.fallback(FallbackReason.MALFORMED, f"the reply is not a message: {exc}")
        conversation.steps += 1
        self._count(conversation, reply.tokens)
        if reply.stop_reason in _CUT_OFF:
            cut = f"stop_reason {reply.stop_reason} after {reply.usage.output_tokens} output tokens"
            return conversation.fallback(FallbackReason.TRUNCATED, cut)
        if reply.stop_reason == "refusal":
            return conversation.fallback(FallbackReason.REFUSED, "stop_reason refusal")
        if reply.stop_reason == "tool_use":
            return self._tool_turn(conversation, reply)
        if reply.stop_reason in ("end_turn", "stop_sequence"):
            return _text_answer(conversation, reply)
        return conversation.fallback(
            FallbackReason.MALFORMED, f"unexpected stop_reason {reply.stop_reason!r}"
        )

    def _body(self, conversation: _Conversation, last: bool) -> dict[str, Any]:
        request = conversation.request
        tools = [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in request.tools
        ]
        tools.append(
            {"name": ANSWER_TOOL, "description": _ANSWER_HELP, "input_schema": request.answer_schema}
        )
        messages = copy.deepcopy(conversation.messages)
        messages[-1]["content"][-1]["cache_control"] = (
            _EPHEMERAL  # the next step reads this turn from the cache
        )
        must_answer = last or not request.tools
        return {
            "model": self._settings.model,
            "max_tokens": self._settings.max_tokens,
            # tools come before the system prompt in the cached prefix: one breakpoint covers both
            "system": [{"type": "text", "text": request.system, "cache_control": _EPHEMERAL}],
            "tools": tools,
            "tool_choice": {"type": "tool", "name": ANSWER_TOOL} if must_answer else {"type": "auto"},
            "messages": messages,
        }

    def _send(self, body: dict[str, Any], deadline: float) -> Reply:
        """The one place a request leaves the bot: redacted whole, each attempt bounded by the deadline."""
        guard = AttemptGuard(deadline, self._settings.max_retries, self._metrics, self._monotonic)
        client = self._client.with_middleware(guard)
        response = client.messages.with_raw_response.create(
            **scrub(body), timeout=self._settings.timeout.total_seconds()
        )
        return read_reply(response.http_response.content)

    def _count(self, conversation: _Conversation, tokens: Usage) -> None:
        conversation.usage += tokens
        purpose = conversation.request.purpose
        for kind, count in tokens.by_kind().items():
            self._metrics.llm_tokens.labels(purpose=purpose, kind=kind).inc(count)
        self._metrics.llm_tokens_today.set(self._budget.spend(tokens.total))

    def _tool_turn(self, conversation: _Conversation, reply: Reply) -> Answer | Fallback | None:
        calls = reply.tool_calls()
        for call in calls:
            if call.name == ANSWER_TOOL:
                return _checked_answer(conversation, call.input or {}, reply.model)
        tools = {t.name: t for t in conversation.request.tools}
        for call in calls:
            tool = tools.get(call.name or "")
            if tool is None:
                return conversation.fallback(FallbackReason.BAD_TOOL_CALL, f"no tool named {call.name!r}")
            wrong = problems(call.input, tool.input_schema)
            if wrong:
                return conversation.fallback(FallbackReason.BAD_TOOL_CALL, f"{call.name}: {'; '.join(wrong)}")
        results = [_run(tools[call.name or ""], call, conversation) for call in calls]
        said = [block for block in (b.sent_back() for b in reply.content) if block is not None]
        conversation.messages += [
            {"role": "assistant", "content": said},
            {"role": "user", "content": results},
        ]
        return None


def _run(tool: Tool, call: Block, conversation: _Conversation) -> dict[str, Any]:
    tool_input = call.input or {}
    try:
        content, is_error = _as_text(tool.run(tool_input)), False
    except ToolError as exc:
        content, is_error = f"{tool.name} failed: {exc}", True
    conversation.calls.append(ToolCall(tool.name, tool_input, is_error))
    result = {"type": "tool_result", "tool_use_id": call.id, "content": content}
    return {**result, "is_error": True} if is_error else result


def _as_text(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if len(text) <= TOOL_RESULT_MAX:
        return text
    return f"{text[:TOOL_RESULT_MAX]}… [{len(text) - TOOL_RESULT_MAX} more characters cut]"


def _checked_answer(conversation: _Conversation, data: dict[str, Any], model: str) -> Answer | Fallback:
    wrong = problems(data, conversation.request.answer_schema)
    if wrong:
        return conversation.fallback(
            FallbackReason.MALFORMED, f"the answer breaks its schema: {'; '.join(wrong)}"
        )
    return conversation.answer(data, model)


def _text_answer(conversation: _Conversation, reply: Reply) -> Answer | Fallback:
    """An answer given as JSON text instead of a submit_answer call is taken when it is a valid object."""
    try:
        data = json.loads(reply.text())
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return conversation.fallback(FallbackReason.MALFORMED, "the model ended without submitting an answer")
    return _checked_answer(conversation, data, reply.model)
