"""What an incident's messages say of its investigation: the cause (grounded facts as facts, the rest as
hypotheses, each citing the findings it rests on by their F-number, as the Details modal labels them),
who drafted the prose, and how similar incidents were resolved before.

Cause and "seen before" lines are untrusted text (Claude's, people's notes): the templates escape them.
The context lines built here are mrkdwn and escape what they quote themselves.
"""

from __future__ import annotations

from bot.core.untrusted import closed_code
from bot.llm import RULE_BASED
from bot.llm.cause import Cause, Investigation
from bot.render import escape, tidy
from bot.services import learning
from bot.store.tables import Incident

CAUSE_CHARS = 300  # the cause's sentence
LINE_CHARS = 200  # a fact or a hypothesis
FACTS = 3  # facts shown in a message; the rest are in the stored investigation
HYPOTHESES = 2


def investigation_of(inc: Incident) -> Investigation | None:
    return Investigation.from_json(inc.investigation)


def refs(ids: tuple[int, ...]) -> str:
    """F3, F5 and F7."""
    names = [f"F{i}" for i in ids]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _cut(text: str, limit: int) -> str:
    """Claude's text within `limit`, never cut inside what it shows as code (an address)."""
    return closed_code(tidy(text, limit), limit)


def cause_lines(found: Investigation | None) -> list[str]:
    """The cause as a message shows it, under Error (L1) or Problem (L2/L3); none for rule-based drafts."""
    if found is None or found.drafted_by == RULE_BASED:
        return []
    cause: Cause = found.cause
    if cause.inconclusive:
        lines = ["Cause: inconclusive — the findings do not point to one cause"]
    elif cause.supported:
        lines = [
            f"Likely cause ({cause.confidence} confidence, from {refs(cause.finding_ids)}): "
            + _cut(cause.hypothesis, CAUSE_CHARS)
        ]
    else:
        lines = [f"Hypothesis: {_cut(cause.hypothesis, CAUSE_CHARS)} (no finding supports it)"]
    lines += [f"Fact ({refs(f.finding_ids)}): {_cut(f.text, LINE_CHARS)}" for f in cause.facts[:FACTS]]
    lines += [f"Hypothesis: {_cut(h, LINE_CHARS)}" for h in cause.hypotheses[:HYPOTHESES]]
    return lines


def drafted_line(found: Investigation | None) -> str | None:
    """The context line saying who drafted the message's prose (mrkdwn, escaped)."""
    if found is None:
        return None
    if found.drafted_by != RULE_BASED:
        model = escape(tidy(found.drafted_by, 64))
        return f"Drafted by Claude ({model}) from the findings; its cause is a hypothesis"
    return f"Rule-based drafts: {escape(tidy(found.says or 'Claude was not asked', 200))}"


def seen_lines(found: Investigation | None) -> list[str]:
    """Similar resolved incidents and a remediation tried first because it fixed this target before, as
    context lines (mrkdwn, escaped)."""
    if found is None:
        return []
    lines = [f"Seen before · {escape(line)}" for line in learning.seen_before(found.similar)]
    if found.tried_first:
        fix = escape(tidy(found.tried_first, 80))
        lines.append(f"Tried first: {fix}, which fixed this target before")
    return lines
