"""Incidents of one alert storm reach people as one escalation, not one each.

When an incident of a storm escalates to L2 or L3, it joins the storm's group at that level: the group has
one message in the level's channel (one mention; how many incidents, their categories and pipelines, the
cause they share when Level 1 found one), and its members are listed in that message's thread, PAGE to a
reply (Slack paces replies like posts), each with what Level 1 found and its own buttons, without a
mention. The group's buttons act on every member still waiting at the level (`GroupActions`); a member's
own buttons, in the thread, handle it alone. Reminders of grouped members are the group's: one
in its thread, not one per member.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.core.models import Category, IncidentStatus, Level
from bot.core.policy import is_urgent, policy_of
from bot.integrations.slack import blocks
from bot.integrations.slack.outbox import enqueue, rewrite
from bot.render import escape, one_line, render
from bot.services.messages import Composer, fmt_time
from bot.services.storm import pipeline_of, refresh_message
from bot.store.tables import Escalation, EscalationGroup, Incident, OutboxMessage, Storm

__all__ = [
    "GROUP_ACK",
    "GROUP_ESCALATE",
    "GROUP_RESOLVE",
    "add_member",
    "group_of",
    "join",
    "members",
    "remind",
    "show",
    "show_page",
    "waiting",
]

WAITING = (IncidentStatus.OPEN.value, IncidentStatus.ACKNOWLEDGED.value)
GROUP_ACK, GROUP_RESOLVE, GROUP_ESCALATE = "group_ack", "group_resolve", "group_escalate_l3"
SHOWN = 6  # pipelines and categories named on the message; the rest are counted
OUTCOMES = 5  # moves shown on a group's message (the newest)
PAGE = 10  # members to a reply in the group's thread: Slack paces replies like posts (1 a second)
REMIND_ROUND = timedelta(minutes=5)  # members' reminders this close to the group's last are the same round


def group_key(s: Session, inc: Incident, window: timedelta) -> str | None:
    """What an incident escalates together with: its storm, or the storm its alert channel went into
    within `window` after it opened (the first incidents of a burst post their own root messages, but
    escalate with the rest); None: it escalates on its own."""
    if inc.storm_id is not None:
        return f"storm:{inc.storm_id}"
    if not inc.root_channel:
        return None
    query = select(Storm.id).where(
        col(Storm.channel) == inc.root_channel,
        col(Storm.started_at) >= inc.opened_at,
        col(Storm.started_at) <= inc.opened_at + window,
    )
    storm_id = s.exec(query.order_by(col(Storm.id))).first()
    return f"storm:{storm_id}" if storm_id is not None else None


def join(
    s: Session, inc: Incident, level: Level, channel: str, now: datetime, window: timedelta
) -> EscalationGroup | None:
    """The open group `inc` joins at `level` (created, with its message, if it is the first); None when
    the incident escalates on its own."""
    key = group_key(s, inc, window)
    if key is None or level not in (Level.L2, Level.L3):
        return None
    found = _open_group(s, key, level)
    if found is not None and not waiting(found, members(s, found.id or 0)):
        # everyone it stood for was handled: a later member of the storm is news, with its own mention
        found.closed_at = now
        s.add(found)
        s.flush()
        found = None
    if found is None:
        try:
            with s.begin_nested():  # another replica may be creating it at the same moment
                found = EscalationGroup(key=key, level=level.value, channel=channel, created_at=now)
                s.add(found)
                s.flush()
        except IntegrityError:
            found = _open_group(s, key, level)
            if found is None:
                raise
    s.execute(
        update(EscalationGroup)
        .where(col(EscalationGroup.id) == found.id)
        .values(member_count=EscalationGroup.member_count + 1)
        .execution_options(synchronize_session=False)
    )
    s.refresh(found)
    return found


def _open_group(s: Session, key: str, level: Level) -> EscalationGroup | None:
    query = select(EscalationGroup).where(
        col(EscalationGroup.key) == key,
        col(EscalationGroup.level) == level.value,
        col(EscalationGroup.closed_at).is_(None),
    )
    return s.exec(query).first()


def members(s: Session, group_id: int) -> list[tuple[Escalation, Incident]]:
    """Every member's escalation in the group and its incident, oldest first."""
    query = (
        select(Escalation, Incident)
        .where(col(Escalation.group_id) == group_id, col(Escalation.incident_id) == col(Incident.id))
        .order_by(col(Escalation.id))
    )
    return [(esc, inc) for esc, inc in s.exec(query).all()]


