"""Intake: alerts are stored, deduplicated into incidents and handed to Level 1, in one transaction,
before the sender gets its answer."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session, col, select

from bot.config import AppConfig
from bot.core.classify import Rule, classify, target_key, target_of, with_custom
from bot.core.clock import Clock
from bot.core.errors import Conflict, InputError
from bot.core.models import AlertIn, Category, IncidentStatus, Level
from bot.core.policy import Event, Policy, policy_of
from bot.core.untrusted import admit, scrub
from bot.integrations.slack.outbox import enqueue
from bot.metrics import Metrics
from bot.services.incidents import IncidentService, Reply, timeline
from bot.services.messages import Composer
from bot.services.snapshot import policy_from_config
from bot.services.storm import StormDesk, refresh_message
from bot.store.db import is_postgres, session_scope
from bot.store.tables import Alert, Decision, Delivery, Escalation, Incident, Timer

log = logging.getLogger(__name__)

L1_GRACE_S = 30.0  # the deadline timer fires this long after the budget, if L1 never reported
SAME_NOTIFICATION = timedelta(minutes=1)  # the same firing delivered again within this is one delivery
RACE_RETRIES = 5


@dataclass
class IngestResult:
    accepted: int = 0
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    duplicates: int = 0  # the same notification delivered again (an HA pair): stored, not counted


@dataclass
class _Batch:
    """What one delivery's transaction works with."""

    s: Session
    now: datetime
    config: AppConfig
    desk: StormDesk
    rules: tuple[Rule, ...]
    truncated: int
    result: IngestResult = field(default_factory=IngestResult)
    to_resolve: list[int] = field(default_factory=list)
    opened_categories: list[str] = field(default_factory=list)
    refresh: dict[int, Incident] = field(default_factory=dict)  # roots to refresh (debounced)
    policies: dict[Category, Policy] = field(default_factory=dict)


