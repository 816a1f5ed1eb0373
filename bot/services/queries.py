"""What commands (and the App Home) read: one incident with its findings and timeline, the open ones, and
how incidents ended against the protocol's targets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from bot.core.evidence import Evidence
from bot.core.models import IncidentStatus
from bot.services import evidence, usage
from bot.services.records import incident
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

    def stats(self, since: datetime | None = None) -> dict[str, Any]:
        """Level rates as the protocol states its targets: resolved at L1 of all, resolved at L2 of those
        that reached people, reaching L4 of all; of the incidents opened `since`, or of all. The counts
        they are computed from come with them (bot.core.targets compares those)."""
        query = select(Incident.level, Incident.status)
        if since is not None:
            query = query.where(col(Incident.opened_at) >= since)
        with Session(self.engine) as s:
            rows = list(s.exec(query))
        resolved = [lvl for lvl, st in rows if st == IncidentStatus.RESOLVED.value]
        beyond = [lvl for lvl, _ in rows if lvl != "L1"]
        reached_l4 = sum(1 for lvl, _ in rows if lvl == "L4")

        def pct(a: int, b: int) -> int:
            return round(100 * a / b) if b else 0

        return {
            "total": len(rows),
            "resolved": len(resolved),
            "resolved_l1": resolved.count("L1"),
            "resolved_l2": resolved.count("L2"),
            "beyond_l1": len(beyond),
            "reached_l4": reached_l4,
            "l1_pct": pct(resolved.count("L1"), len(rows)),
            "l2_pct": pct(resolved.count("L2"), len(beyond)),
            "l4_pct": pct(reached_l4, len(rows)),
        }
