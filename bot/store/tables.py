"""SQLModel tables: the database is the truth for incidents, their timeline, timers and the Slack outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def _json(**kw: Any) -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False), **kw)


class Alert(SQLModel, table=True):
    __tablename__ = "alerts"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    fingerprint: str = Field(max_length=255, index=True)
    group_key: str | None = Field(default=None, max_length=1024)
    status: str = Field(max_length=16)
    title: str
    text: str = ""
    severity: str | None = Field(default=None, max_length=32)
    labels: dict[str, Any] = _json()
    annotations: dict[str, Any] = _json()
    raw: dict[str, Any] = _json()
    starts_at: datetime | None = None
    received_at: datetime
    incident_id: int | None = Field(default=None, foreign_key="incidents.id", index=True)


class Incident(SQLModel, table=True):
    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_fingerprint_status", "fingerprint", "status"),
        # one open incident per fingerprint, even when two deliveries race (an Alertmanager HA pair)
        Index(
            "uq_incidents_open_fingerprint",
            "fingerprint",
            unique=True,
            sqlite_where=text("status != 'resolved'"),
            postgresql_where=text("status != 'resolved'"),
        ),
        Index("ix_incidents_root_channel_opened", "root_channel", "opened_at"),
        Index("ix_incidents_opened_at", "opened_at"),  # the stats' period queries
        # one open incident per target, so two sources racing on the same failure cannot open two
        Index(
            "uq_incidents_open_target",
            "target_key",
            unique=True,
            sqlite_where=text("status != 'resolved' AND target_key IS NOT NULL"),
            postgresql_where=text("status != 'resolved' AND target_key IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(max_length=255)
    source: str = Field(max_length=32)
    title: str
    category: str = Field(max_length=40)
    classification_reason: str = ""
    classified_by: str = Field(default="name", max_length=16)  # a Basis: label, configured, evidence, …
    reclassified_from: str | None = Field(default=None, max_length=40)  # the category evidence replaced
    level: str = Field(default="L1", max_length=4)
    status: str = Field(max_length=24)
    severity: str | None = Field(default=None, max_length=32)
    target: dict[str, Any] = _json()
    labels: dict[str, Any] = _json()
    annotations: dict[str, Any] = _json()
    policy: dict[str, Any] = _json()  # the escalation policy snapshot taken at creation
    fields: dict[str, Any] = _json()  # Problem/Attempted/Impact/Infrastructure/Request as last posted
    alert_count: int = 1
    opened_by: str | None = None  # a Slack user id for /escalate
    alert_outbox_id: int | None = None  # the bot's root message for the alert, when the bot posted it
    alert_channel: str | None = None  # or the alert message another bot posted (channel id, ts)
    alert_ts: str | None = None
    acked_by: str | None = None
    acked_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolved_level: str | None = None
    resolution_note: str | None = None
    opened_at: datetime
    updated_at: datetime
    version: int = 0  # compare-and-set guard: every state change bumps it
    # intake: grouping, repeats, flapping and storms
    group_key: str | None = Field(default=None, max_length=1024)  # the Alertmanager group it arrived in
    truncated_alerts: int = 0  # alerts Alertmanager left out of the last delivery (max_alerts)
    last_alert_at: datetime | None = None
    last_alert_key: str | None = Field(default=None, max_length=80)  # status|startsAt of the last delivery
    root_channel: str | None = None  # where the bot posted the root message (or the storm summary)
    root_update_outbox_id: int | None = None  # the newest root-message update (coalesced while pending)
    message_updated_at: datetime | None = None  # when a repeat last refreshed the root message
    reopened_count: int = 0
    alert_resolved_at: datetime | None = None  # the source said resolved while people still own it
    storm_id: int | None = None  # the storm whose summary stands in for its root message
    # what the incident is about (cluster/namespace/Job, MLflow run, model version, feature table): a second
    # source reporting the same target joins this incident instead of opening another
    target_key: str | None = Field(default=None, max_length=512)
    sources: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # the cause Level 1 found that other incidents may share (bot/core/causes.py): they escalate together
    cause_key: str | None = Field(default=None, max_length=255, index=True)
    delivery_id: int | None = None  # the delivery that opened it: alerts Alertmanager sent together
    # what Claude (or the rule-based fallback) found and drafted after Level 1's checks: bot/llm/cause.py
    investigation: dict[str, Any] = _json()


class Storm(SQLModel, table=True):
    """An alert storm in one channel: one summary message instead of a root message per incident."""

    __tablename__ = "storms"
    __table_args__ = (
        Index(
            "uq_storms_active_channel",
            "channel",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str
    started_at: datetime
    last_opened_at: datetime
    ended_at: datetime | None = None
    incident_count: int = 0
    alert_count: int = 0
    pipelines: dict[str, Any] = _json()  # pipeline (job or alertname) → incidents
    outbox_id: int | None = None  # the summary post
    update_outbox_id: int | None = None  # the newest summary update (coalesced while pending)
    updated_at: datetime | None = None  # when the summary was last refreshed


class EscalationGroup(SQLModel, table=True):
    """Incidents of one storm escalated together at one level: one message for all of them, its members in
    its thread, its buttons acting on every member still waiting there."""

    __tablename__ = "escalation_groups"
    __table_args__ = (
        Index(
            "uq_escalation_groups_open_key",
            "key",
            "level",
            unique=True,
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255)  # what the members share: "storm:<id>"
    level: str = Field(max_length=4)
    channel: str
    created_at: datetime
    closed_at: datetime | None = None  # no member waits at this level any more
    outbox_id: int | None = None  # the group's message
    update_outbox_id: int | None = None  # its newest update (coalesced while pending)
    updated_at: datetime | None = None
    outcome: str | None = None  # who did what to all of them, shown on the message
    reminded_at: datetime | None = None  # the last reminder about its unacknowledged members


class Finding(SQLModel, table=True):
    __tablename__ = "findings"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    check: str = Field(max_length=80)
    status: str = Field(max_length=16)
    summary: str
    evidence: dict[str, Any] = _json()
    duration_ms: int = 0
    at: datetime


class RemediationAttempt(SQLModel, table=True):
    __tablename__ = "remediation_attempts"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    name: str = Field(max_length=80)
    attempt: int
    risk: str = Field(max_length=16)
    status: str = Field(max_length=16)
    plan: str = ""
    summary: str = ""
    evidence: dict[str, Any] = _json()
    at: datetime
    # set (and committed) just before the remediation is applied: an attempt left in "applying" belongs to
    # a process that died while applying it, and is never applied again
    applied_at: datetime | None = None


class Escalation(SQLModel, table=True):
    __tablename__ = "escalations"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    level: str = Field(max_length=4)
    channel: str
    fields: dict[str, Any] = _json()
    trigger: str | None = None
    reason: str | None = None
    escalated_by: str | None = None  # None: the bot (L1 failed or a deadline passed)
    outbox_id: int | None = None
    message_channel: str | None = None
    message_ts: str | None = None
    outcome: str | None = None  # acknowledged / resolved / escalated / decided text shown on the message
    at: datetime
    group_id: int | None = Field(default=None, index=True)  # escalated with others: its message is in the
    # group's thread and carries no mention
    on_page: bool = False  # listed on a page of its group's thread (else it has a message of its own)
    split_by: str | None = None  # who split it out of its group, to be handled alone


class Decision(SQLModel, table=True):
    __tablename__ = "decisions"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    question: str
    options: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    context: str = ""
    requested_by: str | None = None
    status: str = Field(default="pending", max_length=16)  # pending / decided / expired
    chosen_index: int | None = None
    chosen_label: str | None = None
    chosen_by: str | None = None
    chosen_at: datetime | None = None
    rationale: str | None = None
    action_result: str | None = None
    outbox_id: int | None = None
    message_channel: str | None = None
    message_ts: str | None = None
    created_at: datetime
    expires_at: datetime


class TimelineEvent(SQLModel, table=True):
    __tablename__ = "timeline"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    at: datetime
    kind: str = Field(max_length=40)
    actor: str | None = None
    detail: dict[str, Any] = _json()


class OutboxMessage(SQLModel, table=True):
    """A Slack write waiting to be delivered, delivered, or given up on."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int | None = Field(default=None, index=True)
    kind: str = Field(max_length=16)  # post / update / ephemeral / view / reaction
    channel: str | None = None
    thread_ts: str | None = None
    thread_of: int | None = None  # reply in the thread of another outbox row once it is delivered
    target_ts: str | None = None  # for update / reaction
    target_of: int | None = None  # update the message another outbox row posted
    payload: dict[str, Any] = _json()
    status: str = Field(default="pending", max_length=16)  # pending / sending / sent / dead
    attempts: int = 0
    next_attempt_at: datetime
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    result_channel: str | None = None
    result_ts: str | None = None
    error: str | None = None
    created_at: datetime
    sent_at: datetime | None = None
    # wall-clock epoch seconds (comparable with Slack's ts): when the last attempt started, and since when a
    # post may have reached Slack without our knowing (an ambiguous failure, or a process that died mid-send)
    tried_at: float | None = None
    unsure_since: float | None = None


