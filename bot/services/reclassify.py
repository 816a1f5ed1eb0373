"""Level 1's first step: read the target, and let its evidence settle the category.

Which decision wins, strongest first: a `category` label on the alert, a rule in app.yaml, the target's
own evidence, what the source reported, the alert's name and text (`Basis`). When the evidence names
another category and may override, the incident is re-classified: the new category, its reason and the
one it replaced are stored, the change goes on the timeline and the root alert message shows it, and
Level 1 goes on with the new category's checks, remediations and L2 Request. When a label or app.yaml
rule keeps the category, that is on the timeline too. What the reads found that the alert did not say
(the Job that owns the pod, the MLflow run the Job carries) joins the incident's target.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from bot.config import AppConfig
from bot.core.clock import Clock
from bot.core.models import Basis, Category, CheckResult, CheckStatus, IncidentStatus, Target
from bot.core.policy import Policy
from bot.diagnostics.base import Context
from bot.diagnostics.runner import run_checks
from bot.diagnostics.triage import TriageCheck
from bot.services.engine import IncidentEngine
from bot.services.records import incident, timeline
from bot.store.db import session_scope
from bot.store.tables import Incident

TARGET_FIELDS = frozenset(Target.__dataclass_fields__)


def basis_of(inc: Incident) -> Basis:
    try:
        return Basis(inc.classified_by)
    except ValueError:
        return Basis.NAME


class Triage:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        incidents: IncidentEngine,
        store_finding: Callable[[int, CheckResult], None],
        config: Callable[[], AppConfig],
    ) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock
        self.incidents = incidents
        self._store_finding = store_finding

    def run(self, inc: Incident, ctx: Context, policy: Policy) -> Incident:
        """Triage `inc` within the check timeout and what is left of the Level 1 budget; returns the
        incident as it now stands (`ctx` follows its category and target)."""
        deadline = inc.opened_at + timedelta(seconds=policy.l1_budget_s)
        remaining = (deadline - self.clock.now()).total_seconds()
        if remaining <= 0:
            return inc
        [finding] = run_checks([TriageCheck()], ctx, min(policy.check_timeout_s, remaining))
        if finding.status is CheckStatus.SKIPPED:
            return inc
        ctx.findings.append(finding)
        self._store_finding(inc.id or 0, finding)
        facts = finding.facts
        if facts.get("unread"):
            return self._unread(inc.id or 0, str(facts["unread"]))
        named = facts.get("triage_category")
        found = Category(named) if named else None
        added = {
            k: str(v)
            for k, v in (facts.get("target") or {}).items()
            if k in TARGET_FIELDS and v and not inc.target.get(k)
        }
        if not added and (found is None or found.value == inc.category):
            return inc
        inc = self._record(inc.id or 0, found, str(facts.get("triage_reason") or ""), added)
        ctx.category = Category(inc.category)
        ctx.target = Target(**{k: v for k, v in inc.target.items() if k in TARGET_FIELDS})
        return inc

    def _unread(self, incident_id: int, unread: str) -> Incident:
        """The target could not be read: the category rests on the alert alone, and its reason says so."""
        now = self.clock.now()
        with session_scope(self.engine) as s:
            inc = incident(s, incident_id, lock=True)
            if inc.status != IncidentStatus.L1_RUNNING.value or unread in inc.classification_reason:
                return inc
            rests = f"{unread}, so this rests on the alert alone"
            inc.classification_reason = f"{inc.classification_reason}; {rests}"
            inc.updated_at = now
            s.add(inc)
            self.incidents.refresh.root(s, inc, now, immediate=True)
            return inc

    def _record(
        self, incident_id: int, found: Category | None, reason: str, added: dict[str, str]
    ) -> Incident:
        now = self.clock.now()
        with session_scope(self.engine) as s:
            inc = incident(s, incident_id, lock=True)
            if inc.status != IncidentStatus.L1_RUNNING.value:
                return inc  # people took it over meanwhile; their view of it stands
            if added:
                inc.target = {**inc.target, **added}
                timeline(s, incident_id, now, "target_found", None, **added)
            basis = basis_of(inc)
            if found is not None and found.value != inc.category:
                if basis.evidence_may_override:
                    moved: dict[str, Any] = {"from": inc.category, "to": found.value, "reason": reason}
                    timeline(s, incident_id, now, "reclassified", None, **moved)
                    inc.reclassified_from = inc.category
                    inc.category = found.value
                    inc.classification_reason = reason
                    inc.classified_by = Basis.EVIDENCE.value
                    # the decision a person may be asked for at L4 is the new category's
                    template = self.config().decisions.for_category(found.value)
                    inc.policy = {**inc.policy, "decision_template": template.model_dump()}
                    self.incidents.refresh.root(s, inc, now, immediate=True)
                else:
                    timeline(
                        s,
                        incident_id,
                        now,
                        "classification_kept",
                        None,
                        category=inc.category,
                        evidence=found.value,
                        reason=reason,
                        kept_by=inc.classification_reason,
                    )
            inc.updated_at = now
            s.add(inc)
            return inc
