"""The LLM port on the real `anthropic` client, against a loopback server speaking the Messages API: a
complete, schema-checked answer after tool calls over several steps, or a rule-based fallback with its
reason (no key, budget spent, overloaded, cut off, refused, malformed, too slow, a bad tool call), and
nothing secret in any request the server received."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.config import Env, LlmSettings
from bot.core.clock import FakeClock
from bot.llm import (
    ANSWER_TOOL,
    Answer,
    Fallback,
    FallbackReason,
    LanguageModel,
    Request,
    Tool,
    ToolError,
    language_model,
)
from bot.llm.schema import problems
from bot.metrics import Metrics
from tests.anthropic_server import AnthropicServer, Scripted, error, message, text, tool_use, usage

KEY = "sk-ant-loopback-key"
CAUSE = {
    "type": "object",
    "properties": {
        "hypothesis": {"type": "string", "minLength": 1},
        "confidence": {"type": "string", "enum": ["low", "medium", "high", "inconclusive"]},
        "finding_ids": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["hypothesis", "confidence", "finding_ids"],
    "additionalProperties": False,
}
GOOD = {"hypothesis": "the trainer ran out of memory", "confidence": "high", "finding_ids": [3, 4]}
WHERE = {
    "namespace": {"type": "string", "enum": ["ml-pipelines"]},
    "pod": {"type": "string", "minLength": 1},
}
POD = {"type": "object", "properties": WHERE, "required": ["namespace", "pod"], "additionalProperties": False}
LOGS = {
    "type": "object",
    "properties": {**WHERE, "lines": {"type": "integer", "minimum": 1, "maximum": 200}},
    "required": ["namespace", "pod", "lines"],
    "additionalProperties": False,
}
SYSTEM = "You investigate ML pipeline failures. Cite the finding ids your cause rests on."


class Cluster:
    """Read-only tools over a pretend cluster, remembering what they were asked."""

    def __init__(self, log_tail: str = "step 90: CUDA out of memory") -> None:
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.log_tail = log_tail

    def pod_status(self, args: dict[str, Any]) -> object:
        self.asked.append(("pod_status", args))
        return {"phase": "Failed", "reason": "OOMKilled", "exit_code": 137}

    def logs(self, args: dict[str, Any]) -> object:
        self.asked.append(("log_tail", args))
        return self.log_tail

    def tools(self) -> tuple[Tool, ...]:
        return (
            Tool("pod_status", "A pod's phase and last termination.", POD, self.pod_status),
            Tool("log_tail", "The last lines of a pod's log.", LOGS, self.logs),
        )


def investigate(cluster: Cluster | None = None, prompt: str = "train-7 failed", **kw: Any) -> Request:
    tools = (cluster or Cluster()).tools()
    return Request("investigate", SYSTEM, prompt, CAUSE, tools, **kw)


@pytest.fixture
def server() -> Iterator[AnthropicServer]:
    with AnthropicServer(KEY) as s:
        yield s


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def claude(
    server: AnthropicServer, metrics: Metrics, clock: FakeClock | None = None, **settings: Any
) -> LanguageModel:
    env = Env.from_environ({"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.url})
    return language_model(LlmSettings(**settings), env, metrics, clock or FakeClock())


def samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The `/metrics` samples called `name`, by their labels."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
        if s.name == name
    }


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    last = body["messages"][-1]
    return [block for block in last["content"] if block.get("type") == "tool_result"]


# ---------------------------------------------------------------- answers


def test_claude_reads_the_cluster_over_several_steps_and_submits_a_checked_answer(
    server: AnthropicServer, metrics: Metrics
) -> None:
    cluster = Cluster()
    status = tool_use("pod_status", {"namespace": "ml-pipelines", "pod": "train-7"})
    logs = tool_use("log_tail", {"namespace": "ml-pipelines", "pod": "train-7", "lines": 50})
    server.script(
        message(text("Checking the pod first."), status, tokens=usage(900, 60, cache_creation=700)),
        message(logs, tokens=usage(300, 40, cache_read=1300)),
        message(tool_use(ANSWER_TOOL, GOOD), tokens=usage(200, 80, cache_read=1500)),
    )
    result = claude(server, metrics, model="claude-haiku-5-5").complete(investigate(cluster))

    assert isinstance(result, Answer)
    assert (result.data, result.steps, result.model, result.drafted_by) == (
        GOOD,
        3,
        "claude-haiku-5-5",
        "claude-haiku-5-5",
    )
    assert [(c.name, c.is_error) for c in result.tool_calls] == [("pod_status", False), ("log_tail", False)]
    assert cluster.asked == [("pod_status", status["input"]), ("log_tail", logs["input"])]
    assert result.usage.by_kind() == {"input": 1400, "output": 180, "cache_read": 2800, "cache_creation": 700}
    first, second, third = (r.body for r in server.received)
    assert first["model"] == "claude-haiku-5-5" and first["tool_choice"] == {"type": "auto"}
    assert [t["name"] for t in first["tools"]] == ["pod_status", "log_tail", ANSWER_TOOL]
    assert first["tools"][-1]["input_schema"] == CAUSE
    # each tool's output goes back under the id of the call that asked for it, the calls repeated before it
    assert tool_results(second) == [
        {
            "type": "tool_result",
            "tool_use_id": status["id"],
            "content": json.dumps({"phase": "Failed", "reason": "OOMKilled", "exit_code": 137}),
            "cache_control": {"type": "ephemeral"},
        }
    ]
    assert second["messages"][1]["content"] == [text("Checking the pod first."), status]
    assert tool_results(third)[0]["content"] == "step 90: CUDA out of memory"
    assert [m["role"] for m in third["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in server.received)


def test_the_tools_and_system_prompt_are_a_cached_prefix_and_each_step_caches_the_newest_turn(
    server: AnthropicServer, metrics: Metrics
) -> None:
    server.script(
        message(tool_use("pod_status", {"namespace": "ml-pipelines", "pod": "train-7"})),
        message(tool_use(ANSWER_TOOL, GOOD)),
    )
    claude(server, metrics).complete(investigate())

    first, second = (r.body for r in server.received)
    for body in (first, second):
        assert body["system"] == [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
        marked = [b for m in body["messages"] for b in m["content"] if "cache_control" in b]
        assert marked == [body["messages"][-1]["content"][-1]]  # only the newest turn: 2 breakpoints in all
    assert first["tools"] == second["tools"]  # the prefix is the same on every step, so it is read back


def test_an_answer_given_as_json_text_is_taken_when_it_satisfies_the_schema(
    server: AnthropicServer, metrics: Metrics
) -> None:
    server.script(message(text(json.dumps(GOOD))))
    result = claude(server, metrics).complete(investigate())
    assert isinstance(result, Answer) and result.data == GOOD


def test_a_tool_that_fails_tells_the_model_which_may_answer_anyway(
    server: AnthropicServer, metrics: Metrics
) -> None:
    def gone(args: dict[str, Any]) -> object:
        raise ToolError("pod train-7 not found")

    request = Request("investigate", SYSTEM, "train-7 failed", CAUSE, (Tool("pod_status", "", POD, gone),))
    server.script(
        message(tool_use("pod_status", {"namespace": "ml-pipelines", "pod": "train-7"})),
        message(tool_use(ANSWER_TOOL, {**GOOD, "confidence": "inconclusive"})),
    )
    result = claude(server, metrics).complete(request)

    assert isinstance(result, Answer) and result.data["confidence"] == "inconclusive"
    assert [(c.name, c.is_error) for c in result.tool_calls] == [("pod_status", True)]
    [told] = tool_results(server.received[1].body)
    assert (told["is_error"], told["content"]) == (True, "pod_status failed: pod train-7 not found")


# ---------------------------------------------------------------- retries


def test_an_overloaded_api_is_retried_and_its_answer_used(server: AnthropicServer, metrics: Metrics) -> None:
    server.script(
        error(529, "overloaded_error", "Overloaded", retry_after_ms="10"),
        message(tool_use(ANSWER_TOOL, GOOD)),
    )
    result = claude(server, metrics).complete(investigate())

    assert isinstance(result, Answer) and result.data == GOOD
    assert [r.headers["x-stainless-retry-count"] for r in server.received] == ["0", "1"]
    attempts = samples(metrics, "escalation_llm_api_attempts_total")
    assert attempts == {(("status", "529"),): 1.0, (("status", "200"),): 1.0}


def test_a_rate_limited_request_waits_as_long_as_retry_after_says(
    server: AnthropicServer, metrics: Metrics
) -> None:
    # 1 s is longer than the SDK's own first backoff (at most 0.5 s): the wait seen is the header's
    server.script(
        error(429, "rate_limit_error", "Slow down", retry_after="1"), message(tool_use(ANSWER_TOOL, GOOD))
    )
    result = claude(server, metrics).complete(investigate())

    assert isinstance(result, Answer)
    first, second = server.received
    assert second.at - first.at >= 1.0


def test_a_retry_after_past_the_deadline_falls_back_at_once(
    server: AnthropicServer, metrics: Metrics
) -> None:
    server.script(
        error(429, "rate_limit_error", "Slow down", retry_after="30"), message(tool_use(ANSWER_TOOL, GOOD))
    )
    started = time.monotonic()
    result = claude(server, metrics).complete(investigate(time_limit=timedelta(seconds=5)))

    assert isinstance(result, Fallback) and result.reason is FallbackReason.TIMEOUT
    assert "retry after 30s" in result.detail
    assert len(server.received) == 1 and time.monotonic() - started < 5


def test_an_api_that_stays_overloaded_falls_back_after_the_configured_retries(
    server: AnthropicServer, metrics: Metrics
) -> None:
    server.script(*[error(529, "overloaded_error", "Overloaded", retry_after_ms="5")] * 4)
    result = claude(server, metrics, max_retries=2).complete(investigate())

    assert isinstance(result, Fallback) and result.reason is FallbackReason.API_ERROR
    assert "529" in result.detail and result.drafted_by == "rule-based"
    assert len(server.received) == 3  # the first attempt and 2 retries


def test_a_reply_that_does_not_come_in_time_falls_back(server: AnthropicServer, metrics: Metrics) -> None:
    server.script(Scripted(hold=True))
    result = claude(server, metrics).complete(investigate(time_limit=timedelta(milliseconds=300)))

    assert isinstance(result, Fallback) and result.reason is FallbackReason.TIMEOUT
    assert len(server.received) == 1  # the retry the SDK would make has no time left
    # the attempt was given only the time the request had left, not llm.timeout (30s)
    assert float(server.received[0].headers["x-stainless-timeout"]) <= 0.3


# ---------------------------------------------------------------- answers that are not used


BROKEN = [
    ("cut-off JSON", Scripted(body=b'{"id": "msg_1", "type": "message", "content": [{"ty')),
    ("a message without its fields", Scripted(body={"type": "message", "content": "hello"})),
    ("prose instead of an answer", message(text("It is probably memory."))),
    ("an answer outside its schema", message(tool_use(ANSWER_TOOL, {**GOOD, "confidence": "certain"}))),
    ("an answer missing a field", message(tool_use(ANSWER_TOOL, {"hypothesis": "memory"}))),
]


@pytest.mark.parametrize("reply", [r for _, r in BROKEN], ids=[n for n, _ in BROKEN])
def test_a_malformed_answer_falls_back_and_says_why_in_the_log(
    server: AnthropicServer, metrics: Metrics, reply: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    server.script(reply)
    with caplog.at_level(logging.WARNING, logger="bot.llm"):
        result = claude(server, metrics).complete(investigate())

    assert isinstance(result, Fallback) and result.reason is FallbackReason.MALFORMED
    assert result.drafted_by == "rule-based" and result.says == "Claude's answer was malformed"
    assert any("rule-based fallback (malformed)" in r.getMessage() for r in caplog.records)
    assert samples(metrics, "escalation_llm_requests_total") == {
        (("outcome", "malformed"), ("purpose", "investigate")): 1.0
    }


def test_an_answer_cut_off_at_max_tokens_is_never_used(server: AnthropicServer, metrics: Metrics) -> None:
    server.script(message(tool_use(ANSWER_TOOL, GOOD), stop_reason="max_tokens", tokens=usage(500, 2048)))
    result = claude(server, metrics).complete(investigate())

    assert isinstance(result, Fallback) and result.reason is FallbackReason.TRUNCATED
    assert result.usage.output_tokens == 2048  # what it cost is still counted
    assert server.received[0].body["max_tokens"] == 2048


def test_a_refusal_falls_back(server: AnthropicServer, metrics: Metrics) -> None:
    server.script(message(text("I can't help with that."), stop_reason="refusal"))
    result = claude(server, metrics).complete(investigate())
    assert isinstance(result, Fallback) and result.reason is FallbackReason.REFUSED
    assert result.says == "Claude declined to answer"


BAD_CALLS = [
    ("a namespace outside the allowed ones", "pod_status", {"namespace": "kube-system", "pod": "etcd-0"}),
    ("a required field missing", "pod_status", {"namespace": "ml-pipelines"}),
    ("a field of the wrong type", "log_tail", {"namespace": "ml-pipelines", "pod": "p", "lines": "all"}),
    (
        "a field the schema does not have",
        "pod_status",
        {"namespace": "ml-pipelines", "pod": "p", "exec": "rm"},
    ),
    ("a tool that does not exist", "delete_namespace", {"namespace": "ml-pipelines"}),
]


@pytest.mark.parametrize(("name", "tool_input"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_a_tool_call_outside_its_schema_falls_back_and_no_tool_runs(
    server: AnthropicServer, metrics: Metrics, name: str, tool_input: dict[str, Any]
) -> None:
    cluster = Cluster()
    server.script(
        message(
            tool_use("pod_status", {"namespace": "ml-pipelines", "pod": "ok"}), tool_use(name, tool_input)
        )
    )
    result = claude(server, metrics).complete(investigate(cluster))

    assert isinstance(result, Fallback) and result.reason is FallbackReason.BAD_TOOL_CALL
    assert cluster.asked == []  # not even the valid call in the same turn ran
    assert len(server.received) == 1


def test_a_model_that_keeps_calling_tools_stops_at_the_step_bound(
    server: AnthropicServer, metrics: Metrics
) -> None:
    call = {"namespace": "ml-pipelines", "pod": "train-7"}
    server.script(message(tool_use("pod_status", call)), message(tool_use("pod_status", call)))
    result = claude(server, metrics, steps=2).complete(investigate())

    assert isinstance(result, Fallback) and result.reason is FallbackReason.STEP_LIMIT
    # the last step allowed asks for the answer and nothing else
    assert server.received[-1].body["tool_choice"] == {"type": "tool", "name": ANSWER_TOOL}


def test_a_request_stops_once_it_has_used_its_tokens(server: AnthropicServer, metrics: Metrics) -> None:
    server.script(
        message(tool_use("pod_status", {"namespace": "ml-pipelines", "pod": "x"}), tokens=usage(1500, 100))
    )
    result = claude(server, metrics, request_tokens=1_000).complete(investigate())

    assert isinstance(result, Fallback) and result.reason is FallbackReason.TOKEN_LIMIT
    assert len(server.received) == 1 and result.usage.total == 1600


# ---------------------------------------------------------------- no request at all


def test_without_a_key_nothing_is_sent_and_the_draft_is_rule_based(
    server: AnthropicServer, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    # credentials the SDK would find by itself are not a key: only ANTHROPIC_API_KEY turns Claude on
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    server.script(message(tool_use(ANSWER_TOOL, GOOD)))
    model = language_model(LlmSettings(), Env.from_environ(), metrics, FakeClock())
    result = model.complete(investigate())

    assert isinstance(result, Fallback) and result.reason is FallbackReason.NO_KEY
    assert (result.drafted_by, result.says) == ("rule-based", "no ANTHROPIC_API_KEY is set")
    assert server.received == []
    assert samples(metrics, "escalation_llm_requests_total") == {
        (("outcome", "no_key"), ("purpose", "investigate")): 1.0
    }


def test_past_the_daily_budget_nothing_is_sent_until_the_next_day(
    server: AnthropicServer, metrics: Metrics, clock: FakeClock
) -> None:
    answer = message(tool_use(ANSWER_TOOL, GOOD), tokens=usage(700, 400))
    server.script(answer, answer)
    model = claude(server, metrics, clock, daily_token_budget=1_000)

    assert isinstance(model.complete(investigate()), Answer)  # 1,100 tokens: today's budget is spent
    spent = model.complete(investigate())
    assert isinstance(spent, Fallback) and spent.reason is FallbackReason.BUDGET_SPENT
    assert len(server.received) == 1
    clock.advance(24 * 3600)
    assert isinstance(model.complete(investigate()), Answer)
    assert len(server.received) == 2


def test_a_budget_of_zero_never_calls_claude(server: AnthropicServer, metrics: Metrics) -> None:
    result = claude(server, metrics, daily_token_budget=0).complete(investigate())
    assert isinstance(result, Fallback) and result.reason is FallbackReason.BUDGET_SPENT
    assert server.received == []


def test_a_schema_with_rules_the_port_does_not_check_is_refused_before_anything_is_sent(
    server: AnthropicServer, metrics: Metrics
) -> None:
    loose = {"type": "object", "properties": {"cause": {"oneOf": [{"type": "string"}]}}}
    with pytest.raises(ValueError, match=r"answer: \$\.cause: oneOf is not checked"):
        claude(server, metrics).complete(Request("draft", SYSTEM, "x", loose))
    assert server.received == []


# ---------------------------------------------------------------- secrets and usage


SLACK_TOKEN = "xoxb-2750416392-7382910462-Zq8RtY3uVw1XkL5mNb0PcDs9"
AWS_KEY_ID = "AKIA" + "Q7W3E5R7T9Y1U3I5"
JSON_PASSWORD = "Jp4ssw0rd-in-json"
SECRETS = ("hunter2", SLACK_TOKEN, AWS_KEY_ID, "Sw0rdf1shX9", JSON_PASSWORD)


def test_planted_secrets_in_the_prompt_and_a_tool_result_never_reach_the_api(
    server: AnthropicServer, metrics: Metrics
) -> None:
    cluster = Cluster(
        log_tail=f"connecting to postgres://u:hunter2@db/x with password=Sw0rdf1shX9 {SLACK_TOKEN}"
    )
    prompt = f"train-7 failed: token {SLACK_TOKEN}, key {AWS_KEY_ID}, password=hunter2"

    def config_of(args: dict[str, Any]) -> object:
        return {"db_password": JSON_PASSWORD, "aws_access_key_id": AWS_KEY_ID}

    tools = (*cluster.tools(), Tool("job_config", "The Job's environment.", POD, config_of))
    pod = {"namespace": "ml-pipelines", "pod": "train-7"}
    server.script(
        message(tool_use("log_tail", {**pod, "lines": 20}), tool_use("job_config", pod)),
        message(tool_use(ANSWER_TOOL, GOOD)),
    )
    result = claude(server, metrics).complete(Request("investigate", SYSTEM, prompt, CAUSE, tools))

    assert isinstance(result, Answer)
    assert len(server.received) == 2
    for received in server.received:
        for secret in SECRETS:
            assert secret not in received.text, f"{secret} reached the API"
    sent = server.received[1].text
    assert sent.count("[REDACTED]") >= 6  # the text itself went, only its secrets were masked


def test_usage_is_returned_with_every_answer_and_exported_in_the_metrics(
    server: AnthropicServer, metrics: Metrics
) -> None:
    server.script(
        message(tool_use(ANSWER_TOOL, GOOD), tokens=usage(40, 90, cache_read=4100, cache_creation=0)),
        message(text("no"), stop_reason="refusal", tokens=usage(30, 5, cache_creation=4100)),
    )
    model = claude(server, metrics)
    answer, refused = model.complete(investigate()), model.complete(Request("draft", SYSTEM, "x", CAUSE))

    assert answer.usage.by_kind() == {"input": 40, "output": 90, "cache_read": 4100, "cache_creation": 0}
    assert refused.usage.total == 4135
    tokens = samples(metrics, "escalation_llm_tokens_total")
    assert tokens[(("kind", "cache_read"), ("purpose", "investigate"))] == 4100
    assert tokens[(("kind", "output"), ("purpose", "investigate"))] == 90
    assert tokens[(("kind", "cache_creation"), ("purpose", "draft"))] == 4100
    assert samples(metrics, "escalation_llm_tokens_today") == {(): 4230.0 + 4135.0}
    assert samples(metrics, "escalation_llm_requests_total") == {
        (("outcome", "answer"), ("purpose", "investigate")): 1.0,
        (("outcome", "refused"), ("purpose", "draft")): 1.0,
    }


# ---------------------------------------------------------------- the schema checker


SCHEMA_CASES: list[tuple[str, Any, dict[str, Any], list[str]]] = [
    ("a satisfied schema", GOOD, CAUSE, []),
    ("a wrong type", {"pod": 7}, POD, ["$.namespace: required", "$.pod: expected string, got int"]),
    ("true is not a number", True, {"type": "integer"}, ["$: expected integer, got bool"]),
    ("a whole float is an integer", 3.0, {"type": "integer"}, []),
    ("one of several types", None, {"type": ["string", "null"]}, []),
    (
        "an item of the wrong type",
        {**GOOD, "finding_ids": ["3"]},
        CAUSE,
        ["$.finding_ids[0]: expected integer, got str"],
    ),
    ("too long", "abc", {"type": "string", "maxLength": 2}, ["$: takes at most 2 characters"]),
    ("too many items", [1, 2, 3], {"type": "array", "maxItems": 2}, ["$: takes at most 2 items"]),
    ("not matching", "Train", {"type": "string", "pattern": "^[a-z]+$"}, ["$: must match '^[a-z]+$'"]),
    (
        "out of range",
        {"lines": 0},
        LOGS,
        ["$.namespace: required", "$.pod: required", "$.lines: must be at least 1"],
    ),
]


@pytest.mark.parametrize(
    ("value", "schema", "expected"), [c[1:] for c in SCHEMA_CASES], ids=[c[0] for c in SCHEMA_CASES]
)
def test_the_schema_checker_names_each_problem_at_its_path(
    value: Any, schema: dict[str, Any], expected: list[str]
) -> None:
    assert problems(value, schema) == expected


def test_a_pattern_ending_in_dollar_ends_the_string_as_json_schema_means() -> None:
    name = {"type": "string", "pattern": "^[a-z0-9-]+$"}
    assert problems("ml-pipelines", name) == []
    assert problems("ml-pipelines\n", name) == ["$: must match '^[a-z0-9-]+$'"]  # Python's $ would pass it
    assert problems("costs $", {"type": "string", "pattern": r"\$"}) == []
