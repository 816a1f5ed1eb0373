"""The record of remediation attempts: each one written (as "applying") and committed before it is
applied, then completed with what it did. An attempt a dead process left "applying" is marked
interrupted and never applied again; what it left behind in the cluster (a re-run Job, labelled with its
incident and remediation) is found and recorded."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.core.clock import Clock
from bot.core.errors import BotError, Superseded
from bot.core.models import AttemptResult, AttemptStatus, Risk
from bot.diagnostics.base import Deps
from bot.diagnostics.kube_common import INCIDENT_LABEL, REMEDIATION_ANNOTATION
from bot.metrics import Metrics
from bot.store.db import session_scope
from bot.store.tables import Incident, RemediationAttempt

log = logging.getLogger(__name__)

# Called inside the transaction that records an attempt as being applied: False when this process no
# longer holds the work (another took it over), and nothing is applied.
Fence = Callable[[Session], bool]

INTERRUPTED = "the bot stopped while applying this; its outcome is unknown, so it is not applied again"


class AttemptLog:
    def __init__(self, engine: Engine, clock: Clock, deps: Deps, metrics: Metrics) -> None:
        self.engine = engine
        self.clock = clock
        self.deps = deps
        self.metrics = metrics

    def begin(self, incident_id: int, a: AttemptResult, fence: Fence | None) -> int:
        """Record an attempt as being applied, committed before it is: if the process dies while applying
        it, the next run finds it and does not apply it again. Refuses when this run lost its claim."""
        with session_scope(self.engine) as s:
            if fence is not None and not fence(s):
                raise Superseded(
                    f"another process took over; {a.name} attempt {a.attempt} is not applied here"
                )
            row = RemediationAttempt(
                incident_id=incident_id,
                name=a.name,
                attempt=a.attempt,
                risk=a.risk.value,
                status=AttemptStatus.APPLYING.value,
                plan=a.plan,
                summary=a.summary,
                evidence=a.evidence,
                at=self.clock.now(),
                applied_at=self.clock.now(),
            )
            s.add(row)
            s.flush()
            return row.id or 0

    def earlier(self, inc: Incident) -> list[AttemptResult]:
        """Attempts applied in this opening of the incident by an earlier run (one that died); those left
        "applying" are marked interrupted: their outcome is unknown and they are not applied again."""
        with session_scope(self.engine) as s:
            rows = list(
                s.exec(
                    select(RemediationAttempt)
                    .where(
                        col(RemediationAttempt.incident_id) == inc.id,
                        col(RemediationAttempt.applied_at).is_not(None),
                        col(RemediationAttempt.applied_at) >= inc.opened_at,
                        col(RemediationAttempt.attempt) > 0,
                    )
                    .order_by(col(RemediationAttempt.id))
                )
            )
            for row in rows:
                if row.status == AttemptStatus.APPLYING.value:
                    self._interrupted(s, inc, row)
            return [
                AttemptResult(
                    r.name,
                    r.attempt,
                    AttemptStatus(r.status),
                    r.summary,
                    r.plan,
                    Risk(r.risk),
                    dict(r.evidence),
                )
                for r in rows
            ]

    def _interrupted(self, s: Session, inc: Incident, row: RemediationAttempt) -> None:
        """Mark an attempt its process died applying as interrupted, and record what it left behind when
        that can be found (a re-run Job is labelled with its incident and remediation)."""
        row.status, row.summary = AttemptStatus.INTERRUPTED.value, INTERRUPTED
        found = self._left_behind(s, inc, row)
        if found is not None:
            row.evidence = {**row.evidence, **found}
            row.summary = (
                f"the bot stopped while applying this; it had created Job {found['response']['name']}, "
                "whose outcome was not followed, so nothing is applied again"
            )
        s.add(row)
        self.metrics.remediations.labels(name=row.name, status=row.status).inc()

    def _left_behind(self, s: Session, inc: Incident, row: RemediationAttempt) -> dict[str, Any] | None:
        """The Job an interrupted attempt created, if the cluster has one no other attempt accounts for."""
        ns = (inc.target or {}).get("namespace")
        if self.deps.kube is None or not ns or row.applied_at is None:
            return None
        try:
            jobs = self.deps.kube.list_jobs(ns, f"{INCIDENT_LABEL}={inc.id}")
        except BotError as exc:
            log.info("INC-%s: could not look for what an interrupted attempt created: %s", inc.id, exc)
            return None
        recorded = {
            (a.evidence.get("response") or {}).get("name")
            for a in s.exec(select(RemediationAttempt).where(col(RemediationAttempt.incident_id) == inc.id))
        }
        since = row.applied_at.replace(tzinfo=UTC) if row.applied_at.tzinfo is None else row.applied_at
        for job in sorted(jobs, key=lambda j: j.metadata.creation_timestamp or since):
            meta = job.metadata
            created = meta.creation_timestamp if meta is not None else None
            if (
                meta is None
                or (meta.annotations or {}).get(REMEDIATION_ANNOTATION) != row.name
                or meta.name in recorded
                or (created is not None and created < since - timedelta(seconds=5))
            ):
                continue
            return {
                "call": f"LIST jobs {ns} {INCIDENT_LABEL}={inc.id}",
                "response": {"name": meta.name, "uid": meta.uid},
                "facts": {"job_name": meta.name},
                "recovered": "found after the restart",
            }
        return None

    def record(self, incident_id: int, a: AttemptResult, row_id: int | None = None) -> None:
        """Record what an attempt did: on its "applying" row when it has one, else as a new row. An attempt
        never applied (refused, dry run, not plannable) that a run which died had recorded already is
        recorded again on that row, not twice."""
        self.metrics.remediations.labels(name=a.name, status=a.status.value).inc()
        with session_scope(self.engine) as s:
            row = s.get(RemediationAttempt, row_id) if row_id else self._unapplied(s, incident_id, a)
            if row is None:
                row = RemediationAttempt(
                    incident_id=incident_id,
                    name=a.name,
                    attempt=a.attempt,
                    risk=a.risk.value,
                    status=a.status.value,
                    at=self.clock.now(),
                )
            row.status, row.plan, row.summary, row.evidence = a.status.value, a.plan, a.summary, a.evidence
            row.at = self.clock.now()
            s.add(row)

    @staticmethod
    def _unapplied(s: Session, incident_id: int, a: AttemptResult) -> RemediationAttempt | None:
        inc = s.get(Incident, incident_id)
        if inc is None or a.attempt == 0:
            return None
        return s.exec(
            select(RemediationAttempt).where(
                col(RemediationAttempt.incident_id) == incident_id,
                col(RemediationAttempt.name) == a.name,
                col(RemediationAttempt.attempt) == a.attempt,
                col(RemediationAttempt.applied_at).is_(None),
                col(RemediationAttempt.at) >= inc.opened_at,
            )
        ).first()

    def decided(self, incident_id: int, decision_id: int | None) -> tuple[bool, str] | None:
        """What became of a decision's action applied earlier (None when it never was)."""
        if decision_id is None:
            return None
        with session_scope(self.engine) as s:
            rows = s.exec(
                select(RemediationAttempt).where(
                    col(RemediationAttempt.incident_id) == incident_id,
                    col(RemediationAttempt.attempt) == 0,
                    col(RemediationAttempt.applied_at).is_not(None),
                )
            )
            row = next((r for r in rows if r.evidence.get("decision_id") == decision_id), None)
            if row is None:
                return None
            if row.status == AttemptStatus.APPLYING.value:
                inc = s.get(Incident, incident_id)
                if inc is not None:
                    self._interrupted(s, inc, row)
            return row.status == AttemptStatus.FIXED.value, row.summary
