"""Decisions for a group: the members of a group escalated together at L3 that reach Level 4 ask for one
decision, not one each. The group's message in the deciders' channel asks the question once, with the
options every waiting member shares; choosing one decides it for all of them (each member's decision,
state and timeline recorded as if decided alone). Each member is also listed in the group's thread with
its own option buttons (they decide that incident alone) and *Handle alone*."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from slack_sdk.models.blocks import ButtonElement
from sqlmodel import Session

from bot.core.models import Category, IncidentStatus, Level
from bot.core.policy import is_urgent, policy_of
from bot.integrations.slack import blocks
from bot.render import escape, one_line, render
from bot.services import readable
from bot.services.messages import Composer, fmt_time
from bot.services.records import latest_decision
from bot.store.tables import Decision, Escalation, EscalationGroup, Incident

__all__ = [
    "GROUP_DECIDE",
    "PENDING",
    "common_options",
    "decision_message",
    "options_digest",
    "pending_decisions",
]

GROUP_DECIDE = "group_decide"  # suffixed with the option's index: group_decide_0 …
PENDING = IncidentStatus.DECISION_PENDING.value
SHOWN = 6


def pending_decisions(s: Session, rows: list[tuple[Escalation, Incident]]) -> list[tuple[Incident, Decision]]:
    """The members still waiting for a decision, each with its pending decision."""
    found = []
    for _, inc in rows:
        if inc.level != Level.L4.value or inc.status != PENDING:
            continue
        dec = latest_decision(s, inc.id)
        if dec is not None and dec.status == "pending":
            found.append((inc, dec))
    return found


def common_options(decisions: list[Decision]) -> list[dict[str, Any]]:
    """The options every decision offers (same label and action), in the first one's order."""
    if not decisions:
        return []

    def key(option: dict[str, Any]) -> tuple[str, str]:
        return str(option.get("label")), str(option.get("action") or "")

    shared = set.intersection(*({key(o) for o in d.options} for d in decisions))
    return [o for o in decisions[0].options if key(o) in shared]


def decision_message(
    s: Session,
    composer: Composer,
    group: EscalationGroup,
    rows: list[tuple[Escalation, Incident]],
    origin: str,
) -> dict[str, Any]:
    """The group's Level 4 message: one question for every member, the options they share, and who
    decided what once someone chose."""
    incidents = [inc for _, inc in rows]
    count = len(incidents)
    left = pending_decisions(s, rows)
    categories = Counter(Category(i.category).label for i in incidents)
    named = ", ".join(f"{c} ({n})" for c, n in categories.most_common(SHOWN))
    first = incidents[0] if incidents else None
    mention = composer.mentions(policy_of(first).mentions.get(Level.L4.value, [])) if first else ""
    urgent = (
        " · :rotating_light: time matters: a model deployment is at risk"
        if any(is_urgent(i.labels) for i in incidents)
        else ""
    )
    many = f"{count} incident{'' if count == 1 else 's'}"
    header = f"{mention} *Decision needed · {many} {escape(origin)} · {named}*{urgent}".strip()
    decisions = [dec for _, dec in left]
    questions = Counter(d.question for d in decisions)  # each one's context is on it, in the thread
    # one choice for all only when all were asked the same: otherwise each is decided in the thread
    options = common_options(decisions) if len(questions) <= 1 else []
    question = questions.most_common(1)[0][0] if questions else "Every incident of this group was decided."
    context = f"for all {len(left)} still waiting; each one's own question and options are in this thread"
    body = render(
        "decision", question=question, options=readable.with_effects(options), context=context if left else ""
    )
    ids = ", ".join(f"INC-{i.id}" for i in incidents[:10]) + (f" and {count - 10} more" if count > 10 else "")
    soonest = min((d.expires_at for d in decisions), default=None)
    lines = [f"{ids} · {len(left)} still waiting for a decision"]
    if soonest is not None:
        lines[0] += f" · the first expires {fmt_time(soonest)}"
    if len(questions) > 1:
        lines.append("They were asked different questions: each is decided on its own in this thread.")
    elif len(options) < len(decisions[0].options if decisions else []):
        lines.append("Options not every incident offers are on each one in this thread.")
    if group.outcome:
        lines.append("\n".join(group.outcome.splitlines()[-5:]))
    buttons = _buttons(group, options) if left else []
    block_id = f"gdec-{group.id}-{count}-{len(left)}-{options_digest(options)}"
    return {
        "text": f"{header}\n{escape(one_line(question))[:300]}",
        "blocks": blocks.message(header, lines, buttons, block_id, sections=[header, body]),
    }


def options_digest(options: list[dict[str, Any]]) -> str:
    """A short digest of the options a group's message offers, in its buttons' block: a click on an
    older message, whose options have changed since, is refused instead of choosing by a stale index."""
    labels = "\n".join(f"{o.get('label')}|{o.get('action') or ''}" for o in options)
    return hashlib.sha256(labels.encode()).hexdigest()[:12]


def _buttons(group: EscalationGroup, options: list[dict[str, Any]]) -> list[ButtonElement]:
    """One button per shared option: "<group id>:<index in the shared options>"."""
    made = blocks.decision_buttons(group.id or 0, readable.with_effects(options))
    for i, button in enumerate(made):
        button.action_id = f"{GROUP_DECIDE}_{i}"
    return made
