"""Intake: alerts are stored, deduplicated into incidents and handed to Level 1, in one transaction,
before the sender gets its answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.config import AppConfig
from bot.core.classify import Rule, classify, target_of, with_custom
from bot.core.clock import Clock
from bot.core.errors import InputError
from bot.core.models import AlertIn, Category, IncidentStatus, Level
from bot.core.policy import Event, Policy
from bot.integrations.slack.outbox import enqueue
from bot.metrics import Metrics
from bot.services.incidents import IncidentService, Reply, timeline
from bot.services.messages import Composer
from bot.store.db import session_scope
from bot.store.tables import Alert, Incident, Timer

L1_GRACE_S = 30.0  # the deadline timer fires this long after the budget, if L1 never reported


def policy_from_config(config: AppConfig, category: Category) -> Policy:
    """The snapshot an incident keeps for its whole life."""
    lv, ch = config.levels, config.slack.channels
    template = config.decisions.for_category(category.value)
    return Policy(
        channels={
            "alerts": ch.alerts,
            "coordinator": ch.coordinator,
            "tech_lead": ch.tech_lead,
            "decisions": ch.decisions,
            "admin": ch.admin or "",
        },
        mentions={"L2": [lv.l2.group], "L3": [lv.l3.group], "L4": list(lv.l4.deciders)},
        actors={"L2": list(lv.l2.actors), "L3": list(lv.l3.actors), "L4": list(lv.l4.deciders)},
        ack_deadline_s={"L2": lv.l2.ack_deadline.total_seconds(), "L3": lv.l3.ack_deadline.total_seconds()},
        reminder_after_s={
            "L2": lv.l2.reminder_after.total_seconds(),
            "L3": lv.l3.reminder_after.total_seconds(),
        },
        auto_escalate={"L2": lv.l2.auto_escalate, "L3": lv.l3.auto_escalate},
        decision_expiry_s=lv.l4.decision_expiry.total_seconds(),
        decision_reminder_s=lv.l4.reminder_after.total_seconds(),
        l1_max_attempts=lv.l1.max_attempts,
        l1_budget_s=lv.l1.budget.total_seconds(),
        check_timeout_s=lv.l1.check_timeout.total_seconds(),
        verify_poll_s=lv.l1.verify_poll_interval.total_seconds(),
        dry_run=config.remediation.dry_run,
        allowlist={k: dict(v) for k, v in config.remediation.allowlist.items()},
        namespaces=list(config.kubernetes.namespaces),
        decision_template=template.model_dump(),
    )


@dataclass
class IngestResult:
    accepted: int = 0
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


class IntakeService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        config: Callable[[], AppConfig],
        composer: Composer,
        incidents: IncidentService,
        metrics: Metrics,
        kick: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.clock = clock
        self._config = config
        self.composer = composer
        self.incidents = incidents
        self.metrics = metrics
        self._kick = kick

    def ingest(self, alerts: list[AlertIn]) -> IngestResult:
        """Store every alert and open or update incidents; committed before this returns."""
        now = self.clock.now()
        result = IngestResult()
        to_resolve: list[int] = []
        with session_scope(self.engine) as s:
            for alert in alerts:
                open_inc = s.exec(
                    select(Incident)
                    .where(
                        Incident.fingerprint == alert.fingerprint,
                        Incident.status != IncidentStatus.RESOLVED.value,
                    )
                    .order_by(col(Incident.id).desc())
                ).first()
                row = _alert_row(alert, now)
                if open_inc is not None:
                    row.incident_id = open_inc.id
                    if alert.status == "resolved":
                        timeline(
                            s, open_inc.id or 0, now, "alert_resolved_received", None, source=alert.source
                        )
                        if open_inc.status == IncidentStatus.L1_RUNNING.value:
                            to_resolve.append(open_inc.id or 0)
                    else:
                        open_inc.alert_count += 1
                        open_inc.updated_at = now
                        s.add(open_inc)
                        result.updated.append(open_inc.id or 0)
                elif alert.status != "resolved":
                    inc = self._open(s, alert, now)
                    row.incident_id = inc.id
                    result.opened.append(inc.id or 0)
                s.add(row)
                result.accepted += 1
                self.metrics.alerts_received.labels(source=alert.source).inc()
        for incident_id in to_resolve:
            try:
                self.incidents.transition(incident_id, Event.ALERT_RESOLVED, None, note="the alert resolved")
                result.resolved.append(incident_id)
            except Exception:  # it moved on in the meantime; the alert is stored either way
                pass
        if result.opened:
            self._kick()
        return result

    @staticmethod
    def _rules(config: AppConfig) -> tuple[Rule, ...]:
        return with_custom([(r.category, r.pattern, r.description) for r in config.classification.rules])

    def _open(
        self,
        s: Session,
        alert: AlertIn,
        now: datetime,
        *,
        opened_by: str | None = None,
        fields: dict[str, Any] | None = None,
        level: Level = Level.L1,
    ) -> Incident:
        config = self._config()
        cls = classify(alert, self._rules(config))
        policy = policy_from_config(config, cls.category)
        target = target_of(alert.labels)
        inc = Incident(
            fingerprint=alert.fingerprint,
            source=alert.source,
            title=alert.title[:500],
            category=cls.category.value,
            classification_reason=cls.reason,
            level=Level.L1.value,
            status=IncidentStatus.L1_RUNNING.value,
            severity=alert.severity,
            target={k: v for k, v in target.__dict__.items() if v},
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            policy=policy.to_dict(),
            fields=fields or {},
            opened_by=opened_by,
            opened_at=now,
            updated_at=now,
        )
        s.add(inc)
        s.flush()
        self.metrics.incidents_opened.labels(category=cls.category.value).inc()
        timeline(
            s,
            inc.id or 0,
            now,
            "opened",
            opened_by,
            source=alert.source,
            category=cls.category.value,
            reason=cls.reason,
        )
        if level is Level.L1:
            if alert.slack_channel and alert.slack_ts:
                # the alert is already a Slack message: its thread is where Level 1 reports
                inc.alert_channel, inc.alert_ts = alert.slack_channel, alert.slack_ts
            else:
                root = enqueue(
                    s,
                    now,
                    "post",
                    incident_id=inc.id,
                    channel=policy.channels["alerts"],
                    **self.composer.alert_opened(inc),
                )
                inc.alert_outbox_id = root.id
            s.add(inc)
            s.add(Timer(incident_id=inc.id, kind="run_l1", due_at=now, created_at=now))
            s.add(
                Timer(
                    incident_id=inc.id,
                    kind="l1_deadline",
                    created_at=now,
                    due_at=now + timedelta(seconds=policy.l1_budget_s + L1_GRACE_S),
                )
            )
        return inc

    def escalate_by_hand(self, user_id: str, fields: dict[str, str]) -> Reply:
        """/escalate: open the incident at L2 and say where it went."""
        inc = self.open_manual(user_id, fields)
        return Reply(
            f"INC-{inc.id} is open and posted to {inc.policy['channels']['coordinator']} for Level 2."
        )

    def open_manual(self, user_id: str, fields: dict[str, str]) -> Incident:
        """A person's /escalate: the five fields go straight to Level 2 (a person already tried Level 1)."""
        problem = fields.get("problem", "").strip()
        if not problem:
            raise InputError("problem", "say what the problem is")
        now = self.clock.now()
        alert = AlertIn(
            source="slack",
            fingerprint=f"manual:{user_id}:{now.timestamp()}",
            status="firing",
            title=problem[:200],
            text=problem,
        )
        with session_scope(self.engine) as s:
            cls = classify(alert, self._rules(self._config()))
            request = fields.get("request") or cls.category.request_text
            filled = {
                "problem": problem,
                "attempted": fields.get("attempted")
                or f"Reported by <@{user_id}>; nothing recorded as tried yet",
                "impact": fields.get("impact") or "Not stated",
                "infrastructure": fields.get("infrastructure") or "Not stated",
                "request": request,
            }
            inc = self._open(s, alert, now, opened_by=user_id, fields=filled, level=Level.L2)
            s.add(_alert_row(alert, now, inc.id))
            incident_id = inc.id or 0
        self.incidents.transition(incident_id, Event.L1_FAILED, user_id, note="opened by hand")
        return self.incidents.get(incident_id)


def _alert_row(alert: AlertIn, now: datetime, incident_id: int | None = None) -> Alert:
    return Alert(
        source=alert.source,
        fingerprint=alert.fingerprint,
        group_key=alert.group_key,
        status=alert.status,
        title=alert.title,
        text=alert.text,
        severity=alert.severity,
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        raw=alert.raw,
        starts_at=alert.starts_at,
        received_at=now,
        incident_id=incident_id,
    )
