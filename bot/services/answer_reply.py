"""The answer as it is posted in the thread: Claude's text kept to the records it cites, or the rule-based
answer built from the record itself; a "Sources:" line naming each record; a context line saying who
answered (Claude and its model, or the rule-based answer and why).

Everything shown is neutralised for Slack: no mention, broadcast or link can come from Claude's text, the
question or the incident's data (`inert`), and the message stays within Slack's limits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.core.redact import redact
from bot.core.untrusted import as_code
from bot.diagnostics.names import check_name, remediation_name
from bot.integrations.slack import blocks
from bot.llm import Answer, Fallback
from bot.render import ELLIPSIS, escape, one_line, tidy
from bot.services.answer_prompt import Record, category, past_line, summary
from bot.services.readable import FIELD_CHARS, problem

SHOWN_MAX = 2900  # characters of the answer's section, under Slack's 3000
TEXT_MAX = 3000  # the notification text
FAILING_SHOWN, TRIED_SHOWN, SIMILAR_SHOWN = 6, 4, 3
_CUT_ENTITY = re.compile(r"&[a-z]{0,4}$")  # an entity cut before its ";"
_STATUS = {
    "l1_running": "Level 1 is still running",
    "open": "waiting to be acknowledged",
    "acknowledged": "acknowledged",
    "decision_pending": "waiting for a decision",
    "decided": "decided",
    "resolved": "resolved",
}
_FAILING_FIRST = {"fail": 0, "error": 1, "warn": 2}


@dataclass(frozen=True)
class Source:
    kind: str  # finding, timeline, incident, attempt
    id: int


@dataclass(frozen=True)
class Reply:
    """What is posted: the answer's text, the records it names, and who answered."""

    text: str  # plain text, neutralised when shown
    sources: tuple[Source, ...]
    by: str  # the context line
    ungrounded: bool = False  # Claude cited none of the incident's records
    dropped: int = 0  # records Claude cited that the incident does not have


def from_model(result: Answer | Fallback, record: Record) -> Reply:
    """Claude's answer kept to the records it was given, or the rule-based answer with the reason."""
    if isinstance(result, Fallback):
        return rule_based(record, result.says)
    text, cited, dropped = grounded(result.data, record)
    return Reply(
        text,
        cited,
        f"Answered by Claude ({result.model}) from INC-{record.id}'s findings",
        ungrounded=not cited,
        dropped=dropped,
    )


def grounded(data: Mapping[str, Any], record: Record) -> tuple[str, tuple[Source, ...], int]:
    """The answer's text, the sources it cites that the record has (in order, once each), and how many
    it cited that the record does not have."""
    known = record.known()
    cited: list[Source] = []
    dropped = 0
    for item in data.get("sources") or ():
        source = Source(str(item.get("kind")), int(item.get("id", 0)))
        if source.id not in known.get(source.kind, set()):
            dropped += 1
        elif source not in cited:
            cited.append(source)
    return str(data.get("answer", "")).strip(), tuple(cited), dropped


