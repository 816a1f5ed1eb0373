"""Incidents that share something reach people as one escalation, not one each.

What they share, strongest first: an alert storm (bursts of new incidents in one channel); a cause Level 1
found (the tracking server they report to, the node their pods ran on, the upstream Job they wait on:
bot/core/causes.py); an Alertmanager group (the alerts Alertmanager sent together, in one notification).
A storm's incidents escalate together from the first; incidents sharing a cause or a notification do once
intake.group_at of them wait at a level (the ones that escalated alone are adopted: their own messages
stay, and the group's buttons act on them too). Below that, each is news of its own.

A group has one message in the level's channel (one mention; how many incidents, their categories and
pipelines, the cause they share when Level 1 found one); its later members are listed in that message's
thread (bot/services/group_pages.py), each with what Level 1 found, its own buttons and a *Handle alone*
button that splits it out. The group's buttons act on every member still waiting at the level
(`GroupActions`). Reminders of grouped members are the group's: one in its thread, not one per member.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.core.causes import describe
from bot.core.models import Category, IncidentStatus, Level
from bot.core.policy import is_urgent, policy_of
from bot.integrations.slack import blocks
from bot.integrations.slack.outbox import enqueue
from bot.render import one_line, render
from bot.services import group_decisions
from bot.services.messages import Composer, fmt_time
from bot.services.records import latest_escalation
from bot.services.storm import pipeline_of, refresh_message
from bot.store.tables import Escalation, EscalationGroup, Incident, Storm

__all__ = [
    "GROUP_ACK",
    "GROUP_ESCALATE",
    "GROUP_RESOLVE",
    "group_of",
    "join",
    "join_decision",
    "locked",
    "members",
    "remind",
    "show",
    "storm_key",
    "waiting",
    "waiting_states",
]

WAITING = (IncidentStatus.OPEN.value, IncidentStatus.ACKNOWLEDGED.value)
GROUP_ACK, GROUP_RESOLVE, GROUP_ESCALATE = "group_ack", "group_resolve", "group_escalate_l3"
SHOWN = 6  # pipelines and categories named on the message; the rest are counted
OUTCOMES = 5  # moves shown on a group's message (the newest)
REMIND_ROUND = timedelta(minutes=5)  # members' reminders this close to the group's last are the same round
STORM, CAUSE, ALERT_GROUP = "storm", "cause", "group"  # what a group's members share: its key's kind
TOGETHER = timedelta(minutes=30)  # intake.group_window: incidents sharing a cause escalated this close
GROUP_AT = 3  # intake.group_at: incidents sharing a cause or a notification escalate as one from this many


def storm_key(s: Session, inc: Incident, window: timedelta) -> str | None:
    """The storm an incident escalates with: its own, or the storm its alert channel went into within
    `window` after it opened (the first incidents of a burst post their own root messages, but escalate
    with the rest); None: it is of no storm."""
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


def _digest(kind: str, value: str) -> str:
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


def _shared(inc: Incident) -> list[tuple[str, ColumnElement[bool]]]:
    """What else `inc` may escalate with, strongest first: the cause Level 1 found, its Alertmanager group."""
    found: list[tuple[str, ColumnElement[bool]]] = []
    if inc.cause_key:
        found.append((_digest(CAUSE, inc.cause_key), col(Incident.cause_key) == inc.cause_key))
    if inc.group_key and inc.delivery_id is not None:  # sent together, in one notification
        same = (col(Incident.group_key) == inc.group_key) & (col(Incident.delivery_id) == inc.delivery_id)
        found.append((_digest(ALERT_GROUP, f"{inc.delivery_id}|{inc.group_key}"), same))
    return found


def join(
    s: Session,
    inc: Incident,
    level: Level,
    channel: str,
    now: datetime,
    window: timedelta,
    together: timedelta = TOGETHER,
    at: int = GROUP_AT,
) -> EscalationGroup | None:
    """The open group `inc` joins at `level` (created, with its message, if it is the first); None when
    the incident escalates on its own. Incidents sharing a cause, or an Alertmanager group in one
    notification, are grouped once `at` of them escalated within `together` and still wait: the ones that
    escalated alone are adopted."""
    if level not in (Level.L2, Level.L3):
        return None
    key = storm_key(s, inc, window)
    below = latest_escalation(s, inc.id, Level.L2) if level is Level.L3 else None
    came_from = group_of(s, below) if below is not None and below.at >= inc.opened_at else None
    if came_from is not None:  # escalated together at L2: together again at L3, whatever made the group
        return _enter(s, came_from.key, level, channel, now, [])
    if key is not None:
        return _enter(s, key, level, channel, now, [])
    for key, same in _shared(inc):
        _one_at_a_time(s, f"{key}:{level.value}")
        found = _open_group(s, key, level)
        if found is not None and waiting(found, members(s, found.id or 0)):
            return _enter(s, key, level, channel, now, [])
        alone = s.exec(
            select(Escalation)
            .where(
                col(Escalation.incident_id) == col(Incident.id),
                col(Escalation.level) == level.value,
                col(Escalation.group_id).is_(None),
                col(Escalation.split_by).is_(None),  # split out by a person: kept alone
                col(Escalation.at) >= now - together,
                col(Escalation.at) >= col(Incident.opened_at),  # not one from before it reopened
                col(Incident.id) != inc.id,
                col(Incident.level) == level.value,
                col(Incident.status).in_(WAITING),
                same,
            )
            .order_by(col(Escalation.id))
        ).all()
        if len(alone) + 1 >= at:
            return _enter(s, key, level, channel, now, list(alone))
    return None


def _enter(
    s: Session, key: str, level: Level, channel: str, now: datetime, adopt: list[Escalation]
) -> EscalationGroup:
    """Join the open group `key` at `level`, creating it if there is none or none of it still waits;
    `adopt` escalations (posted alone, with messages of their own) join it too."""
    found = _open_group(s, key, level)
    if found is not None and not waiting(found, members(s, found.id or 0)):
        # everyone it stood for was handled: a later member is news, with its own mention
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
    for esc in adopt:
        esc.group_id, esc.on_page = found.id, False
        s.add(esc)
    # members joining at once from two replicas take their pages and refresh its message one after the other
    return locked(s, found.id or 0) or found


def locked(s: Session, group_id: int) -> EscalationGroup | None:
    """The group, read as it now is and locked until the transaction ends (a no-op on SQLite, whose
    writers take turns anyway)."""
    query = select(EscalationGroup).where(col(EscalationGroup.id) == group_id).with_for_update()
    return s.exec(query.execution_options(populate_existing=True)).first()


def _one_at_a_time(s: Session, key: str) -> None:
    """Serialise, until the transaction ends, the escalations that may form the group `key`: each must see
    the members the others escalated (PostgreSQL's transaction-scoped advisory lock; SQLite's writers take
    turns anyway)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})


