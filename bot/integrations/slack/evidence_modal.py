"""The Details modal: every finding and remediation attempt behind an incident's message, each with its
human name, status, summary, the exact call and answer (as stored, redacted) and how long it took. What
does not fit Slack's modal limits (100 blocks, 3,000 characters a section) is cut, and said so."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml
from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.core.evidence import Evidence, Step, StepKind
from bot.core.models import ActionId
from bot.render import ELLIPSIS, escape, one_line, shorten, tidy

MODAL_BLOCKS = 100
SECTION = 3000
SUMMARY_CHARS = 1500  # a step's summary in full, up to this
ANSWER_CHARS = 2400  # the call's answer, as YAML, up to this
LOG_CHARS = 1500  # a log tail in an answer: its last lines, up to this
VIEW_BYTES = 200_000  # Slack refuses a view much over 250 kB; stay well under it
RESERVED = 2  # blocks kept for the closing note


@dataclass(frozen=True)
class About:
    """What the modal is about, as plain text the modal escapes: the incident and where it stands."""

    incident_id: int
    category: str
    title: str
    standing: str  # "Level 2 · open · urgent (severity critical) · opened 2026-12-04 14:05 UTC"
    links: str | None = None  # a mrkdwn line of links the caller built (already safe)
    fields: dict[str, str] | None = None  # the five fields as escalated, in full (messages cut them)
    cause: tuple[str, ...] = ()  # the investigated cause, as plain lines citing the F-numbers below
    drafted: str | None = None  # who drafted it (a mrkdwn line, already safe)


FIELD_LABELS = (
    ("problem", "Problem"),
    ("attempted", "Attempted"),
    ("impact", "Impact"),
    ("infrastructure", "Infrastructure"),
    ("request", "Request"),
)


def details_modal(about: About, found: Evidence, private: dict[str, Any] | None = None) -> dict[str, Any]:
    """The read-only modal (no submit button) showing `found` for the incident `about`."""
    head: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=shorten(f"INC-{about.incident_id} · {about.category}", 150))),
        _section(f"*{escape(tidy(about.title, 300))}*\n{escape(about.standing)}"),
    ]
    if about.links:
        head.append(ContextBlock(elements=[MarkdownTextObject(text=about.links[:SECTION], verbatim=True)]))
    body: list[list[Block]] = [_cause(about)] if about.cause else []
    body += [_fields(about.fields, found)] if about.fields else []
    for kind, steps in (("Checks", found.checks), ("Remediation attempts", found.remediations)):
        body.append([DividerBlock(), _section(f"*{kind}* ({len(steps)})")] if steps else [])
        body.extend(_step(step) for step in steps)
    if not found.steps:
        body.append([_section("Level 1 recorded no checks or remediation attempts for this incident.")])
    blocks, left = _fit(head, body)
    if left:
        note = f"{ELLIPSIS} {left} more in the incident's thread"
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=note)]))
    view = View(
        type="modal",
        callback_id=ActionId.DETAILS_VIEW,
        title=PlainTextObject(text=f"INC-{about.incident_id} details"[:24]),
        close=PlainTextObject(text="Close"),
        blocks=blocks,
        private_metadata=json.dumps(private or {})[:3000],
    )
    return view.to_dict()


def _cause(about: About) -> list[Block]:
    """The cause the investigation found, its facts and hypotheses, with who drafted it: the F-numbers
    it cites are the checks listed below."""
    text = shorten("*Cause*\n" + "\n".join(escape(line) for line in about.cause), SECTION)
    blocks: list[Block] = [DividerBlock(), _section(text)]
    if about.drafted:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=about.drafted[:SECTION])]))
    return blocks


def _fields(fields: dict[str, str], found: Evidence) -> list[Block]:
    """The fields as they were escalated, each in full as far as a section holds (Attempted only when no
    step was recorded: the steps below say it better); short fields leave their room to long ones."""
    shown = {
        label: one_line(str(fields.get(key) or ""))
        for key, label in FIELD_LABELS
        if fields.get(key) and (key != "attempted" or not found.steps)
    }
    room, left, fitted = SECTION - 40 - sum(len(label) + 3 for label in shown), len(shown), {}
    for label, value in sorted(shown.items(), key=lambda kv: len(escape(kv[1]))):
        fitted[label] = shorten(value, max(40, room // left))  # escaping below may lengthen it a little
        room, left = room - len(escape(fitted[label])), left - 1
    text = "\n".join(f"{label}: {escape(fitted[label])}" for label in shown)
    return [DividerBlock(), _section(f"*As escalated*\n{text}")] if text else []


def _fit(head: list[Block], groups: list[list[Block]]) -> tuple[list[Block], int]:
    """The head and as many whole groups as fit the block and size limits; how many steps were left out."""
    blocks = list(head)
    size = _size(blocks)
    for i, group in enumerate(groups):
        grown = size + _size(group)
        if len(blocks) + len(group) > MODAL_BLOCKS - RESERVED or grown > VIEW_BYTES:
            steps_left = sum(1 for g in groups[i:] if g and not isinstance(g[0], DividerBlock))
            return blocks, steps_left
        blocks.extend(group)
        size = grown
    return blocks, 0


def _size(blocks: list[Block]) -> int:
    return sum(len(json.dumps(b.to_dict(), ensure_ascii=False).encode()) for b in blocks)


def _step(step: Step) -> list[Block]:
    """Two sections: what it is and what it found; the exact call and its answer."""
    facts = [step.status.replace("_", " ")]
    if step.kind is StepKind.REMEDIATION and step.attempt:
        facts.append(f"attempt {step.attempt}")
    if step.duration_ms is not None:
        facts.append(_duration(step.duration_ms))
    ref = f"{step.ref} · " if step.ref else ""  # the F-number a cause cites
    title = f"{step.mark} {ref}*{escape(step.name)}* · {' · '.join(facts)}"
    lines = [title]
    if step.plan:
        lines.append(f"Plan: {escape(shorten(step.plan, 500))}")
    lines.append(escape(shorten(step.summary, SUMMARY_CHARS)) or "_no summary_")
    found: list[Block] = [_section("\n".join(lines))]
    evidence = _evidence(step.evidence)
    if evidence:
        found.append(_section(evidence))
    return found


def _evidence(evidence: dict[str, Any]) -> str:
    """The call that decided the step and its answer, as code; other calls it made, listed."""
    rest = {k: v for k, v in evidence.items() if k not in ("call", "calls", "facts")}
    parts = []
    if evidence.get("call"):
        parts.append(f"*Call* `{escape(shorten(str(evidence['call']), 400))}`")
    others = [str(c) for c in evidence.get("calls") or [] if c != evidence.get("call")]
    if others:
        parts.append("*Also read* " + ", ".join(f"`{escape(shorten(c, 200))}`" for c in others[:6]))
        if len(others) > 6:
            parts[-1] += f" and {len(others) - 6} more"
    if rest:
        answer = _readable(rest)
        room = min(ANSWER_CHARS, SECTION - sum(len(p) + 1 for p in parts) - 40)
        parts.append(f"*Answer*\n```{escape(_cut_answer(answer, room))}```")
    return "\n".join(parts)


class _Dumper(yaml.SafeDumper):
    """YAML that shows a log tail as its lines, not as one string full of \\n."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        lines = [line.rstrip() for line in value.strip("\n").splitlines()]
        while len(lines) > 1 and sum(len(line) + 1 for line in lines) > LOG_CHARS:
            lines = lines[1:]  # a log's last lines say what went wrong: its first ones go
        if len(lines) < value.strip("\n").count("\n") + 1:
            lines.insert(0, f"{ELLIPSIS} (earlier lines cut)")
        return dumper.represent_scalar("tag:yaml.org,2002:str", "\n".join(lines), style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _text)


def _readable(answer: dict[str, Any]) -> str:
    """An answer as YAML: nested objects indented, log lines as lines."""
    try:
        return yaml.dump(answer, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100).strip()
    except yaml.YAMLError:
        return json.dumps(answer, indent=1, ensure_ascii=False, default=str)


def _cut_answer(answer: str, room: int) -> str:
    """The answer as it fits, escaping included (escaping makes it longer), cut at a line when it can."""
    if len(escape(answer)) <= room:
        return answer
    cut = answer[: max(0, room - 60)]
    while len(escape(cut)) > room - 60:
        cut = cut[: int(len(cut) * 0.9)]
    cut = cut[: cut.rfind("\n")] if "\n" in cut else cut
    return f"{cut}\n{ELLIPSIS} {len(answer) - len(cut)} more characters"


_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,4}$")


def _section(text: str) -> SectionBlock:
    """A mrkdwn section; text over Slack's limit is cut without leaving half an escaped character."""
    if len(text) > SECTION:
        text = _PARTIAL_ENTITY.sub("", text[: SECTION - 1]) + ELLIPSIS
    return SectionBlock(text=MarkdownTextObject(text=text or " ", verbatim=True))


def _duration(ms: int) -> str:
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"
