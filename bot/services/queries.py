"""What commands (and the App Home) read: one incident with its findings and timeline, the open ones, and
how incidents ended against the protocol's targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from bot.core.evidence import Evidence
from bot.core.models import IncidentStatus
from bot.services import evidence, usage
from bot.services.records import incident
from bot.services.stats import Report, period_counts
from bot.services.stats import report as stats_report
from bot.store.tables import Finding, Incident, TimelineEvent


class IncidentQueries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, incident_id: int) -> Incident:
        with Session(self.engine) as s:
            return incident(s, incident_id)

    def details(self, incident_id: int) -> tuple[Incident, list[Finding], list[TimelineEvent]]:
        with Session(self.engine) as s:
            inc = incident(s, incident_id)
            findings = list(s.exec(select(Finding).where(Finding.incident_id == incident_id)))
            events = select(TimelineEvent).where(TimelineEvent.incident_id == incident_id)
            return inc, findings, list(s.exec(events.order_by(col(TimelineEvent.id))))

    def evidence(self, incident_id: int) -> Evidence:
        """The checks and remediations of the incident's latest Level 1 run, by their human names."""
        with Session(self.engine) as s:
            return evidence.load(s, incident(s, incident_id))

    def llm_tokens(self, incident_id: int) -> int:
        """Tokens Claude used on this incident (its investigation, drafts and answers)."""
        return usage.tokens_of(self.engine, incident_id)

    def open_incidents(self, limit: int = 20) -> list[Incident]:
        with Session(self.engine) as s:
            query = select(Incident).where(Incident.status != IncidentStatus.RESOLVED.value)
            return list(s.exec(query.order_by(col(Incident.id).desc()).limit(limit)))

    def count_open(self) -> int:
        with Session(self.engine) as s:
            query = select(func.count()).select_from(Incident)
            return int(s.exec(query.where(Incident.status != IncidentStatus.RESOLVED.value)).one())

    def stats(self, since: datetime | None = None, until: datetime | None = None) -> dict[str, int]:
        """How incidents opened in [since, until) ended, as the counts bot.core.targets compares with the
        protocol's targets (total, resolved, open, resolved_l1, beyond_l1, resolved_l2, reached_l4; defined
        in bot.services.stats); of all incidents when `since` is None. One aggregate query."""
        start = since if since is not None else datetime(1970, 1, 1, tzinfo=UTC)
        end = until if until is not None else datetime(9999, 1, 1, tzinfo=UTC)
        return period_counts(self.engine, start, end)

    def report(self, end: datetime, period: timedelta) -> Report:
        """The stats of the incidents opened in [end - period, end) and of the period before."""
        return stats_report(self.engine, end, period)
