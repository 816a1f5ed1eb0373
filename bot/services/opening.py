"""A new incident: its row, classified and carrying the policy it keeps for life, its first timeline
entries, its alert row, and Level 1's two timers. Shared by alert intake and by a person's /escalate."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot.core.classify import target_of
from bot.core.models import AlertIn, Classification, IncidentStatus, Level
from bot.core.policy import Policy
from bot.services.records import timeline
from bot.store.tables import Incident, Timer

L1_GRACE_S = 30.0  # the deadline timer fires this long after the budget, if L1 never reported


@dataclass(frozen=True)
class Opening:
    """What a new incident starts from."""

    alert: AlertIn
    found: Classification
    policy: Policy
    target_key: str | None = None
    opened_by: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    truncated: int = 0  # alerts the delivery says its sender left out


def new_incident(s: Session, now: datetime, o: Opening) -> Incident:
    """The incident row (flushed, so it has its id) and its first timeline entries."""
    alert, category = o.alert, o.found.category
    inc = Incident(
        fingerprint=alert.fingerprint,
        source=alert.source,
        title=alert.title[:500],
        category=category.value,
        classification_reason=o.found.reason,
        classified_by=o.found.basis.value,
        level=Level.L1.value,
        status=IncidentStatus.L1_RUNNING.value,
        severity=alert.severity,
        target={k: v for k, v in target_of(alert.labels).__dict__.items() if v},
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        policy=o.policy.to_dict(),
        fields=dict(o.fields),
        opened_by=o.opened_by,
        opened_at=now,
        updated_at=now,
        group_key=alert.group_key,
        truncated_alerts=o.truncated,
        last_alert_at=now,
        last_alert_key=occurrence(alert),
        target_key=o.target_key,
        sources=[alert.source],
    )
    s.add(inc)
    s.flush()
    detail = {
        "source": alert.source,
        "category": category.value,
        "reason": o.found.reason,
        "basis": o.found.basis.value,
    }
    timeline(s, inc.id or 0, now, "opened", o.opened_by, **detail, group_key=alert.group_key)
    if inc.truncated_alerts:
        timeline(s, inc.id or 0, now, "alerts_truncated", None, truncated=inc.truncated_alerts)
    return inc


def start_l1(s: Session, inc: Incident, policy: Policy, now: datetime) -> None:
    """Level 1 runs now; its deadline timer gets the incident to people if Level 1 never reports."""
    deadline = now + timedelta(seconds=policy.l1_budget_s + L1_GRACE_S)
    s.add(Timer(incident_id=inc.id, kind="run_l1", due_at=now, created_at=now))
    s.add(Timer(incident_id=inc.id, kind="l1_deadline", due_at=deadline, created_at=now))


def occurrence(alert: AlertIn) -> str | None:
    """Which firing of an alert this is, when the source says (Alertmanager's startsAt)."""
    if alert.starts_at is None:
        return None
    return f"{alert.status}|{alert.starts_at.isoformat()}"[:80]


def alert_row(alert: AlertIn, now: datetime, incident_id: int | None) -> dict[str, Any]:
    """The stored alert, as the values of one `alerts` row."""
    return {
        "source": alert.source,
        "fingerprint": alert.fingerprint,
        "group_key": alert.group_key,
        "status": alert.status,
        "title": alert.title,
        "text": alert.text,
        "severity": alert.severity,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "raw": alert.raw,
        "starts_at": alert.starts_at,
        "received_at": now,
        "incident_id": incident_id,
    }