class IntakeService:
    """Alerts in, incidents out: one incident per fingerprint among open incidents, repeats counted,
    flapping alerts reopen their incident, storms summarised. Every alert row is stored either way.

    Alertmanager groups: each alert of a group is its own incident (per fingerprint); the incident keeps
    the groupKey it arrived in, so the group can be read back, and a storm summary groups by pipeline."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        config: Callable[[], AppConfig],
        composer: Composer,
        incidents: IncidentService,
        metrics: Metrics,
        kick: Callable[[], None],
        cluster: str = "default",
    ) -> None:
        self.engine = engine
        self.cluster = cluster
        self.clock = clock
        self._config = config
        self.composer = composer
        self.incidents = incidents
        self.metrics = metrics
        self._kick = kick

    def ingest(self, alerts: list[AlertIn], *, truncated_alerts: int = 0) -> IngestResult:
        """Store every alert and open, update, reopen or close incidents; committed before this returns.

        `truncated_alerts` is what the delivery says its sender left out (Alertmanager's max_alerts).
        Every alert is cleaned and redacted here, once, before anything of it is stored."""
        result = self._ingest(alerts, truncated_alerts, None)
        assert result is not None  # only a stored delivery can have been applied by someone else
        return result

    def apply_delivery(
        self, delivery_id: int, offset: int, alerts: list[AlertIn], truncated: int
    ) -> IngestResult | None:
        """`ingest` for the alerts of a stored delivery (admitted when it was stored) from `offset` on, its
        progress recorded in the same transaction; None when another process already applied them."""
        return self._ingest(alerts, truncated, (delivery_id, offset))

    def _ingest(
        self, alerts: list[AlertIn], truncated_alerts: int, delivery: tuple[int, int] | None
    ) -> IngestResult | None:
        if delivery is None:  # a stored delivery's alerts were admitted when it was accepted
            alerts = [admit(a) for a in alerts]
        for attempt in range(RACE_RETRIES):
            try:
                batch = self._ingest_once(alerts, truncated_alerts, delivery)
                break
            except DBAPIError as exc:
                if attempt == RACE_RETRIES - 1 or not _lost_race(exc):
                    raise
                log.info("a concurrent delivery touched the same incidents; trying again (%s)", exc.orig)
        if batch is None:
            return None
        result = batch.result
        for source, n in Counter(a.source for a in alerts).items():
            self.metrics.alerts_received.labels(source=source).inc(n)
        for category in batch.opened_categories:
            self.metrics.incidents_opened.labels(category=category).inc()
        for incident_id in batch.to_resolve:
            if self._close_resolved(incident_id):
                result.resolved.append(incident_id)
        if result.opened or result.reopened or result.updated or result.resolved:
            self._kick()
        return result

    def _ingest_once(
        self, alerts: list[AlertIn], truncated: int, delivery: tuple[int, int] | None
    ) -> _Batch | None:
        now = self.clock.now()
        config = self._config()
        intake = config.intake
        with session_scope(self.engine) as s:
            if delivery is not None:
                delivery_id, offset = delivery
                query = select(Delivery).where(
                    Delivery.id == delivery_id, Delivery.status == "pending", Delivery.applied == offset
                )
                row = s.exec(query.with_for_update()).first()
                if row is None:
                    return None  # applied already, by another process
                row.applied = offset + len(alerts)
                if row.applied >= row.count:
                    row.status, row.done_at = "done", now
                s.add(row)
            desk = StormDesk(
                s, now, self.composer, intake.storm_threshold, intake.storm_window, intake.debounce
            )
            b = _Batch(s, now, config, desk, self._rules(config), truncated)
            fingerprints = {a.fingerprint for a in alerts}
            open_by_fp = self._lookup(s, "fingerprint", fingerprints)
            keys = {a.fingerprint: target_key(a.labels, self.cluster) for a in alerts}
            wanted = {k for fp, k in keys.items() if k and fp not in open_by_fp}
            open_by_target = self._lookup(s, "target_key", wanted)
            recent = self._lookup(
                s, "fingerprint", fingerprints - open_by_fp.keys(), now - intake.flap_window
            )
            recent_by_target = self._lookup(
                s, "target_key", wanted - open_by_target.keys(), now - intake.same_target_window
            )
            rows: list[dict[str, Any]] = []
            for alert in alerts:
                fp, key = alert.fingerprint, keys[alert.fingerprint]
                inc = open_by_fp.get(fp) or (open_by_target.get(key) if key else None)
                if inc is not None and inc.fingerprint != fp:
                    self._join(b, inc, alert)  # another source reporting the same failure
                done = recent_by_target.get(key) if key else None
                if alert.status == "resolved":
                    if inc is not None:
                        self._resolved(b, inc)
                    target = inc or recent.get(fp)
                elif inc is not None:
                    self._repeat(b, inc, alert)
                    target = inc
                elif fp in recent:
                    target = open_by_fp[fp] = recent.pop(fp)
                    self._reopen(b, target, alert)
                elif done is not None and _before(alert, done.resolved_at):
                    # the failure an incident already handled, reported late by another source
                    self._join(b, done, alert)
                    target = done
                else:
                    target = open_by_fp[fp] = self._open(s, alert, now, batch=b, key=key)
                    if key:
                        open_by_target[key] = target
                    b.result.opened.append(target.id or 0)
                if target is not None and alert.status == "firing":
                    self._note_truncated(b, target)
                rows.append(_alert_values(alert, now, target.id if target is not None else None))
                b.result.accepted += 1
            desk.finish()
            for inc in b.refresh.values():
                self._refresh_root(s, inc, now, immediate=False)
                s.add(inc)
            if rows:
                s.execute(insert(Alert), rows)
        return b

    # -- lookups ----------------------------------------------------------------------------------------
    def _lookup(
        self, s: Session, by: str, values: set[str], resolved_since: datetime | None = None
    ) -> dict[str, Incident]:
        """Incidents by `by` (fingerprint or target_key): the open one per value, or with `resolved_since`
        the newest one resolved after it. Locked on PostgreSQL, so concurrent deliveries about the same
        incident apply one after the other."""
        column = getattr(Incident, by)
        found: dict[str, Incident] = {}
        for chunk in _chunks(sorted(values)):
            query = select(Incident).where(col(column).in_(chunk)).order_by(col(Incident.id))
            if resolved_since is None:
                query = query.where(Incident.status != IncidentStatus.RESOLVED.value)
            else:
                query = query.where(
                    Incident.status == IncidentStatus.RESOLVED.value,
                    col(Incident.resolved_at) >= resolved_since,
                )
            if is_postgres(self.engine):
                query = query.with_for_update()
            for inc in s.exec(query):
                found[getattr(inc, by) or ""] = inc  # ordered by id: the newest wins
        return found

    # -- what an alert does to its incident -------------------------------------------------------------
    def _repeat(self, b: _Batch, inc: Incident, alert: AlertIn) -> None:
        key = _occurrence(alert)
        window = max(b.config.intake.debounce, SAME_NOTIFICATION)
        if (
            key is not None
            and key == inc.last_alert_key
            and inc.last_alert_at is not None
            and b.now - inc.last_alert_at < window
        ):
            b.result.duplicates += 1  # the same notification again: an HA pair or a group re-send
            return
        inc.alert_count += 1
        inc.last_alert_at, inc.last_alert_key = b.now, key
        inc.group_key = inc.group_key or alert.group_key
        inc.updated_at = b.now
        if inc.alert_resolved_at is not None:
            inc.alert_resolved_at = None  # firing again: the "alert resolved" line goes away
            timeline(b.s, inc.id or 0, b.now, "alert_firing_again", None, source=alert.source)
            self._update_level_message(b.s, inc, b.now)
        b.s.add(inc)
        b.result.updated.append(inc.id or 0)
        b.desk.repeat(inc)
        b.refresh[inc.id or 0] = inc

    def _join(self, b: _Batch, inc: Incident, alert: AlertIn) -> None:
        """Record on `inc` that another source reports the same failure (once per source)."""
        if alert.source in inc.sources:
            return
        inc.sources = [*inc.sources, alert.source]
        inc.updated_at = b.now
        b.s.add(inc)
        timeline(
            b.s, inc.id or 0, b.now, "source_joined", None, source=alert.source, fingerprint=alert.fingerprint
        )
        if inc.status != IncidentStatus.RESOLVED.value:
            b.refresh[inc.id or 0] = inc

    def _resolved(self, b: _Batch, inc: Incident) -> None:
        if inc.alert_resolved_at is not None:
            b.result.duplicates += 1  # already told (an HA pair, or a repeat of the resolved notice)
            return
        inc.alert_resolved_at = b.now
        inc.last_alert_at, inc.last_alert_key = b.now, "resolved"
        b.s.add(inc)
        timeline(b.s, inc.id or 0, b.now, "alert_resolved_received", None, source=inc.source)
        if inc.status == IncidentStatus.L1_RUNNING.value:
            b.to_resolve.append(inc.id or 0)
        else:
            # people own it now: say so on their message, and let them close it
            self._update_level_message(b.s, inc, b.now)

    def _reopen(self, b: _Batch, inc: Incident, alert: AlertIn) -> None:
        """A resolved incident fires again inside the flap window: reopen it and run Level 1 again."""
        resolved_at = inc.resolved_at
        inc.status, inc.level = IncidentStatus.L1_RUNNING.value, Level.L1.value
        inc.resolved_at = inc.resolved_by = inc.resolved_level = inc.resolution_note = None
        inc.acked_at = inc.acked_by = inc.alert_resolved_at = None
        inc.reopened_count += 1
        inc.alert_count += 1
        # Level 1's budget counts from opened_at; the first opening stays in the timeline
        inc.opened_at = inc.updated_at = inc.last_alert_at = b.now
        inc.last_alert_key = _occurrence(alert)
        inc.version += 1
        b.s.add(inc)
        timeline(
            b.s,
            inc.id or 0,
            b.now,
            "reopened",
            None,
            source=alert.source,
            reopened_count=inc.reopened_count,
            resolved_at=resolved_at.isoformat() if resolved_at else None,
        )
        self._start_l1(b.s, inc, policy_of(inc), b.now)
        self._refresh_root(b.s, inc, b.now, immediate=True)
        b.refresh.pop(inc.id or 0, None)
        b.result.reopened.append(inc.id or 0)

    def _note_truncated(self, b: _Batch, inc: Incident) -> None:
        if b.truncated == inc.truncated_alerts:
            return
        inc.truncated_alerts = b.truncated
        b.s.add(inc)
        if b.truncated:
            timeline(b.s, inc.id or 0, b.now, "alerts_truncated", None, truncated=b.truncated)
        if inc.id not in b.result.opened:  # a new root message already says so
            b.refresh[inc.id or 0] = inc

    def _close_resolved(self, incident_id: int) -> bool:
        """The alert resolved while Level 1 still ran: close the incident and say so on its message."""

        def apply(s: Session, inc: Incident) -> None:
            self._refresh_root(s, inc, self.clock.now(), immediate=True)

        try:
            self.incidents.transition(
                incident_id, Event.ALERT_RESOLVED, None, apply=apply, note="the alert resolved"
            )
            return True
        except Conflict:
            # Level 1 escalated in the meantime: mark the escalation message instead
            with session_scope(self.engine) as s:
                inc = s.exec(select(Incident).where(Incident.id == incident_id).with_for_update()).one()
                if inc.status != IncidentStatus.RESOLVED.value:
                    self._update_level_message(s, inc, self.clock.now())
            self._kick()
            return False

    # -- Slack messages ---------------------------------------------------------------------------------
    def _refresh_root(self, s: Session, inc: Incident, now: datetime, *, immediate: bool) -> None:
        """Show the incident's state on its root message: now, or at most once per debounce interval."""
        if inc.storm_id is not None or not inc.alert_outbox_id:
            return  # its root is a storm summary or another bot's message
        last = inc.message_updated_at or inc.opened_at
        not_before = now if immediate else last + self._config().intake.debounce
        new_id = refresh_message(
            s,
            now,
            post_id=inc.alert_outbox_id,
            update_id=inc.root_update_outbox_id,
            not_before=not_before,
            payload=self.composer.alert_message(inc),
        )
        if new_id is not None:
            inc.root_update_outbox_id = new_id
            inc.message_updated_at = max(now, not_before)
            s.add(inc)

    def _update_level_message(self, s: Session, inc: Incident, now: datetime) -> None:
        """Re-render the message of the level the incident waits at (it shows the alert's state)."""
        c = self.composer
        if inc.level == Level.L4.value:
            dec = s.exec(
                select(Decision).where(Decision.incident_id == inc.id).order_by(col(Decision.id).desc())
            ).first()
            if dec is None or not dec.outbox_id:
                return
            line = None
            if dec.status == "decided":
                line = c.outcome(
                    "decided",
                    dec.chosen_by,
                    dec.chosen_at or now,
                    choice=dec.chosen_label or "",
                    note=dec.rationale,
                )
            enqueue(
                s, now, "update", incident_id=inc.id, target_of=dec.outbox_id, **c.decision(inc, dec, line)
            )
            return
        esc = s.exec(
            select(Escalation)
            .where(Escalation.incident_id == inc.id, Escalation.level == inc.level)
            .order_by(col(Escalation.id).desc())
        ).first()
        if esc is None or not esc.outbox_id:
            return
        payload = c.escalation(inc, esc, IncidentStatus(inc.status), esc.outcome)
        enqueue(s, now, "update", incident_id=inc.id, target_of=esc.outbox_id, **payload)

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
        batch: _Batch | None = None,
        key: str | None = None,
    ) -> Incident:
        config = batch.config if batch else self._config()
        cls = classify(alert, batch.rules if batch else self._rules(config))
        policy = batch.policies.get(cls.category) if batch else None
        if policy is None:
            policy = policy_from_config(config, cls.category)
            if batch:
                batch.policies[cls.category] = policy
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
            group_key=alert.group_key,
            truncated_alerts=batch.truncated if batch else 0,
            last_alert_at=now,
            last_alert_key=_occurrence(alert),
            target_key=key,
            sources=[alert.source],
        )
        s.add(inc)
        s.flush()
        if batch:
            batch.opened_categories.append(cls.category.value)
        else:
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
            group_key=alert.group_key,
        )
        if inc.truncated_alerts:
            timeline(s, inc.id or 0, now, "alerts_truncated", None, truncated=inc.truncated_alerts)
        if level is Level.L1:
            if alert.slack_channel and alert.slack_ts:
                # the alert is already a Slack message: its thread is where Level 1 reports
                inc.alert_channel, inc.alert_ts = alert.slack_channel, alert.slack_ts
            else:
                channel = policy.channels["alerts"]
                storm = batch.desk.place(inc, channel) if batch else None
                inc.root_channel = channel  # after place(): it counts the incidents already there
                if storm is not None:
                    # in a storm the summary is the root: Level 1 reports in its thread
                    inc.storm_id, inc.alert_outbox_id = storm.id, storm.outbox_id
                else:
                    root = enqueue(
                        s,
                        now,
                        "post",
                        incident_id=inc.id,
                        channel=channel,
                        **self.composer.alert_message(inc),
                    )
                    inc.alert_outbox_id = root.id
            s.add(inc)
            self._start_l1(s, inc, policy, now)
        return inc

    @staticmethod
    def _start_l1(s: Session, inc: Incident, policy: Policy, now: datetime) -> None:
        s.add(Timer(incident_id=inc.id, kind="run_l1", due_at=now, created_at=now))
        s.add(
            Timer(
                incident_id=inc.id,
                kind="l1_deadline",
                created_at=now,
                due_at=now + timedelta(seconds=policy.l1_budget_s + L1_GRACE_S),
            )
        )

    def escalate_by_hand(self, user_id: str, fields: dict[str, str]) -> Reply:
        """/escalate: open the incident at L2 and say where it went."""
        inc = self.open_manual(user_id, fields)
        return Reply(
            f"INC-{inc.id} is open and posted to {policy_of(inc).channels['coordinator']} for Level 2."
        )

    def open_manual(self, user_id: str, fields: dict[str, str]) -> Incident:
        """A person's /escalate: the five fields go straight to Level 2 (a person already tried Level 1)."""
        fields = {k: scrub(str(v))[:3000] for k, v in fields.items()}
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
                "attempted": fields.get("attempted") or "Nothing recorded as tried yet (opened by hand)",
                "impact": fields.get("impact") or "Not stated",
                "infrastructure": fields.get("infrastructure") or "Not stated",
                "request": request,
            }
            inc = self._open(s, alert, now, opened_by=user_id, fields=filled, level=Level.L2)
            s.add(Alert(**_alert_values(alert, now, inc.id)))
            incident_id = inc.id or 0
        self.incidents.transition(incident_id, Event.L1_FAILED, user_id, note="opened by hand")
        return self.incidents.get(incident_id)


def _occurrence(alert: AlertIn) -> str | None:
    """Which firing of an alert this is, when the source says (Alertmanager's startsAt)."""
    if alert.starts_at is None:
        return None
    return f"{alert.status}|{alert.starts_at.isoformat()}"[:80]


def _before(alert: AlertIn, resolved_at: datetime | None) -> bool:
    """Whether the alert's failure started before its target's incident was resolved (unknown: yes)."""
    if alert.starts_at is None or resolved_at is None:
        return True
    resolved = resolved_at if resolved_at.tzinfo else resolved_at.replace(tzinfo=UTC)
    return alert.starts_at <= resolved


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _lost_race(exc: DBAPIError) -> bool:
    """A concurrent delivery opened the same incident first (unique index), or a deadlock between two."""
    if isinstance(exc, IntegrityError):
        return True
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(exc, OperationalError) and code in {"40P01", "40001"}


def _alert_values(alert: AlertIn, now: datetime, incident_id: int | None) -> dict[str, Any]:
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
