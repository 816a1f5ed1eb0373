"""Which incidents a Slack thread is about, from the message it hangs under (its parent's channel and ts).

An incident's thread is the one under its root alert message (the bot's post, or the alert another bot
posted), its Level 2/3 escalation message or its decision request. A group's message (incidents escalated
together) and a storm's summary stand for several incidents: their threads are about all the members.
Anything else is a thread the bot knows nothing about.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from bot.store.tables import Decision, Escalation, EscalationGroup, Incident, OutboxMessage, Storm


@dataclass(frozen=True)
class Subject:
    """What a thread is about: one incident, or the members of a group or a storm (`shared`)."""

    incident_ids: tuple[int, ...]
    shared: bool = False
    level: str = "L1"  # the level whose message the thread hangs under: what its readers were shown

    @property
    def one(self) -> int | None:
        return self.incident_ids[0] if len(self.incident_ids) == 1 else None


NOTHING = Subject(())


def subject(s: Session, channel: str, thread_ts: str) -> Subject:
    """The incidents the thread under the message at (`channel`, `thread_ts`) is about."""
    foreign = select(Incident.id).where(Incident.alert_channel == channel, Incident.alert_ts == thread_ts)
    found = _ids(s.exec(foreign).all())
    if found:
        return Subject(found)
    escalated = select(Escalation.incident_id, Escalation.level).where(
        Escalation.message_channel == channel, Escalation.message_ts == thread_ts
    )
    rows = s.exec(escalated).all()
    if rows:
        return Subject((int(rows[-1][0]),), level=str(rows[-1][1]))
    decided = select(Decision.incident_id).where(
        Decision.message_channel == channel, Decision.message_ts == thread_ts
    )
    found = _ids(s.exec(decided).all())
    if found:
        return Subject(found[-1:], level="L4")
    posted = select(OutboxMessage.id).where(
        OutboxMessage.kind == "post",
        OutboxMessage.result_channel == channel,
        OutboxMessage.result_ts == thread_ts,
    )
    post = s.exec(posted.order_by(col(OutboxMessage.id))).first()
    return NOTHING if post is None else _of_post(s, post)


def _of_post(s: Session, post: int) -> Subject:
    root = _ids(s.exec(select(Incident.id).where(Incident.alert_outbox_id == post)).all())
    if root:
        return Subject(root[-1:])
    escalated = s.exec(
        select(Escalation.incident_id, Escalation.level).where(Escalation.outbox_id == post)
    ).all()
    if escalated:
        return Subject((int(escalated[-1][0]),), level=str(escalated[-1][1]))
    decided = _ids(s.exec(select(Decision.incident_id).where(Decision.outbox_id == post)).all())
    if decided:
        return Subject(decided[-1:], level="L4")
    group = s.exec(
        select(EscalationGroup.id, EscalationGroup.level).where(EscalationGroup.outbox_id == post)
    ).first()
    if group is not None:
        grouped = select(Escalation.incident_id).where(Escalation.group_id == group[0])
        return _shared(s.exec(grouped.order_by(col(Escalation.id))).all(), str(group[1]))
    storm = s.exec(select(Storm.id).where(Storm.outbox_id == post)).first()
    if storm is not None:
        stormed = select(Incident.id).where(Incident.storm_id == storm)
        return _shared(s.exec(stormed.order_by(col(Incident.id))).all())
    return NOTHING


def _ids(rows: object) -> tuple[int, ...]:
    return tuple(dict.fromkeys(int(i) for i in rows if i is not None))  # type: ignore[attr-defined]


def _shared(rows: object, level: str = "L1") -> Subject:
    found = _ids(rows)
    return Subject(found, shared=len(found) > 1, level=level)