def rule_based(record: Record, why: str) -> Reply:
    """A deterministic answer from the record: where the incident stands, Level 1's cause, the failing
    findings, what was tried and similar past incidents."""
    inc = record.inc
    status = _STATUS.get(inc.status, inc.status.replace("_", " "))
    lines = [f"INC-{record.id} is at {inc.level}, {status} ({category(inc)}): {one_line(inc.title)}."]
    sources: list[Source] = []
    cause = record.investigation.cause if record.investigation else None
    if cause is not None and cause.supported:
        rests = ", ".join(f"F{i}" for i in cause.finding_ids)
        lines.append(f"Level 1's cause ({cause.confidence} confidence, from {rests}): {cause.hypothesis}")
    elif problem(inc, inc.fields) != tidy(inc.title, FIELD_CHARS):  # a problem someone wrote, not Level 1
        lines.append(f"Problem: {problem(inc, inc.fields)}")
    failing = sorted(
        (f for f in record.findings if f.status in _FAILING_FIRST),
        key=lambda f: (_FAILING_FIRST[f.status], f.id or 0),
    )
    if failing:
        lines.append("What Level 1 found:")
        for f in failing[:FAILING_SHOWN]:
            lines.append(f"• F{f.id} {check_name(f.check)} ({f.status}): {summary(f)}")
            sources.append(Source("finding", f.id or 0))
    else:
        lines.append("Level 1 recorded no failing check.")
    if record.attempts:
        lines.append("Tried:")
        for a in record.attempts[-TRIED_SHOWN:]:
            said = f": {one_line(a.summary)}" if a.summary else ""
            lines.append(f"• {remediation_name(a.name, a.plan)} ({a.status}){said}")
            sources.append(Source("attempt", a.id or 0))
    else:
        lines.append("Nothing was tried to fix it.")
    for p in record.similar[:SIMILAR_SHOWN]:
        lines.append(f"Similar: INC-{p.incident_id} {past_line(p)}")
        sources.append(Source("incident", p.incident_id))
    return Reply("\n".join(lines), tuple(sources), f"Rule-based answer: {why}")


def message(reply: Reply, record: Record) -> dict[str, Any]:
    """The reply as a Slack message: the answer, then context lines for its sources and who answered."""
    shown = _cut(inert(reply.text), SHOWN_MAX)
    context = (
        [inert("Sources: " + " · ".join(label(s, record) for s in reply.sources))] if reply.sources else []
    )
    if reply.ungrounded:
        context.append(
            f":warning: Not grounded in a finding: this answer cites none of INC-{record.id}'s findings, "
            "timeline, attempts or similar incidents."
        )
    if reply.dropped:
        n = reply.dropped
        context.append(f"{n} cited record{'' if n == 1 else 's'} INC-{record.id} does not have left out.")
    context.append(inert(reply.by))
    return {"text": _cut(shown, TEXT_MAX), "blocks": blocks.message(shown, context=context)}


def label(source: Source, record: Record) -> str:
    """How a source is named on the Sources line (F12 Pod logs (fail), timeline 14:02 escalated by …)."""
    if source.kind == "finding":
        f = _one(record.findings, source.id)
        return f"F{source.id} {check_name(f.check)} ({f.status})" if f else f"F{source.id}"
    if source.kind == "timeline":
        e = _one(record.timeline, source.id)
        if e is None:
            return f"timeline {source.id}"
        who = f" by {e.actor}" if e.actor else ""
        return f"timeline {e.at:%H:%M} {e.kind.replace('_', ' ')}{who}"
    if source.kind == "attempt":
        a = _one(record.attempts, source.id)
        return f"A{source.id} {remediation_name(a.name, a.plan)} ({a.status})" if a else f"A{source.id}"
    if source.id == record.id:
        return f"INC-{source.id} (this incident)"
    p = next((p for p in record.similar if p.incident_id == source.id), None)
    return f"INC-{source.id} resolved at {p.level}" if p else f"INC-{source.id}"


def _one(rows: list[Any], row_id: int) -> Any:
    return next((r for r in rows if r.id == row_id), None)


def inert(text: str) -> str:
    """Text from Claude, a question or an incident's data as mrkdwn that only shows it: no mention,
    broadcast or fence (`escape`), and no link (a URL or a host name is shown as code, which Slack does
    not link; backticks of its own are taken out so none can pair with those)."""
    return as_code(escape(redact(text).replace("`", "'")), web_link=None)


def _cut(text: str, limit: int) -> str:
    """`text` within `limit`, cut at a word with an ellipsis; never ending in half an HTML entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 2]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    cut = _CUT_ENTITY.sub("", cut).rstrip() + ELLIPSIS
    return cut + "`" if cut.count("`") % 2 else cut  # a host name cut off in its code span stays in it
