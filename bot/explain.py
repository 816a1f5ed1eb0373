"""`escalation-bot explain`: what the bot would do with one Alertmanager webhook body, changing nothing.

For each alert: the category the alert alone gets and why; the triage Level 1 runs first (it reads the
Job, its pods, events and failed log tail, and the MLflow run) and the category its evidence leaves; the
checks of that category, run here as Level 1 runs them (checks only read); the remediations, with their
allowlist entry, whether Level 1 would try one by itself and the plan it would make; and the Request
Level 2 would get. No incident is stored, no message is sent and no remediation is applied: the context
the checks see has dry-run on, and nothing here calls a remediation's `apply`.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from bot.config import AppConfig, Env, expand_env
from bot.core.classify import classify, target_of
from bot.core.clock import SystemClock
from bot.core.errors import BotError, InputError
from bot.core.models import AlertIn, Basis, Category, CheckResult, CheckStatus, Classification, Risk
from bot.core.policy import Policy
from bot.core.redact import remember_secrets
from bot.core.untrusted import admit
from bot.diagnostics.base import Context, Deps, Remediation, RemediationPolicy
from bot.diagnostics.read_once import ReadOnce
from bot.diagnostics.registry import CategoryDiagnostics, default_registry
from bot.diagnostics.runner import run_checks
from bot.diagnostics.triage import TriageCheck
from bot.integrations.alerts.alertmanager import parse_alertmanager
from bot.integrations.alerts.payload import TooManyAlerts
from bot.services.reclassify import TARGET_FIELDS
from bot.services.snapshot import policy_from_config, rules_of

BASIS_WORDS = {
    Basis.LABEL: "a category label",
    Basis.CONFIGURED: "an app.yaml rule",
    Basis.EVIDENCE: "the target's evidence",
    Basis.SOURCE: "what the alert's source reported",
    Basis.NAME: "the alert's name and text",
    Basis.NONE: "nothing: no rule matched the alert",
}


def basis_words(basis: Basis) -> str:
    """What decided a category, and whether Level 1's evidence may change it, in words."""
    may = "may" if basis.evidence_may_override else "cannot"
    return f"{BASIS_WORDS[basis]} (evidence {may} change it)"


def first_line(doc: str | None) -> str:
    """What a check or remediation says it does: the first line of its docstring."""
    lines = (doc or "").strip().splitlines()
    return lines[0] if lines else ""


def deps_from_env(config: AppConfig, env: Env) -> tuple[Deps, str]:
    """The cluster, MLflow and feature store Level 1 would use, found the way `run` finds them, and why
    there is no cluster when there is none (a kubeconfig or a pod's service account that cannot be used)."""
    from bot.integrations.feature_store import FeatureStoreGateway
    from bot.integrations.kubernetes import connect

    deps = Deps(sql=FeatureStoreGateway(config.feature_store.tables, expand_env))
    found = connect(env.kubeconfig, config.kubernetes)
    deps.kube = found.gateway
    no_cluster = f"{found.source} could not be used: {found.problem}" if found.problem else ""
    if env.mlflow_tracking_uri:
        from bot.integrations.mlflow import MlflowGateway

        timeout = config.mlflow.request_timeout.total_seconds()
        deps.mlflow = MlflowGateway(env.mlflow_tracking_uri, timeout, config.mlflow.max_retries)
    return deps, no_cluster


def run_explain(config: AppConfig, env: Env, source: str, out: TextIO, err: TextIO) -> int:
    """Explain the webhook body in file `source` (`-`: stdin); 2 when it cannot be read or is not one."""
    name = "stdin" if source == "-" else source
    try:
        body = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except FileNotFoundError:
        err.write(f"{name}: file not found\n")
        return 2
    except OSError as exc:
        err.write(f"{name}: cannot read it ({exc.strerror or exc})\n")
        return 2
    deps, no_cluster = deps_from_env(config, env)
    try:
        explain(config, env, body, deps.kube, deps.mlflow, out, sql=deps.sql, no_cluster=no_cluster)
    except InputError as exc:
        err.write(f"{name}: {_problem(exc)}\n")
        return 2
    finally:
        for gateway in (deps.kube, deps.sql):
            if gateway is not None:
                gateway.close()
    return 0


def _problem(exc: InputError) -> str:
    if exc.field == "body" and exc.message.startswith("not valid JSON"):
        return exc.message
    if exc.field == "alerts" and not isinstance(exc, TooManyAlerts):
        return f"no alerts to explain: an Alertmanager v4 webhook body has an `alerts` list ({exc})"
    return f"not an Alertmanager v4 webhook body: {exc}"


