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
    for table in (Escalation, Decision):
        query = select(table.incident_id).where(
            table.message_channel == channel, table.message_ts == thread_ts
        )
        found = _ids(s.exec(query).all())
        if found:
            return Subject(found[-1:])
    posted = select(OutboxMessage.id).where(
        OutboxMessage.kind == "post",
        OutboxMessage.result_channel == channel,
        OutboxMessage.result_ts == thread_ts,
    )
    post = s.exec(posted.order_by(col(OutboxMessage.id))).first()
    return NOTHING if post is None else _of_post(s, post)


def _of_post(s: Session, post: int) -> Subject:
    own = (
        select(Incident.id).where(Incident.alert_outbox_id == post),
        select(Escalation.incident_id).where(Escalation.outbox_id == post),
        select(Decision.incident_id).where(Decision.outbox_id == post),
    )
    for query in own:
        found = _ids(s.exec(query).all())
        if found:
            return Subject(found[-1:])
    group = s.exec(select(EscalationGroup.id).where(EscalationGroup.outbox_id == post)).first()
    if group is not None:
        grouped = select(Escalation.incident_id).where(Escalation.group_id == group)
        return _shared(s.exec(grouped.order_by(col(Escalation.id))).all())
    storm = s.exec(select(Storm.id).where(Storm.outbox_id == post)).first()
    if storm is not None:
        stormed = select(Incident.id).where(Incident.storm_id == storm)
        return _shared(s.exec(stormed.order_by(col(Incident.id))).all())
    return NOTHING


def _ids(rows: object) -> tuple[int, ...]:
    return tuple(dict.fromkeys(int(i) for i in rows if i is not None))  # type: ignore[attr-defined]


def _shared(rows: object) -> Subject:
    found = _ids(rows)
    return Subject(found, shared=len(found) > 1)