def waiting(group: EscalationGroup, rows: list[tuple[Escalation, Incident]]) -> list[Incident]:
    """The members still waiting at the group's level."""
    return [inc for _, inc in rows if inc.level == group.level and inc.status in WAITING]


def show(
    s: Session, composer: Composer, group: EscalationGroup, now: datetime, wait: timedelta | None
) -> None:
    """Post the group's message, or refresh it (at once, or no sooner than `wait` after the last time)."""
    payload = group_message(composer, group, members(s, group.id or 0))
    if group.outbox_id is None:
        group.outbox_id = enqueue(s, now, "post", channel=group.channel, **payload).id
        group.updated_at = now
    else:
        queued = refresh_message(
            s,
            now,
            post_id=group.outbox_id,
            update_id=group.update_outbox_id,
            last=group.updated_at or group.created_at,
            wait=wait,
            payload=payload,
        )
        if queued is not None:
            group.update_outbox_id, group.updated_at = queued
    s.add(group)


def group_message(
    composer: Composer, group: EscalationGroup, rows: list[tuple[Escalation, Incident]]
) -> dict[str, Any]:
    """The group's message: the protocol's five fields for all of its members at once."""
    incidents = [inc for _, inc in rows]
    level = Level(group.level)
    count = len(incidents)
    categories = Counter(Category(i.category) for i in incidents)
    pipelines = Counter(pipeline_of(i) for i in incidents)
    first = incidents[0] if incidents else None
    policy = policy_of(first) if first is not None else None
    named = ", ".join(f"{c.label} ({n})" for c, n in categories.most_common(SHOWN))
    if len(categories) > SHOWN:
        named += f", {len(categories) - SHOWN} more"
    reasons = Counter(i.classification_reason for i in incidents)
    reason, shared = reasons.most_common(1)[0] if reasons else ("", 0)
    problem = f"{count} incident{'' if count == 1 else 's'} from one alert storm that Level 1 could not fix"
    if count > 1 and shared == count and reason:
        problem += f"; all of them: {reason}"
    impacts = Counter(str((i.fields or {}).get("impact", "")) for i in incidents)
    impact = impacts.most_common(1)[0][0] if impacts else ""
    if len(impacts) > 1:
        impact = f"{impact} (and {len(impacts) - 1} other impact{'' if len(impacts) == 2 else 's'})"
    where = ", ".join(f"{p} ({n})" for p, n in pipelines.most_common(SHOWN))
    if len(pipelines) > SHOWN:
        where += f", and {len(pipelines) - SHOWN} more pipelines"
    if len(categories) == 1:
        request = next(iter(categories)).request_text
    else:
        request = "Triage: do these share one cause, and who takes which?"
    text = render(
        "group_escalation",
        mention=composer.mentions(policy.mentions.get(level.value, []) if policy else []),
        level_number=level.value[1],
        count=count,
        categories=named or "no incidents yet",
        urgent=any(is_urgent(i.labels) for i in incidents),
        problem=problem,
        attempted=(
            "Level 1 on each incident; each one's report is in its alert's thread, and its own escalation, "
            "with its own buttons, is in this thread"
        ),
        impact=impact or "see each incident in this thread",
        infrastructure=f"pipelines: {where}" if where else "not known",
        request=request,
    )
    left = waiting(group, rows)
    ids = ", ".join(f"INC-{i.id}" for i in incidents[:10]) + (f" and {count - 10} more" if count > 10 else "")
    context = [f"{ids} · since {fmt_time(group.created_at)} · {len(left)} still waiting at {level.value}"]
    if group.outcome:
        context.append("\n".join(group.outcome.splitlines()[-OUTCOMES:]))  # the newest moves
    unacknowledged = any(i.status == IncidentStatus.OPEN.value for i in left)
    buttons = _buttons(group, level, unacknowledged) if left else []
    return {"text": text, "blocks": _blocks(text, context, buttons, f"grp-{group.id}-{count}-{len(left)}")}


def _buttons(group: EscalationGroup, level: Level, unacknowledged: bool) -> list[dict[str, Any]]:
    value = f"{group.id}:{level.value}"

    def button(label: str, action: str, style: str | None = None) -> dict[str, Any]:
        b: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": label},
            "action_id": action,
            "value": value,
        }
        if style:
            b["style"] = style
        return b

    found = [button("Acknowledge", GROUP_ACK, "primary")] if unacknowledged else []
    found.append(button("Resolved", GROUP_RESOLVE))
    if level is Level.L2:
        found.append(button("Escalate to tech lead", GROUP_ESCALATE, "danger"))
    return found


