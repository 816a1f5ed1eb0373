"""Intake: alerts are stored, deduplicated into incidents and handed to Level 1, in one transaction,
before the sender gets its answer."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine, insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session, col, select

from bot.config import AppConfig
from bot.core.classify import target_key
from bot.core.clock import Clock
from bot.core.errors import Conflict
from bot.core.models import AlertIn, IncidentStatus
from bot.core.policy import Event
from bot.core.untrusted import admit
from bot.logs import about
from bot.metrics import Metrics
from bot.services.alert_batch import Batch, IngestResult, started_before
from bot.services.engine import IncidentEngine
from bot.services.opening import alert_row
from bot.services.records import incident
from bot.services.snapshot import rules_of
from bot.services.storm import StormDesk
from bot.store.db import is_postgres, session_scope
from bot.store.tables import Alert, Delivery, Incident

log = logging.getLogger(__name__)

RACE_RETRIES = 5


class IntakeService:
    """Alerts in, incidents out: one incident per fingerprint among open incidents, repeats counted,
    flapping alerts reopen their incident, storms summarised. Every alert row is stored either way.

    Alertmanager groups: each alert of a group is its own incident (per fingerprint); the incident keeps
    the groupKey it arrived in, so the group can be read back, and a storm summary groups by pipeline."""

    def __init__(
        self,
        transitions: IncidentEngine,
        clock: Clock,
        config: Callable[[], AppConfig],
        metrics: Metrics,
        kick: Callable[[], None],
        cluster: str = "default",
    ) -> None:
        self.transitions = transitions
        self.db: Engine = transitions.engine
        self.cluster = cluster
        self.clock = clock
        self._config = config
        self.metrics = metrics
        self._kick = kick

    def ingest(self, alerts: list[AlertIn], *, truncated_alerts: int = 0) -> IngestResult:
        """Store every alert and open, update, reopen or close incidents; committed before this returns.

        `truncated_alerts` is what the delivery says its sender left out (Alertmanager's max_alerts).
        Every alert is cleaned and redacted here, once, before anything of it is stored."""
        with about(source=_sources(alerts)):
            result = self._ingest([admit(a) for a in alerts], truncated_alerts, None)
        assert result is not None  # only a stored delivery can have been applied by someone else
        return result

    def apply_delivery(
        self, delivery_id: int, offset: int, alerts: list[AlertIn], truncated: int
    ) -> IngestResult | None:
        """`ingest` for the alerts of a stored delivery (admitted when it was stored) from `offset` on, its
        progress recorded in the same transaction; None when another process already applied them."""
        with about(source=_sources(alerts)):
            return self._ingest(alerts, truncated, (delivery_id, offset))

    def _ingest(
        self, alerts: list[AlertIn], truncated: int, delivery: tuple[int, int] | None
    ) -> IngestResult | None:
        for attempt in range(RACE_RETRIES):
            try:
                batch = self._ingest_once(alerts, truncated, delivery)
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
        for incident_id in result.opened:
            with about(incident=incident_id, level="L1"):
                log.info("INC-%s opened from %s", incident_id, _sources(alerts))
        closed = [i for i in batch.to_resolve if self._close_resolved(i)]
        result.resolved.extend(closed)
        if closed and delivery is not None:
            self._record_closed(delivery[0], closed)
        if result.opened or result.reopened or result.updated or result.resolved:
            self._kick()
        return result

    def _ingest_once(
        self, alerts: list[AlertIn], truncated: int, delivery: tuple[int, int] | None
    ) -> Batch | None:
        now = self.clock.now()
        config = self._config()
        intake = config.intake
        with session_scope(self.db) as s:
            progress = None
            if delivery is not None:
                progress = _take_progress(s, now, delivery, len(alerts))
                if progress is None:
                    return None  # applied already, by another process
            composer = self.transitions.composer
            desk = StormDesk(s, now, composer, intake.storm_threshold, intake.storm_window, intake.debounce)
            b = Batch(s, now, config, desk, self.transitions.refresh, rules_of(config), truncated)
            b.delivery_id = delivery[0] if delivery is not None else None
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
            rows = []
            for alert in alerts:
                fp, key = alert.fingerprint, keys[alert.fingerprint]
                inc = open_by_fp.get(fp) or (open_by_target.get(key) if key else None)
                if inc is not None and inc.fingerprint != fp:
                    b.join(inc, alert)  # another source reporting the same failure
                done = recent_by_target.get(key) if key else None
                if alert.status == "resolved":
                    if inc is not None:
                        b.resolved(inc)
                    target = inc or recent.get(fp)
                elif inc is not None:
                    b.repeat(inc, alert)
                    target = inc
                elif fp in recent:
                    target = open_by_fp[fp] = recent.pop(fp)
                    b.reopen(target, alert)
                elif done is not None and started_before(alert, done.resolved_at):
                    # the failure an incident already handled, reported late by another source
                    b.join(done, alert)
                    target = done
                else:
                    target = open_by_fp[fp] = b.open(alert, key)
                    if key:
                        open_by_target[key] = target
                if target is not None and alert.status == "firing":
                    b.note_truncated(target)
                rows.append(alert_row(alert, now, target.id if target is not None else None))
                b.result.accepted += 1
            b.finish()
            if rows:
                s.execute(insert(Alert), rows)
            if progress is not None:  # what became of the alerts, committed with them
                progress.result = b.result.added_to(progress.result)
                s.add(progress)
        return b

    def _lookup(
        self, s: Session, by: str, values: set[str], resolved_since: datetime | None = None
    ) -> dict[str, Incident]:
        """Incidents by `by` (fingerprint or target_key): the open one per value, or with `resolved_since`
        the newest one resolved after it. Locked on PostgreSQL, so concurrent deliveries about the same
        incident apply one after the other."""
        column = getattr(Incident, by)
        found: dict[str, Incident] = {}
        ordered = sorted(values)
        for chunk in (ordered[i : i + 500] for i in range(0, len(ordered), 500)):
            query = select(Incident).where(col(column).in_(chunk)).order_by(col(Incident.id))
            if resolved_since is None:
                query = query.where(Incident.status != IncidentStatus.RESOLVED.value)
            else:
                query = query.where(
                    Incident.status == IncidentStatus.RESOLVED.value,
                    col(Incident.resolved_at) >= resolved_since,
                )
            if is_postgres(self.db):
                query = query.with_for_update()
            for inc in s.exec(query):
                found[getattr(inc, by) or ""] = inc  # ordered by id: the newest wins
        return found

    def _record_closed(self, delivery_id: int, closed: list[int]) -> None:
        """Incidents a delivery closed after its commit (Level 1 was still running) join its result."""
        with session_scope(self.db) as s:
            row = s.exec(select(Delivery).where(Delivery.id == delivery_id).with_for_update()).one()
            row.result = {**row.result, "resolved": [*row.result.get("resolved", []), *closed]}
            s.add(row)

    def _close_resolved(self, incident_id: int) -> bool:
        """The alert resolved while Level 1 still ran: close the incident and say so on its message."""
        refresh = self.transitions.refresh

        def apply(s: Session, inc: Incident) -> None:
            refresh.root(s, inc, self.clock.now(), immediate=True)

        try:
            self.transitions.transition(
                incident_id, Event.ALERT_RESOLVED, None, apply=apply, note="the alert resolved"
            )
            return True
        except Conflict:
            # Level 1 escalated in the meantime: mark the escalation message instead
            with session_scope(self.db) as s:
                inc = incident(s, incident_id, lock=True)
                if inc.status != IncidentStatus.RESOLVED.value:
                    refresh.level(s, inc, self.clock.now())
            self._kick()
            return False


def _take_progress(s: Session, now: datetime, delivery: tuple[int, int], count: int) -> Delivery | None:
    """Record that a stored delivery's alerts from `offset` on are applied in this transaction; None when
    another process applied them already."""
    delivery_id, offset = delivery
    query = select(Delivery).where(
        Delivery.id == delivery_id, Delivery.status == "pending", Delivery.applied == offset
    )
    row = s.exec(query.with_for_update()).first()
    if row is None:
        return None
    row.applied = offset + count
    if row.applied >= row.count:
        row.status, row.done_at = "done", now
    return row


def _sources(alerts: list[AlertIn]) -> str:
    """Where alerts came from (alertmanager, mlflow, generic, ...), for the log."""
    return ",".join(sorted({a.source for a in alerts}))


def _lost_race(exc: DBAPIError) -> bool:
    """A concurrent delivery opened the same incident first (unique index), or a deadlock between two."""
    if isinstance(exc, IntegrityError):
        return True
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(exc, OperationalError) and code in {"40P01", "40001"}
