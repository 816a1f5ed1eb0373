"""The pages of a group's thread: its members listed PAGE to a reply (Slack paces replies like posts, one a
second), each with what Level 1 found and its own buttons, which act on that incident alone, and a
*Handle alone* button that splits it out of the group into a message of its own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.core.models import Category, IncidentStatus, Level
from bot.integrations.slack import blocks
from bot.integrations.slack.outbox import enqueue, rewrite
from bot.render import escape, one_line
from bot.services import readable
from bot.services.grouping import members, waiting_states
from bot.services.messages import Composer
from bot.services.records import latest_decision
from bot.store.tables import Escalation, EscalationGroup, Incident, OutboxMessage

__all__ = ["GROUP_SPLIT", "PAGE", "add_member", "page_message", "show_page"]

PAGE = 10  # members to a reply in the group's thread: Slack paces replies like posts (1 a second)
GROUP_SPLIT = "group_split"


def add_member(
    s: Session, composer: Composer, group: EscalationGroup, esc: Escalation, now: datetime
) -> None:
    """Put a new member's escalation on the newest page of the group's thread (a reply holding up to
    PAGE members, each with its own buttons), or start a page; `esc` must be flushed."""
    newest = s.exec(
        select(Escalation)
        .where(col(Escalation.group_id) == group.id, col(Escalation.id) != esc.id, col(Escalation.on_page))
        .order_by(col(Escalation.id).desc())
    ).first()
    if newest is not None and newest.outbox_id is not None:
        on_page = s.exec(select(func.count()).where(col(Escalation.outbox_id) == newest.outbox_id)).one()
        if int(on_page) < PAGE:
            esc.outbox_id, esc.on_page = newest.outbox_id, True
            s.add(esc)
            s.flush()
            show_page(s, composer, group, newest.outbox_id, now)
            return
    payload = page_message(s, composer, group, [(esc, _incident(s, esc))])
    # not in the member's own queue: it would wait for that incident's Level 1 report, which a storm's
    # alert channel paces one a second
    esc.outbox_id = enqueue(s, now, "post", thread_of=group.outbox_id, **payload).id
    esc.on_page = True
    s.add(esc)


def _incident(s: Session, esc: Escalation) -> Incident:
    inc = s.get(Incident, esc.incident_id)
    assert inc is not None
    return inc


def _decision(s: Session, inc: Incident, out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A member's own decision on a page: its option buttons while it waits, else what became of it."""
    dec = latest_decision(s, inc.id)
    if dec is None:
        return []
    if dec.status == "pending" and inc.status == IncidentStatus.DECISION_PENDING.value:
        asked = escape(one_line(dec.question))[:300] + (
            f" · {escape(one_line(dec.context))[:300]}" if dec.context else ""
        )
        out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": asked, "verbatim": True}]})
        return [b.to_dict() for b in blocks.decision_buttons(dec.id or 0, readable.with_effects(dec.options))]
    if dec.status == "decided":
        line = f"Decided: {escape(str(dec.chosen_label))} by <@{dec.chosen_by}>"
    else:
        line = f"No decision: {dec.status}"
    out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line, "verbatim": True}]})
    return []


def show_page(s: Session, composer: Composer, group: EscalationGroup, page_id: int, now: datetime) -> None:
    """Make the page (reply) `page_id` show its members as they are now."""
    rows = [(esc, inc) for esc, inc in members(s, group.id or 0) if esc.on_page and esc.outbox_id == page_id]
    payload = page_message(s, composer, group, rows)
    post = s.get(OutboxMessage, page_id)
    if post is None:
        return
    if post.status == "pending" and rewrite(s, page_id, payload):
        return
    same = col(OutboxMessage.target_of) == page_id
    if post.result_ts and post.result_channel:  # posted: an update may name it by its ts instead
        same = same | (
            (col(OutboxMessage.target_ts) == post.result_ts)
            & (col(OutboxMessage.channel) == post.result_channel)
        )
    pending = s.exec(
        select(OutboxMessage.id).where(
            col(OutboxMessage.kind) == "update", col(OutboxMessage.status) == "pending", same
        )
    ).first()
    if pending is not None and rewrite(s, pending, payload):
        return
    sent = post.status == "sent" and post.result_ts
    enqueue(
        s,
        now,
        "update",
        channel=post.result_channel if sent else None,
        target_ts=post.result_ts if sent else None,
        target_of=None if sent else page_id,
        **payload,
    )


def page_message(
    s: Session, composer: Composer, group: EscalationGroup, rows: list[tuple[Escalation, Incident]]
) -> dict[str, Any]:
    """One reply in the group's thread: a few members, each with what Level 1 found and its own buttons
    (they act on that incident alone)."""
    level = Level(group.level)
    out: list[dict[str, Any]] = []
    names = []
    for esc, inc in rows:
        names.append(f"INC-{inc.id}")
        problem = str((esc.fields or {}).get("problem") or inc.title)
        text = (
            f"*INC-{inc.id}* · {Category(inc.category).label} · "
            f"{escape(one_line(inc.title))[:300]}\n{escape(one_line(problem))[:600]}"
        )
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}})
        if esc.outcome:
            out.append(
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": esc.outcome[:2000], "verbatim": True}],
                }
            )
        if level is Level.L4:
            buttons = _decision(s, inc, out)
        else:
            live = IncidentStatus(inc.status) if inc.level == level.value else IncidentStatus.RESOLVED
            buttons = [b.to_dict() for b in blocks.escalation_buttons(inc.id or 0, level, live)]
        if buttons and inc.level == level.value and inc.status in waiting_states(level):
            split = {
                "type": "button",
                "text": {"type": "plain_text", "text": "Handle alone"},
                "action_id": GROUP_SPLIT,
                "value": f"{inc.id}:{level.value}",
            }
            out.append(
                {"type": "actions", "block_id": f"m-{esc.id}-{inc.version}", "elements": [*buttons, split]}
            )
    if not rows:  # every member listed here was split out
        text = f"Level {level.value[1]} · every incident listed here was split out and is handled alone"
        return {"text": text, "blocks": blocks.message(text, [])}
    text = f"Level {level.value[1]} · " + ", ".join(names) + " · each one's own buttons act on it alone"
    return {"text": text, "blocks": out}