def _blocks(
    text: str, context: list[str], buttons: list[dict[str, Any]], block_id: str
) -> list[dict[str, Any]]:
    out = blocks.message(text, context)
    if buttons:
        out.append({"type": "actions", "block_id": block_id, "elements": buttons})
    return out


def group_of(s: Session, esc: Escalation) -> EscalationGroup | None:
    """The group an escalation belongs to, if any."""
    return s.get(EscalationGroup, esc.group_id) if esc.group_id is not None else None


def remind(
    s: Session,
    composer: Composer,
    group: EscalationGroup,
    level: Level,
    waited: str,
    next_step: str,
    now: datetime,
) -> None:
    """Remind the level's people once about the group's unacknowledged members (members' reminder timers
    fire together: only the first of a round posts)."""
    if group.reminded_at is not None and now - group.reminded_at < REMIND_ROUND:
        return
    rows = members(s, group.id or 0)
    unacknowledged = [inc for _, inc in rows if inc.level == group.level and inc.status == WAITING[0]]
    if not unacknowledged:
        return
    policy = policy_of(unacknowledged[0])
    who = composer.mentions(policy.mentions.get(level.value, []))
    n = len(unacknowledged)
    text = (
        f"{who} :alarm_clock: {n} incident{'' if n == 1 else 's'} of this group "
        f"{'has' if n == 1 else 'have'} waited {waited} for an acknowledgement at {level.value}. {next_step}"
    ).strip()
    enqueue(s, now, "post", thread_of=group.outbox_id, **composer.plain(text))
    group.reminded_at = now
    s.add(group)


def add_member(
    s: Session, composer: Composer, group: EscalationGroup, esc: Escalation, now: datetime
) -> None:
    """Put a new member's escalation on the newest page of the group's thread (a reply holding up to
    PAGE members, each with its own buttons), or start a page; `esc` must be flushed."""
    newest = s.exec(
        select(Escalation)
        .where(col(Escalation.group_id) == group.id, col(Escalation.id) != esc.id)
        .order_by(col(Escalation.id).desc())
    ).first()
    if newest is not None and newest.outbox_id is not None:
        on_page = s.exec(select(func.count()).where(col(Escalation.outbox_id) == newest.outbox_id)).one()
        if int(on_page) < PAGE:
            esc.outbox_id = newest.outbox_id
            s.add(esc)
            s.flush()
            show_page(s, composer, group, newest.outbox_id, now)
            return
    payload = page_message(composer, group, [(esc, _incident(s, esc))])
    # not in the member's own queue: it would wait for that incident's Level 1 report, which a storm's
    # alert channel paces one a second
    esc.outbox_id = enqueue(s, now, "post", thread_of=group.outbox_id, **payload).id
    s.add(esc)


def _incident(s: Session, esc: Escalation) -> Incident:
    inc = s.get(Incident, esc.incident_id)
    assert inc is not None
    return inc


def show_page(s: Session, composer: Composer, group: EscalationGroup, page_id: int, now: datetime) -> None:
    """Make the page (reply) `page_id` show its members as they are now."""
    rows = [(esc, inc) for esc, inc in members(s, group.id or 0) if esc.outbox_id == page_id]
    payload = page_message(composer, group, rows)
    post = s.get(OutboxMessage, page_id)
    if post is None:
        return
    if post.status == "pending" and rewrite(s, page_id, payload):
        return
    pending = s.exec(
        select(OutboxMessage.id).where(
            col(OutboxMessage.kind) == "update",
            col(OutboxMessage.status) == "pending",
            (col(OutboxMessage.target_of) == page_id)
            | (
                (col(OutboxMessage.target_ts) == post.result_ts)
                & (col(OutboxMessage.channel) == post.result_channel)
            ),
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
    composer: Composer, group: EscalationGroup, rows: list[tuple[Escalation, Incident]]
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
        live = IncidentStatus(inc.status) if inc.level == level.value else IncidentStatus.RESOLVED
        buttons = [b.to_dict() for b in blocks.escalation_buttons(inc.id or 0, level, live)]
        if buttons:
            out.append({"type": "actions", "block_id": f"m-{esc.id}-{inc.version}", "elements": buttons})
    text = f"Level {level.value[1]} · " + ", ".join(names) + " · each one's own buttons act on it alone"
    return {"text": text, "blocks": out}