def join_decision(s: Session, inc: Incident, channel: str, now: datetime) -> EscalationGroup | None:
    """The group whose decision `inc` shares at L4: the one of the group it was escalated with at L3;
    None when it reached L3 alone (it asks for a decision of its own)."""
    l3 = latest_escalation(s, inc.id, Level.L3)
    l3_group = group_of(s, l3) if l3 is not None else None
    if l3_group is None:
        return None
    return _enter(s, l3_group.key, Level.L4, channel, now, [])


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
    """The members still waiting at the group's level (at L4: for a decision)."""
    states = waiting_states(Level(group.level))
    return [inc for _, inc in rows if inc.level == group.level and inc.status in states]


def waiting_states(level: Level) -> tuple[str, ...]:
    """The states an incident waits at `level` in, the one nobody has taken on yet first."""
    return (IncidentStatus.DECISION_PENDING.value,) if level is Level.L4 else WAITING


def show(
    s: Session, composer: Composer, group: EscalationGroup, now: datetime, wait: timedelta | None
) -> None:
    """Post the group's message, or refresh it (at once, or no sooner than `wait` after the last time)."""
    rows = members(s, group.id or 0)
    if group.level == Level.L4.value:
        kind, first = group.key.partition(":")[0], rows[0][1] if rows else None
        payload = group_decisions.decision_message(s, composer, group, rows, _origin(kind, first))
    else:
        payload = group_message(composer, group, rows)
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
    kind = group.key.partition(":")[0]
    problem = f"{count} incident{'' if count == 1 else 's'} {_origin(kind, first)} that Level 1 could not fix"
    causes = Counter(i.cause_key for i in incidents if i.cause_key)
    cause, sharing = causes.most_common(1)[0] if causes else ("", 0)
    reasons = Counter(i.classification_reason for i in incidents)
    reason, shared = reasons.most_common(1)[0] if reasons else ("", 0)
    if kind == CAUSE and cause:
        problem += f"; their common cause: {describe(cause)}"
    elif sharing > 1:
        problem += f"; {'all' if sharing == count else f'{sharing}'} of them: {describe(cause)}"
    elif count > 1 and shared == count and reason:
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
        origin=_origin(kind, None),
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


def _origin(kind: str, first: Incident | None) -> str:
    """Where a group's incidents come from, in words: "from one alert storm", ..."""
    if kind == CAUSE:
        return "with one cause"
    if kind == ALERT_GROUP:
        named = first.group_key if first is not None else None
        return "from one Alertmanager group" + (f" ({one_line(named)[:200]})" if named else "")
    return "from one alert storm"


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
    state = waiting_states(level)[0]
    unacknowledged = [inc for _, inc in rows if inc.level == group.level and inc.status == state]
    if not unacknowledged:
        return
    policy = policy_of(unacknowledged[0])
    who = composer.mentions(policy.mentions.get(level.value, []))
    n = len(unacknowledged)
    what = "a decision" if level is Level.L4 else f"an acknowledgement at {level.value}"
    text = (
        f"{who} :alarm_clock: {n} incident{'' if n == 1 else 's'} of this group "
        f"{'has' if n == 1 else 'have'} waited {waited} for {what}. {next_step}"
    ).strip()
    enqueue(s, now, "post", thread_of=group.outbox_id, **composer.plain(text))
    group.reminded_at = now
    s.add(group)