def explain(
    config: AppConfig,
    env: Env,
    body: bytes,
    kube: Any,
    mlflow: Any,
    out: TextIO,
    *,
    sql: Any = None,
    no_cluster: str = "",
) -> None:
    """Print what the bot would do with each alert of an Alertmanager v4 webhook body; InputError when
    the body is not one. Only reads: the triage and the checks, never a remediation's `apply`.
    `no_cluster`: why `kube` is None, when a cluster was configured but could not be used."""
    remember_secrets(env.secret_values())  # masked wherever they would show up, as in `run`
    parsed = parse_alertmanager(body, config.intake.max_alerts_per_request)
    for refused in parsed.refused:
        out.write(f"{refused.field} ({refused.name}): refused at intake: {refused.error}\n\n")
    explainer = _Explainer(config, env, Deps(kube, mlflow, sql), out, no_cluster)
    for i, alert in enumerate(parsed.alerts, 1):
        explainer.alert(admit(alert), f"Alert {i} of {len(parsed.alerts)}")  # cleaned as intake does
        out.write("\n")
    out.write(
        "Nothing was changed: explain only reads (no incident stored, no Slack message, no remediation "
        "applied).\nIt does not read the bot's database: an incident already open for the same alert or "
        "target would take this alert as a repeat instead.\n"
    )


class _Explainer:
    def __init__(self, config: AppConfig, env: Env, deps: Deps, out: TextIO, no_cluster: str = "") -> None:
        self.config, self.env, self.deps, self.out = config, env, deps, out
        self.no_cluster = no_cluster
        self.registry = default_registry()

    def alert(self, alert: AlertIn, heading: str) -> None:
        w = self.out.write
        w(f"{heading}: {alert.title} ({alert.status})\n")
        w(f"  target: {target_of(alert.labels).describe() or 'the alert names none'}\n")
        if alert.status == "resolved":
            w("  resolved: the bot closes the incident this alert belongs to; Level 1 does not run\n")
            return
        found = classify(alert, rules_of(self.config))
        w(f"Category from the alert: {found.category.label}\n")
        w(f"  why: {found.reason}\n  decided by: {basis_words(found.basis)}\n")
        policy = policy_from_config(self.config, found.category)
        ctx = self._context(alert, found.category, policy)
        ctx.category = self._triage(ctx, found, policy.check_timeout_s)
        diagnostics = self.registry.get(ctx.category)
        if diagnostics is not None:  # an Argo Workflow gets its own check and retry, as in Level 1
            diagnostics = diagnostics.for_target(ctx.target)
        self._checks(ctx, diagnostics, policy.check_timeout_s)
        self._remediations(ctx, diagnostics, policy)
        request = alert.annotations.get("request") or ctx.category.request_text
        channel, group = self.config.slack.channels.coordinator, self.config.levels.l2.group
        w(f"If Level 1 does not fix it, Level 2 is asked in {channel} ({group}):\n  Request: {request}\n")

    def _context(self, alert: AlertIn, category: Category, policy: Policy) -> Context:
        """The context Level 1 gives the triage and the checks, with dry-run forced on."""
        d = self.deps
        deps = replace(
            d,
            kube=ReadOnce(d.kube) if d.kube is not None else None,
            mlflow=ReadOnce(d.mlflow) if d.mlflow is not None else None,
        )
        allowed = RemediationPolicy(dict(policy.allowlist), True, tuple(policy.namespaces))
        return Context(
            incident_id=0,
            category=category,
            target=target_of(alert.labels),
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            deps=deps,
            policy=allowed,
            now=SystemClock().now,
            verify_poll_seconds=policy.verify_poll_s,
            config=self.config,
        )

    def _triage(self, ctx: Context, found: Classification, timeout_s: float) -> Category:
        """Run the triage (it only reads) and say which category Level 1 goes on with, and why."""
        w = self.out.write
        category = found.category
        if self.deps.kube is None and self.deps.mlflow is None:
            w(f"Triage: not run: {self._unreachable()}, so Level 1 could read no evidence\n")
            w(f"Final category: {category.label} (the alert's own)\n")
            return category
        [finding] = run_checks([TriageCheck()], ctx, timeout_s)
        w(f"Triage (read-only; {self._reach()}):\n  {finding.status}: {finding.summary}\n")
        if finding.status is not CheckStatus.SKIPPED:
            ctx.findings.append(finding)
        facts = finding.facts
        added = {
            k: str(v)
            for k, v in (facts.get("target") or {}).items()
            if k in TARGET_FIELDS and v and not getattr(ctx.target, k)
        }
        if added:
            ctx.target = replace(ctx.target, **added)
            w(f"  the reads found what the alert did not say: {ctx.target.describe()}\n")
        named = facts.get("triage_category")
        evidence = Category(named) if named else None
        if evidence is None:
            why = "no evidence was read" if finding.status in _NOTHING_READ else "no known failure signature"
            w(f"Final category: {category.label} (kept: {why})\n")
        elif evidence is category:
            w(f"Final category: {category.label} (kept: the evidence agrees)\n")
        elif found.basis.evidence_may_override:
            why = f"the evidence outranks {BASIS_WORDS[found.basis]}"
            if found.basis is Basis.NONE:
                why = "no rule placed the alert; the evidence does"
            w(f"Final category: {evidence.label} (re-classified from {category.label}: {why})\n")
            return evidence
        else:
            w(f"Final category: {category.label} (kept: {BASIS_WORDS[found.basis]} outranks the ")
            w(f"evidence, which points at {evidence.label})\n")
        return category

    def _checks(self, ctx: Context, diagnostics: CategoryDiagnostics | None, timeout_s: float) -> None:
        """Run the category's checks as Level 1 would (they only read) and say what each found."""
        w = self.out.write
        label = ctx.category.label
        if diagnostics is None or diagnostics.empty:
            w(f"Checks: none: no automatic diagnostics exist for {label} yet, so Level 1 tries nothing ")
            w("and escalates to Level 2\n")
            return
        w(f"Checks Level 1 runs for {label} (run here; checks only read):\n")
        results = run_checks([c() for c in diagnostics.checks], ctx, timeout_s)
        for check, result in zip(diagnostics.checks, results, strict=True):
            ctx.findings.append(result)
            w(f"  - {check.name}: {first_line(check.__doc__)}\n      {_outcome(result)}\n")

    def _remediations(self, ctx: Context, diagnostics: CategoryDiagnostics | None, policy: Policy) -> None:
        """Each remediation of the category: may Level 1 try it by itself, and what it would plan."""
        w = self.out.write
        if diagnostics is None or not diagnostics.remediations:
            w(f"Remediations: none for {ctx.category.label}\n")
            return
        dry = "on: Level 1 only reports plans" if policy.dry_run else "off"
        w(
            f"Remediations for {ctx.category.label} (remediation.dry_run is {dry}; at most "
            f"{policy.l1_max_attempts} attempt(s) within {policy.l1_budget_s:g}s; explain applies none):\n"
        )
        for cls in diagnostics.remediations:
            remediation = cls()
            entry = policy.allowlist.get(remediation.name)
            w(f"  - {remediation.name} (risk {remediation.risk}): {first_line(cls.__doc__)}\n")
            w(f"      {_permission(remediation, entry, ctx, policy.dry_run)}\n")
            w(f"      plan: {_plan(remediation, entry, ctx)}\n")

    def _reach(self) -> str:
        kube, mlflow = self.deps.kube, self.deps.mlflow
        parts = [
            kube.describe() if kube is not None else self._unreachable(mlflow_too=False),
            mlflow.describe() if mlflow is not None else "MLflow not configured (MLFLOW_TRACKING_URI unset)",
        ]
        return "; ".join(parts)

    def _unreachable(self, mlflow_too: bool = True) -> str:
        path = self.env.kubeconfig
        kube = self.no_cluster or (f"KUBECONFIG {path} could not be loaded" if path else "KUBECONFIG unset")
        if not mlflow_too:
            return f"no Kubernetes cluster ({kube})"
        return f"no Kubernetes cluster or MLflow is configured ({kube}, MLFLOW_TRACKING_URI unset)"


