"""Level 1 for one incident: diagnostics and bounded self-recovery, then the report and the verdict."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.config import AppConfig
from bot.core.clock import Clock
from bot.core.errors import BotError, Conflict
from bot.core.models import (
    AttemptResult,
    AttemptStatus,
    Category,
    CheckResult,
    CheckStatus,
    IncidentStatus,
    L1Outcome,
    Target,
)
from bot.core.policy import Event, Policy, is_urgent
from bot.core.redact import redact, redact_obj
from bot.diagnostics.base import Context, Deps, RemediationPolicy
from bot.diagnostics.registry import CategoryDiagnostics
from bot.diagnostics.runner import Limits, Runner, outcome_of
from bot.integrations.slack.outbox import enqueue
from bot.metrics import Metrics
from bot.services.incidents import IncidentService
from bot.services.messages import Composer
from bot.store.db import session_scope
from bot.store.tables import Finding, Incident, RemediationAttempt

log = logging.getLogger(__name__)

IMPACT = {
    Category.PIPELINE_STEP_FAILED: "Downstream pipeline steps are blocked; what this step feeds is stale",
    Category.TRAINING_CRASH: "Model training does not complete; the next model version is delayed",
    Category.TRACKING_DISCONNECTED: "Runs cannot log metrics or artifacts; experiments are not reproducible",
    Category.MODEL_REGISTRATION_FAILED: "The new model version cannot be promoted or deployed",
    Category.FEATURE_STORE_ISSUE: "Training and serving may read stale or mismatched features",
    Category.ORCHESTRATION_TIMEOUT: "Scheduled pipeline runs miss their deadline; downstream jobs wait",
    Category.VERSION_INCOMPATIBILITY: "Jobs fail on start; model builds are not reproducible",
    Category.UNCLASSIFIED: "Unknown: the alert did not match a known failure category",
}


class Level1Service:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        incidents: IncidentService,
        composer: Composer,
        registry: dict[Category, CategoryDiagnostics],
        deps: Deps,
        metrics: Metrics,
        config: Callable[[], AppConfig],
    ) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock
        self.incidents = incidents
        self.composer = composer
        self.registry = registry
        self.deps = deps
        self.metrics = metrics

    def _context(self, inc: Incident, policy: Policy, findings: list[CheckResult] | None = None) -> Context:
        return Context(
            incident_id=inc.id or 0,
            category=Category(inc.category),
            target=Target(**inc.target),
            labels=dict(inc.labels),
            annotations=dict(inc.annotations),
            deps=self.deps,
            policy=RemediationPolicy(dict(policy.allowlist), policy.dry_run, tuple(policy.namespaces)),
            now=self.clock.now,
            sleep=self.clock.sleep,
            verify_poll_seconds=policy.verify_poll_s,
            findings=list(findings or []),
            config=self.config(),
        )

    def run(self, incident_id: int) -> L1Outcome | None:
        """Run Level 1 once for an incident that is still at Level 1; None when it already moved on."""
        inc = self.incidents.get(incident_id)
        if inc.status != IncidentStatus.L1_RUNNING.value:
            return None
        category = Category(inc.category)
        policy = Policy.from_dict(inc.policy)
        diagnostics = self.registry.get(category)
        ctx = self._context(inc, policy)
        if diagnostics is None or diagnostics.empty:
            outcome = L1Outcome(
                False,
                [],
                [],
                inc.title,
                f"no automatic diagnostics exist for {category.label} yet, so Level 1 tried nothing",
                "none",
                "❌ not fixed at Level 1; escalating to Level 2",
            )
        else:
            runner = Runner(self.clock.now)
            limits = Limits(policy.l1_max_attempts, policy.l1_budget_s, policy.check_timeout_s)
            runner.run(
                diagnostics,
                ctx,
                limits,
                inc.opened_at,
                on_finding=lambda f: self._store_finding(incident_id, f),
                on_attempt=lambda a: self._store_attempt(incident_id, a),
            )
            exhausted = self.clock.now() >= inc.opened_at + timedelta(seconds=policy.l1_budget_s)
            outcome = outcome_of(ctx, inc.title, exhausted, policy.l1_max_attempts)
        self.metrics.l1_runs.labels(
            category=category.value, outcome="fixed" if outcome.fixed else "escalated"
        ).inc()
        try:
            self.finish(incident_id, outcome)
        except Conflict:
            log.info("INC-%s moved on while Level 1 ran; its report is kept in the findings", incident_id)
        return outcome

    def finish(self, incident_id: int, outcome: L1Outcome) -> None:
        """Post the L1 report in the alert's thread and fix or escalate, in one transaction."""

        def apply(s: Session, inc: Incident) -> None:
            now = self.clock.now()
            report = self.composer.l1_report(inc, outcome)
            if inc.alert_outbox_id:
                enqueue(s, now, "post", incident_id=inc.id, thread_of=inc.alert_outbox_id, **report)
            elif inc.alert_channel:
                enqueue(
                    s,
                    now,
                    "post",
                    incident_id=inc.id,
                    channel=inc.alert_channel,
                    thread_ts=inc.alert_ts,
                    **report,
                )
            if not outcome.fixed:
                inc.fields = self.fields(inc, outcome)

        event = Event.L1_FIXED if outcome.fixed else Event.L1_FAILED
        self.incidents.transition(incident_id, event, None, apply=apply, result=outcome.result)

    def fields(self, inc: Incident, outcome: L1Outcome) -> dict[str, str]:
        """The five L2 fields, with what L1 actually checked and tried."""
        category = Category(inc.category)
        problem = f"{category.label.capitalize()}: {inc.title}"
        if outcome.error and outcome.error != inc.title:
            problem += f". Level 1 found: {outcome.error}"
        attempted = f"Level 1: {outcome.attempted}. {outcome.action}."
        impact = inc.annotations.get("impact") or IMPACT[category]
        if is_urgent(inc.labels):
            impact += "; a model deployment is at risk"
        target = ", ".join(f"{k} {v}" for k, v in inc.target.items() if v)
        infrastructure = "; ".join(filter(None, [self.infrastructure(category), target]))
        request = inc.annotations.get("request") or category.request_text
        return {
            "problem": problem[:1500],
            "attempted": attempted[:2000],
            "impact": impact[:500],
            "infrastructure": infrastructure[:500] or "not known",
            "request": request[:500],
        }

    def run_action(self, incident_id: int, name: str) -> tuple[bool, str]:
        """Carry out a remediation a person chose at L4 (the allowlist and caps still apply)."""
        inc = self.incidents.get(incident_id)
        policy = Policy.from_dict(inc.policy)
        remediation_cls = next(
            (r for d in self.registry.values() for r in d.remediations if r.name == name), None
        )
        if remediation_cls is None:
            return False, f"no remediation is named {name}"
        if name not in policy.allowlist:
            return False, f"{name} is not on the remediation allowlist, so nothing was run"
        with Session(self.engine) as s:
            rows = list(s.exec(select(Finding).where(col(Finding.incident_id) == incident_id)))
        findings = [
            CheckResult(
                r.check,
                CheckStatus(r.status),
                r.summary,
                r.evidence,
                r.duration_ms,
                dict(r.evidence.get("facts", {})),
            )
            for r in rows
        ]
        ctx = self._context(inc, policy, findings)
        remediation = remediation_cls()
        try:
            plan = remediation.plan(ctx, dict(policy.allowlist[name]))
            if plan is None:
                return False, f"{name} does not apply to what Level 1 found"
            if plan.refused:
                return False, f"{name} refused: {plan.refused}"
            if policy.dry_run:
                return False, f"dry run: would {plan.description}"
            applied = remediation.apply(ctx, plan)
            verdict = remediation.verify(
                ctx, plan, applied, self.clock.now() + timedelta(seconds=policy.l1_budget_s)
            )
        except BotError as exc:
            return False, f"{name} failed: {exc}"
        status = AttemptStatus.FIXED if verdict.fixed else AttemptStatus.FAILED
        self._store_attempt(
            incident_id,
            AttemptResult(
                name,
                0,
                status,
                redact(verdict.summary),
                plan.description,
                remediation.risk,
                redact_obj({**applied, "decided": True}),
            ),
        )
        return verdict.fixed, redact(verdict.summary)

    def infrastructure(self, category: Category) -> str:
        """The systems this category's Level 1 talks to, as configured (credentials redacted)."""
        systems = {
            Category.TRACKING_DISCONNECTED: ("mlflow", "kube"),
            Category.MODEL_REGISTRATION_FAILED: ("mlflow",),
            Category.FEATURE_STORE_ISSUE: ("sql", "kube"),
            Category.TRAINING_CRASH: ("kube", "mlflow"),
            Category.VERSION_INCOMPATIBILITY: ("kube", "mlflow"),
        }.get(category, ("kube",))
        parts = [getattr(self.deps, name).describe() for name in systems if getattr(self.deps, name, None)]
        return "; ".join(parts)

    def expire(self, incident_id: int) -> None:
        """The L1 deadline passed without a verdict (a hung step or a restart): escalate honestly."""
        inc = self.incidents.get(incident_id)
        if inc.status != IncidentStatus.L1_RUNNING.value:
            return
        with Session(self.engine) as s:
            findings = list(s.exec(select(Finding).where(col(Finding.incident_id) == incident_id)))
        attempted = "; ".join(f"{f.check} ({f.status}): {f.summary}" for f in findings) or "no check finished"
        outcome = L1Outcome(
            False,
            [],
            [],
            inc.title,
            attempted,
            "Level 1 did not finish within its budget",
            "❌ the Level 1 budget ran out; escalating to Level 2",
            True,
        )
        with contextlib.suppress(Conflict):
            self.finish(incident_id, outcome)

    def _store_finding(self, incident_id: int, f: CheckResult) -> None:
        with session_scope(self.engine) as s:
            evidence = {**f.evidence, "facts": f.facts} if f.facts else f.evidence
            s.add(
                Finding(
                    incident_id=incident_id,
                    check=f.name,
                    status=f.status.value,
                    summary=f.summary,
                    evidence=evidence,
                    duration_ms=f.duration_ms,
                    at=self.clock.now(),
                )
            )

    def _store_attempt(self, incident_id: int, a: AttemptResult) -> None:
        self.metrics.remediations.labels(name=a.name, status=a.status.value).inc()
        with session_scope(self.engine) as s:
            s.add(
                RemediationAttempt(
                    incident_id=incident_id,
                    name=a.name,
                    attempt=a.attempt,
                    risk=a.risk.value,
                    status=a.status.value,
                    plan=a.plan,
                    summary=a.summary,
                    evidence=a.evidence,
                    at=self.clock.now(),
                )
            )