class Timer(SQLModel, table=True):
    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_due", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int | None = Field(default=None, index=True)
    kind: str = Field(max_length=32)
    due_at: datetime
    payload: dict[str, Any] = _json()
    status: str = Field(default="pending", max_length=16)  # pending / running / done / cancelled
    attempts: int = 0
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    created_at: datetime


class ProcessedRequest(SQLModel, table=True):
    """Keys of inbound deliveries already handled (Slack event ids, webhook delivery ids)."""

    __tablename__ = "processed_requests"
    __table_args__ = (UniqueConstraint("key", name="uq_processed_requests_key"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255)
    at: datetime


class Delivery(SQLModel, table=True):
    """One webhook delivery, stored (cleaned and redacted) with one write before its sender is answered,
    then turned into incidents in the order deliveries arrived, exactly once (marked done in the same
    transaction that applies it)."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_status_id", "status", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    alerts: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    count: int = 0
    applied: int = 0  # alerts applied so far: a large delivery is applied in chunks, each in its transaction
    truncated: int = 0  # alerts the sender says it left out (Alertmanager's truncatedAlerts)
    status: str = Field(default="pending", max_length=16)  # pending / done / failed
    attempts: int = 0
    error: str | None = None
    result: dict[str, Any] = _json()  # what became of the alerts (opened, updated, …), once done
    received_at: datetime
    done_at: datetime | None = None


class SlackView(SQLModel, table=True):
    """A modal the bot opened for one person. A submission is accepted only against this record, by that
    person, once; what the modal is about is read from here, never from the submitted payload."""

    __tablename__ = "slack_views"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True)  # the random handle the modal carries in private_metadata
    user_id: str = Field(max_length=64)
    callback_id: str = Field(max_length=64)
    meta: dict[str, Any] = _json()
    opened_at: datetime
    submitted_at: datetime | None = None
    request_id: int | None = None  # the stored submission that took it (handled again after a crash)


class InboundRequest(SQLModel, table=True):
    """A Slack request (event, command, click, form) stored before it is acknowledged: a repeat of it is
    dropped, and one whose process died before it was handled is handled again after a restart."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("key", name="uq_inbox_key"),
        Index("ix_inbox_pending", "done_at", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255)
    kind: str = Field(max_length=32)
    body: dict[str, Any] = _json()  # the parsed request, redacted
    received_at: datetime
    done_at: datetime | None = None
    attempts: int = 0
    claimed_until: datetime | None = None


class PollCursor(SQLModel, table=True):
    """How far one poller (per scope, e.g. a namespace) has looked, so no failure is missed or repeated."""

    __tablename__ = "poll_cursors"

    name: str = Field(primary_key=True, max_length=255)
    window_start: datetime  # the first poll's lower bound: a poller never looks further back than this
    last_polled_at: datetime  # when the last successful poll started
    last_seen: dict[str, Any] = _json()  # fingerprint → failure time (ISO), for failures still in the overlap
    lease_until: datetime | None = None  # a poll in progress holds the scope until then