_NOTHING_READ = (CheckStatus.SKIPPED, CheckStatus.ERROR)


def _outcome(result: CheckResult) -> str:
    if result.status is CheckStatus.SKIPPED:
        return f"would be skipped: {result.summary.removeprefix(f'{result.name} skipped: ')}"
    return f"{result.status}: {result.summary}"


def _permission(
    remediation: Remediation[Any], entry: dict[str, Any] | None, ctx: Context, dry_run: bool
) -> str:
    """Whether Level 1 would try it by itself (the runner's own order of refusals)."""
    if entry is None:
        return "not on the remediation allowlist: Level 1 never applies it"
    caps = ", ".join(f"{k}={v}" for k, v in entry.items()) or "no caps"
    allowed = f"on the allowlist ({caps})"
    if remediation.risk is not Risk.SAFE:
        return f"{allowed}; it is {remediation.risk}, so it needs a person's decision"
    missing = ctx.deps.missing(remediation.needs)
    if missing:
        return f"{allowed}; automatic, but {', '.join(missing)} is not configured, so it cannot be applied"
    if dry_run:
        return f"{allowed}; automatic, but remediation.dry_run is on: Level 1 reports its plan only"
    return f"{allowed}; automatic: Level 1 tries it by itself when its plan applies"


def _plan(remediation: Remediation[Any], entry: dict[str, Any] | None, ctx: Context) -> str:
    """The plan it would make from what the triage and the checks found; never applied."""
    try:
        plan = remediation.plan(ctx, remediation.caps_from(entry or {}))
    except BotError as exc:
        return f"could not plan: {exc}"
    if plan is None:
        return "none: it does not apply to what was found"
    if plan.refused:
        return f"refused ({plan.refused}): it would {plan.description}"
    return f"would {plan.description}"
