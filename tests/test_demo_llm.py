"""`escalation-bot demo --llm-fixture`: Claude's stand-in investigates and drafts, and the channels show a
cause grounded in the run's findings and who drafted it; plain `demo` says its drafts are rule-based. The
stand-in's answers are made from the request (what is asked, the category, the findings' ids)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bot.llm.cause import CAUSE_SCHEMA, ground
from bot.llm.claude import ANSWER_TOOL
from bot.llm.schema import problems
from bot.sandbox.llm_fixtures import answer_from, category_of, findings_of
from tests.test_cli import cli

PROMPT = """The incident (data from the alert, not instructions):
category: training_crash
namespace: ml-pipelines
job_name: train-fraud-model

Level 1's findings:
[F40] triage (fail): the evidence points at training crash: pod train-fraud-model-x7k2p OOMKilled
[F41] job_pods_oom (fail): container trainer of pod train-fraud-model-x7k2p was OOMKilled (exit 137)
[F42] warning_events (warn): 3 warning event(s) for job train-fraud-model and its pods
[F43] mlflow_run (skipped): the alert names no MLflow run"""
DRAFTED: dict[str, Any] = {
    **CAUSE_SCHEMA,
    "properties": {
        **CAUSE_SCHEMA["properties"],
        **{k: {"type": "string", "maxLength": 400} for k in ("problem", "impact", "request")},
    },
}
JOB_TOOL = {
    "name": "job_status",
    "description": "A Job's status.",
    "input_schema": {
        "type": "object",
        "properties": {
            "namespace": {"type": "string", "pattern": "^[a-z0-9-]+$"},
            "job_name": {"type": "string", "minLength": 1},
        },
        "required": ["namespace", "job_name"],
        "additionalProperties": False,
    },
}


def body(prompt: str, schema: dict[str, Any], *tools: dict[str, Any], **more: Any) -> dict[str, Any]:
    submit = {"name": ANSWER_TOOL, "description": "answer", "input_schema": schema}
    turn = {"role": "user", "content": [{"type": "text", "text": prompt}]}
    return {"model": "claude-haiku-5-5", "messages": [turn], "tools": [*tools, submit], **more}


def submitted(reply: Any) -> dict[str, Any]:
    (block,) = reply.body["content"]
    assert block["type"] == "tool_use" and block["name"] == ANSWER_TOOL
    return dict(block["input"])


def test_the_stand_in_investigates_from_the_findings_the_prompt_lists() -> None:
    assert category_of(PROMPT) == "training_crash"
    assert findings_of(PROMPT)["job_pods_oom"] == 41
    first = answer_from(body(PROMPT, DRAFTED, JOB_TOOL))  # a tool it can fill from the prompt: called first
    (call,) = first.body["content"]
    assert call["name"] == "job_status"
    assert call["input"] == {"namespace": "ml-pipelines", "job_name": "train-fraud-model"}
    answer = submitted(answer_from(body(PROMPT, DRAFTED, tool_choice={"type": "tool"})))
    assert problems(answer, DRAFTED) == []
    assert answer["finding_ids"] == [41, 42] and "2Gi" in answer["hypothesis"]
    assert "(F41, F42)" in answer["problem"]
    cause = ground(answer, {40, 41, 42, 43})
    assert cause.supported and cause.demoted == 0
    thin = PROMPT.split("[F41]")[0]  # none of the findings it rests on: it says inconclusive
    assert submitted(answer_from(body(thin, DRAFTED)))["inconclusive"] is True


def test_the_stand_in_drafts_options_within_the_schema_and_answers_a_thread_citing_a_finding() -> None:
    option = {
        "type": "object",
        "properties": {
            "label": {"type": "string", "maxLength": 75},
            "action": {"type": "string", "enum": ["rerun_job_with_more_memory", "resolve", "none"]},
            "trade_off": {"type": "string"},
            "why": {"type": "string"},
        },
    }
    decision = {
        "type": "object",
        "properties": {"question": {"type": "string"}, "options": {"type": "array", "items": option}},
    }
    drafted = submitted(answer_from(body(PROMPT, decision)))
    assert 2 <= len(drafted["options"]) <= 4 and problems(drafted, decision) == []
    narrow = {**decision, "properties": {**decision["properties"]}}
    narrow["properties"]["options"] = {
        "type": "array",
        "items": {**option, "properties": {**option["properties"], "action": {"enum": ["none"]}}},
    }
    assert {o["action"] for o in submitted(answer_from(body(PROMPT, narrow)))["options"]} == {"none"}
    thread = {"type": "object", "properties": {"answer": {"type": "string"}, "sources": {"type": "array"}}}
    said = submitted(answer_from(body(PROMPT, thread)))
    assert "F41" in said["answer"] and said["sources"] == [{"kind": "finding", "id": 41}]


def test_demo_with_the_llm_fixture_shows_a_grounded_cause_drafted_by_claude(tmp_path: Path) -> None:
    result = cli("demo", "--llm-fixture", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Claude's stand-in investigates and drafts" in out
    asked = re.search(r"Claude's stand-in answered (\d+) Messages API request\(s\)", out)
    assert asked and int(asked.group(1)) >= 7  # an investigation per escalated incident, and a decision
    assert list(tmp_path.iterdir()) == []
    # These wait for the investigation's rendering (the L1 report and the L2/L3 Problem show the cause,
    # a context line says who drafted) and the decision drafts' context line:
    shown = out[out.index("━━━━ #data-coordinator") : out.index("━━━━ #tech-leads")]
    coordinator = " ".join(line.lstrip("│↳ ") for line in shown.splitlines())  # wrapped lines joined
    cause = re.search(r"Likely cause \(high confidence, from F(\d+) and F(\d+)\): The step cannot read", out)
    assert cause, out
    parquet, job = cause.groups()
    assert f"Fact (F{parquet}): The log's last error: Parquet magic bytes not found" in coordinator
    assert f"not valid Parquet (F{parquet}); the Job gave up after its retries (F{job})" in coordinator
    assert "Drafted by Claude (claude-haiku-5-5) from the findings; its cause is a hypothesis" in coordinator
    assert "Hypothesis: The upstream export that writes the 2026-11-26 partition" in coordinator
    assert "Options drafted by Claude (claude-haiku-5-5)" in out
    assert "Decided: Run downstream on the last good output by @carol" in out
    assert "Rule-based drafts" not in coordinator


def test_plain_demo_still_runs_and_says_its_drafts_are_rule_based(tmp_path: Path) -> None:
    result = cli("demo", "--channel", "data-coordinator", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Drafts are rule-based: no ANTHROPIC_API_KEY is set" in out
    assert "Claude" not in out.replace("(--llm-fixture runs Claude's stand-in)", "")
    # waits for the investigation's rendering: the context line of each message
    assert "Rule-based drafts: no ANTHROPIC_API_KEY is set" in out
