"""Claude's stand-in for the demo: Messages API answers made from recorded fixtures (fixtures/llm/).

What is asked is read from the `submit_answer` tool's input schema in the request: `hypothesis` among its
properties is an investigation, `options` a Level 4 decision draft, `answer` a question asked in a
thread. The category is read from the prompt. An investigation cites the findings the prompt lists as
`[F<id>] <check> (<status>): …` for the checks its fixture names, so the cause rests on the real findings of
the run (inconclusive when none of them is there); it first calls one of the offered read-only tools when
an input for it can be filled from the prompt. Every answer is cut to its schema's bounds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from bot.core.models import Category
from bot.llm.claude import ANSWER_TOOL
from bot.llm.schema import problems
from bot.sandbox.anthropic_api import MODEL, AnthropicServer, Scripted, message, tool_use, usage

FIXTURES = Path(__file__).parent / "fixtures" / "llm"
FINDING = re.compile(r"^\[F(\d+)\] (\S+) \((\w+)\):", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@cache
def fixture(category: str) -> dict[str, Any]:
    path = FIXTURES / f"{category}.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def category_of(prompt: str) -> str:
    """The category the prompt names: after a "category" word, else the one named first."""
    known = [c for c in Category if c is not Category.UNCLASSIFIED]
    said = re.search(r"categor(?:y|ies)\W{0,4}([a-z_]+)", prompt, re.IGNORECASE)
    if said and said.group(1) in {c.value for c in known}:
        return said.group(1)
    lower = prompt.lower()
    found = [(lower.find(n), c.value) for c in known for n in (c.value, c.label.lower()) if n in lower]
    return min(found)[1] if found else Category.PIPELINE_STEP_FAILED.value


def findings_of(prompt: str) -> dict[str, int]:
    """The first finding id the prompt lists for each check."""
    found: dict[str, int] = {}
    for fid, check, _status in FINDING.findall(prompt):
        found.setdefault(check, int(fid))
    return found


def _cite(words: str, ids: Mapping[str, int]) -> str:
    """`{check}` placeholders as the F-number of that check's finding (dropped when there is none)."""
    said = _PLACEHOLDER.sub(lambda m: f"F{ids[m.group(1)]}" if m.group(1) in ids else "", words)
    said = re.sub(r",\s*\)", ")", re.sub(r"\(\s*,\s*", "(", said))
    return re.sub(r"\s*\(\s*\)", "", said)


def _fit(value: Any, schema: Mapping[str, Any]) -> Any:
    """`value` kept to `schema`: unknown keys dropped, strings and lists cut to their bounds."""
    if isinstance(value, dict) and "properties" in schema:
        properties: Mapping[str, Any] = schema["properties"]
        return {k: _fit(v, properties[k]) for k, v in value.items() if k in properties}
    if isinstance(value, list):
        items = schema.get("items") or {}
        return [_fit(v, items) for v in value[: schema.get("maxItems", len(value))]]
    if isinstance(value, str) and "maxLength" in schema:
        return value[: schema["maxLength"]]
    return value


def investigation(spec: Mapping[str, Any], ids: Mapping[str, int]) -> dict[str, Any]:
    rests = [ids[c] for c in spec.get("checks", ()) if c in ids]
    facts = [
        {"text": f["text"], "finding_ids": [ids[c] for c in f["checks"] if c in ids]}
        for f in spec.get("facts", ())
        if any(c in ids for c in f["checks"])
    ]
    drafted = {k: _cite(spec[k], ids) for k in ("problem", "impact", "request")}
    if not rests:  # none of the findings it would rest on is there: say so
        unsure = {"inconclusive": True, "hypothesis": "", "confidence": "low", "finding_ids": []}
        return {**unsure, "facts": facts, **drafted}
    cause = {"inconclusive": False, "hypothesis": spec["hypothesis"], "confidence": spec["confidence"]}
    return {
        **cause,
        "finding_ids": rests,
        "facts": facts,
        "hypotheses": list(spec.get("hypotheses", ())),
        **drafted,
    }


def decision(spec: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """2–4 options whose actions are the fixture's when the schema allows them, else "none"."""
    item = (schema.get("properties") or {}).get("options", {}).get("items", {})
    allowed = ((item.get("properties") or {}).get("action") or {}).get("enum")
    options = []
    for option in spec.get("options", ())[:4]:
        action = option["action"] if allowed is None or option["action"] in allowed else "none"
        options.append({**option, "action": action})
    return {"question": spec.get("question", ""), "options": options}


def thread_answer(spec: Mapping[str, Any], ids: Mapping[str, int]) -> dict[str, Any]:
    cited = [ids[c] for c in spec.get("checks", ()) if c in ids]
    if not cited and ids:
        cited = [min(ids.values())]
    words = _cite(spec.get("text", ""), ids) or "The findings above are all Level 1 read."
    return {"answer": words, "sources": [{"kind": "finding", "id": i} for i in cited]}


def _value(prompt: str, key: str) -> str | None:
    said = re.search(rf"\b{key}\b[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9][A-Za-z0-9._-]*)", prompt)
    return said.group(1) if said else None


def tool_call(tools: list[dict[str, Any]], prompt: str) -> dict[str, Any] | None:
    """A call of the first offered tool whose required input can be filled from the prompt."""
    for tool in tools:
        schema = tool.get("input_schema") or {}
        args: dict[str, Any] = {}
        for name in schema.get("required", ()):
            prop = (schema.get("properties") or {}).get(name, {})
            if prop.get("enum"):
                args[name] = prop["enum"][0]
            elif prop.get("type") == "integer":
                args[name] = max(int(prop.get("minimum", 20)), min(20, int(prop.get("maximum", 20))))
            elif (found := _value(prompt, name)) is not None:
                args[name] = found
        if not problems(args, schema):
            return tool_use(str(tool["name"]), args)
    return None


def answer_from(body: dict[str, Any]) -> Scripted:
    """The stand-in's reply to one Messages API request."""
    messages = body.get("messages") or []
    first = messages[0]["content"] if messages else []
    prompt = first if isinstance(first, str) else "\n".join(b.get("text", "") for b in first)
    tools = [t for t in body.get("tools", ()) if t.get("name") != ANSWER_TOOL]
    submit: dict[str, Any] = next((t for t in body.get("tools", ()) if t.get("name") == ANSWER_TOOL), {})
    schema = submit.get("input_schema") or {}
    asks = set(schema.get("properties") or {})
    spec = fixture(category_of(prompt))
    ids = findings_of(prompt)
    model = str(body.get("model") or MODEL)
    tokens = usage(input_tokens=len(json.dumps(body)) // 4, output_tokens=180)
    if "hypothesis" in asks:
        answered_tool = any(
            isinstance(m.get("content"), list) and any(b.get("type") == "tool_result" for b in m["content"])
            for m in messages
        )
        forced = (body.get("tool_choice") or {}).get("type") == "tool"
        call = None if answered_tool or forced else tool_call(tools, prompt)
        if call is not None:
            return message(call, tokens=tokens, model=model)
        data = investigation(spec.get("investigation", {}), ids)
    elif "options" in asks:
        data = decision(spec.get("decision", {}), schema)
    elif "answer" in asks:
        data = thread_answer(spec.get("answer", {}), ids)
    else:
        data = {}
    return message(tool_use(ANSWER_TOOL, _fit(data, schema)), tokens=tokens, model=model)


def claude_stand_in(api_key: str) -> AnthropicServer:
    """The Messages API stand-in answering from the recorded fixtures (start it, or use it in `with`)."""
    return AnthropicServer(api_key=api_key, answer_from=answer_from)
