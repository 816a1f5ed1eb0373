"""Level 1 for one incident: diagnostics and bounded self-recovery, then the report and the verdict."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.config import AppConfig
from bot.core.causes import cause_of
from bot.core.clock import Clock
from bot.core.errors import BotError, Conflict, Superseded
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
from bot.core.policy import Event, Policy, is_urgent, policy_of
from bot.core.redact import redact, redact_obj
from bot.diagnostics.base import Context, Deps, RemediationPolicy
from bot.diagnostics.read_once import ReadOnce
from bot.diagnostics.registry import CategoryDiagnostics
from bot.diagnostics.runner import Limits, Runner, outcome_of, run_checks
from bot.integrations.slack.outbox import enqueue
from bot.llm.cause import Investigation
from bot.metrics import Metrics
from bot.services.assistant import Assistant
from bot.services.attempts import AttemptLog, Fence
from bot.services.engine import IncidentEngine
from bot.services.messages import Composer
from bot.services.reclassify import Triage
from bot.store.db import session_scope
from bot.store.tables import Finding, Incident

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
        incidents: IncidentEngine,
        composer: Composer,
        registry: dict[Category, CategoryDiagnostics],
        deps: Deps,
        metrics: Metrics,
        config: Callable[[], AppConfig],
        assistant: Assistant | None = None,
    ) -> None:
        self.config = config
        self.assistant = assistant  # Claude's investigation and drafts, similar past incidents
        self.engine = engine
        self.clock = clock
        self.incidents = incidents
        self.composer = composer
        self.registry = registry
        self.deps = deps
        self.metrics = metrics
        self.attempts = AttemptLog(engine, clock, deps, metrics)
        self.triage = Triage(engine, clock, incidents, self._store_finding, config)

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

    def run(self, incident_id: int, fence: Fence | None = None) -> L1Outcome | None:
        """Run Level 1 once for an incident that is still at Level 1; None when it already moved on, or
        when `fence` says another process took this run over.

        Attempts applied earlier in this opening (before a restart) count against the limit; one that was
        being applied when its process died is never applied again, and ends the remediation."""
        inc = self.incidents.get(incident_id)
        if inc.status != IncidentStatus.L1_RUNNING.value:
            return None
        try:
            return self._run(inc, fence)
        except Superseded as exc:
            log.warning("INC-%s: %s", incident_id, exc)
            return None

    def _run(self, inc: Incident, fence: Fence | None) -> L1Outcome:
        policy = policy_of(inc)
        ctx = self._context(inc, policy)
        # the triage and the checks share one read of each object; remediations read afresh
        ctx.deps = replace(
            self.deps,
            kube=ReadOnce(self.deps.kube) if self.deps.kube is not None else None,
            mlflow=ReadOnce(self.deps.mlflow) if self.deps.mlflow is not None else None,
        )
        reads = [g for g in (ctx.deps.kube, ctx.deps.mlflow) if g is not None]
        try:
            inc = self.triage.run(inc, ctx, policy)
            return self._diagnose(inc, ctx, policy, fence, lambda: _stop(reads))
        finally:
            _stop(reads)

    def _diagnose(
        self,
        inc: Incident,
        ctx: Context,
        policy: Policy,
        fence: Fence | None,
        stop_reading: Callable[[], None],
    ) -> L1Outcome:
        incident_id = inc.id or 0
        category = Category(inc.category)
        tried_first: str | None = None
        diagnostics = self.registry.get(category)
        if diagnostics is not None:
            diagnostics = diagnostics.for_target(ctx.target)
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
            if self.assistant is not None:  # a remediation that fixed this target before goes first
                diagnostics, tried_first = self.assistant.prefer(inc, diagnostics)
            earlier = self.attempts.earlier(inc)
            ctx.attempts.extend(earlier)
            stopped = any(a.status is AttemptStatus.INTERRUPTED for a in earlier)
            fixed = any(a.status is AttemptStatus.FIXED for a in earlier)
            runner = Runner(self.clock.now)
            limits = Limits(policy.l1_max_attempts, policy.l1_budget_s, policy.check_timeout_s)
            runner.run(
                diagnostics,
                ctx,
                limits,
                inc.opened_at,
                on_finding=lambda f: self._store_finding(incident_id, f),
                on_attempt=lambda a, row_id: self.attempts.record(incident_id, a, row_id),
                before_apply=lambda a: self.attempts.begin(incident_id, a, fence),
                already_used=len(earlier),
                remediate=not (stopped or fixed),
                after_checks=stop_reading,
            )
            exhausted = self.clock.now() >= inc.opened_at + timedelta(seconds=policy.l1_budget_s)
            outcome = outcome_of(ctx, inc.title, exhausted, policy.l1_max_attempts)
        self.metrics.l1_runs.labels(
            category=category.value, outcome="fixed" if outcome.fixed else "escalated"
        ).inc()
        found = None
        if self.assistant is not None:  # fixed: similar incidents only; else Claude investigates too
            deadline = inc.opened_at + timedelta(seconds=policy.l1_budget_s)
            found = self.assistant.after_level1(inc, ctx, outcome, deadline)
            ran = {a.name for a in ctx.attempts if a.status is not AttemptStatus.REFUSED}
            found.tried_first = tried_first if tried_first in ran else None  # said only when it ran
        try:
            self.finish(incident_id, outcome, found)
        except Conflict:
            log.info("INC-%s moved on while Level 1 ran; its report is kept in the findings", incident_id)
        return outcome

    def finish(self, incident_id: int, outcome: L1Outcome, found: Investigation | None = None) -> None:
        """Post the L1 report in the alert's thread and fix or escalate, in one transaction."""

        def apply(s: Session, inc: Incident) -> None:
            now = self.clock.now()
            if found is not None:
                inc.investigation = found.to_json()
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
                inc.cause_key = cause_of(outcome.findings)  # incidents with one cause escalate together

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
        infrastructure = "; ".join(filter(None, [self.infrastructure(category), target, _workflow(outcome)]))
        request = inc.annotations.get("request") or category.request_text
        drafted = (inc.investigation or {}).get("fields") or {}  # Claude's prose, when it drafted any
        problem, impact = drafted.get("problem") or problem, drafted.get("impact") or impact
        request = drafted.get("request") or request
        return {
            "problem": problem[:1500],
            "attempted": attempted[:2000],
            "impact": impact[:500],
            "infrastructure": infrastructure[:500] or "not known",
            "request": request[:500],
        }

    def run_action(
        self, incident_id: int, name: str, decision_id: int | None = None, fence: Fence | None = None
    ) -> tuple[bool, str]:
        """Carry out a remediation a person chose at L4 (the allowlist and caps still apply), once per
        decision: a decision whose action was already applied, or was being applied when the process
        died, is reported, not applied again."""
        inc = self.incidents.get(incident_id)
        policy = policy_of(inc)
        earlier = self.attempts.decided(incident_id, decision_id)
        if earlier is not None:
            return earlier
        target = Target(**inc.target)
        remediation_cls = next(
            (r for d in self.registry.values() for r in d.for_target(target).remediations if r.name == name),
            None,
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
        base: AttemptResult | None = None
        row_id = None
        try:
            plan = remediation.plan(ctx, remediation.caps_from(policy.allowlist[name]))
            if plan is None and self._look_again(inc, policy, ctx):
                # what Level 1 found may be stale or missing (the cluster was down): look again first
                plan = remediation.plan(ctx, remediation.caps_from(policy.allowlist[name]))
            if plan is None:
                return False, f"{name} does not apply to what Level 1 found"
            if plan.refused:
                return False, f"{name} refused: {plan.refused}"
            if policy.dry_run:
                return False, f"dry run: would {plan.description}"
            base = AttemptResult(
                name,
                0,
                AttemptStatus.APPLYING,
                "applying",
                plan.description,
                remediation.risk,
                {"decided": True, "decision_id": decision_id},
            )
            row_id = self.attempts.begin(incident_id, base, fence)
            applied = remediation.apply(ctx, plan)
            verdict = remediation.verify(
                ctx, plan, applied, self.clock.now() + timedelta(seconds=policy.l1_budget_s)
            )
        except Superseded:
            raise
        except BotError as exc:
            if base is not None and row_id is not None:
                failed = replace(base, status=AttemptStatus.ERROR, summary=redact(f"{name} failed: {exc}"))
                self.attempts.record(incident_id, failed, row_id)
            return False, f"{name} failed: {exc}"
        status = AttemptStatus.FIXED if verdict.fixed else AttemptStatus.FAILED
        evidence = redact_obj({**applied, **base.evidence})
        done = replace(base, status=status, summary=redact(verdict.summary), evidence=evidence)
        self.attempts.record(incident_id, done, row_id)
        return verdict.fixed, redact(verdict.summary)

    def _look_again(self, inc: Incident, policy: Policy, ctx: Context) -> bool:
        """Run the category's checks again (they only read) and add what they find; False when none."""
        diagnostics = self.registry.get(Category(inc.category))
        if diagnostics is not None:
            diagnostics = diagnostics.for_target(ctx.target)
        if diagnostics is None or diagnostics.empty:
            return False
        for finding in run_checks([c() for c in diagnostics.checks], ctx, policy.check_timeout_s):
            ctx.findings.append(finding)
            self._store_finding(inc.id or 0, finding)
        return True

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


def _stop(reads: list[ReadOnce]) -> None:
    for r in reads:
        r.stop()


def _workflow(outcome: L1Outcome) -> str:
    """The Argo Workflow's failed node and pipeline, as Level 1 found them."""
    for f in outcome.findings:
        if f.facts.get("failed_node"):
            return (
                f"Argo Workflow {f.facts['workflow']} (pipeline {f.facts.get('pipeline')}), failed node "
                f"{f.facts['failed_node']} (template {f.facts.get('template')}, pod {f.facts.get('pod')})"
            )
    return ""
