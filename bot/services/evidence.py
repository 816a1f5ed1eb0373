"""An incident's evidence as its messages show it: the checks Level 1 ran and the remediations it tried
(from the `findings` and `remediation_attempts` tables, or straight from a Level 1 run), each with its
human name, and the links to where the incident can be seen (the alert's source, the MLflow run, the Job
or Workflow)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import object_session
from sqlmodel import Session, col, select

from bot.core.evidence import Evidence, Link, Step, StepKind
from bot.core.models import AttemptResult, CheckResult, L1Outcome
from bot.diagnostics.names import check_name, remediation_name, strip_own_name
from bot.store.tables import Alert, Escalation, Finding, Incident, RemediationAttempt

RunUrl = Callable[[str, str], str]  # (experiment id, run id) → the run's page in the MLflow UI


def check_step(f: CheckResult | Finding) -> Step:
    name = f.name if isinstance(f, CheckResult) else f.check
    status = f.status.value if isinstance(f, CheckResult) else f.status
    return Step(
        StepKind.CHECK,
        check_name(name),
        status,
        strip_own_name(name, f.summary),
        name,
        f.duration_ms,
        dict(f.evidence),
        ref=f"F{f.id}" if isinstance(f, Finding) and f.id else "",
    )


def attempt_step(a: AttemptResult | RemediationAttempt) -> Step:
    status = a.status.value if isinstance(a, AttemptResult) else a.status
    return Step(
        StepKind.REMEDIATION,
        remediation_name(a.name, a.plan),
        status,
        strip_own_name(a.name, a.summary),
        a.name,
        None,
        dict(a.evidence),
        a.plan,
        a.attempt,
    )


def from_outcome(outcome: L1Outcome) -> Evidence:
    """What one Level 1 run found and tried, in the order it happened."""
    return Evidence([check_step(f) for f in outcome.findings], [attempt_step(a) for a in outcome.attempts])


def load(
    s: Session, inc: Incident, *, until: datetime | None = None, run_url: RunUrl | None = None
) -> Evidence:
    """The incident's steps since it was (re)opened, up to `until` when given, and its links."""
    findings = select(Finding).where(col(Finding.incident_id) == inc.id, col(Finding.at) >= inc.opened_at)
    attempts = select(RemediationAttempt).where(
        col(RemediationAttempt.incident_id) == inc.id, col(RemediationAttempt.at) >= inc.opened_at
    )
    if until is not None:
        findings = findings.where(col(Finding.at) <= until)
        attempts = attempts.where(col(RemediationAttempt.at) <= until)
    checks = [check_step(f) for f in s.exec(findings.order_by(col(Finding.id)))]
    tried = [attempt_step(a) for a in s.exec(attempts.order_by(col(RemediationAttempt.id)))]
    return Evidence(checks, tried, links=links(s, inc, checks, run_url))


def for_escalation(esc: Escalation, inc: Incident, run_url: RunUrl | None = None) -> Evidence | None:
    """What an escalation message shows: Level 1's steps until it was posted, and for Level 3 the move that
    brought it there. None when the escalation is not in a session the records can be read through."""
    s = object_session(esc) or object_session(inc)
    if not isinstance(s, Session):
        return None
    found = load(s, inc, until=esc.at, run_url=run_url)
    if esc.level != "L3":
        return found
    who = "the bot" if esc.escalated_by is None else "the data coordinator"
    why = esc.reason or "not acknowledged in time"
    move = Step(StepKind.ESCALATION, "Level 2", "escalated", f"{who} escalated: {why}")
    return Evidence(found.checks, found.remediations, [move], found.links)


def for_report(inc: Incident, outcome: L1Outcome, run_url: RunUrl | None = None) -> Evidence:
    """What the Level 1 report shows: this run's steps (the stored ones when the run left none, as when
    its budget ran out), and the links."""
    s = object_session(inc)
    found = from_outcome(outcome)
    if not isinstance(s, Session):
        return found
    if found.empty:
        return load(s, inc, run_url=run_url)
    return Evidence(found.checks, found.remediations, links=links(s, inc, found.checks, run_url))


def links(s: Session, inc: Incident, checks: list[Step], run_url: RunUrl | None) -> list[Link]:
    """The alert's source page (Alertmanager's generatorURL), the MLflow run's page, the Job or Workflow."""
    found: list[Link] = []
    newest = select(Alert.raw).where(col(Alert.incident_id) == inc.id).order_by(col(Alert.id).desc())
    raw: Any = s.exec(newest.limit(1)).first()
    source = raw.get("generatorURL") if isinstance(raw, dict) else None
    if isinstance(source, str) and source:
        found.append(Link("Alert source", source))
    run = _run_page(inc, checks, run_url)
    if run is not None:
        found.append(run)
    target = inc.target or {}
    where = f"{target['namespace']}/" if target.get("namespace") else ""
    if target.get("workflow"):
        found.append(Link(f"Workflow {where}{target['workflow']}"))
    elif target.get("job"):
        found.append(Link(f"Job {where}{target['job']}"))
    return found


def _run_page(inc: Incident, checks: list[Step], run_url: RunUrl | None) -> Link | None:
    """The MLflow run's page: as the poller that found the run recorded it, or from the run a check read."""
    run_id = str((inc.target or {}).get("run_id") or "")
    recorded = (inc.annotations or {}).get("run_url")
    if isinstance(recorded, str) and recorded:
        return Link(f"MLflow run {run_id[:8]}".strip(), recorded)
    if run_url is None:
        return None
    for step in checks:
        response = step.evidence.get("response")
        if isinstance(response, dict) and response.get("experiment_id") and response.get("run_id"):
            run = str(response["run_id"])
            return Link(f"MLflow run {run[:8]}", run_url(str(response["experiment_id"]), run))
    return None
