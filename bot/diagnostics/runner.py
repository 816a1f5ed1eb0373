"""Level 1: run a category's checks concurrently, then at most N remediation attempts inside a budget."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.core.errors import BotError
from bot.core.models import AttemptResult, AttemptStatus, CheckResult, CheckStatus, L1Outcome, Risk
from bot.core.redact import redact, redact_obj
from bot.core.untrusted import clean, clean_json
from bot.diagnostics.base import Check, Context, Remediation
from bot.diagnostics.registry import CategoryDiagnostics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_attempts: int
    budget_s: float
    check_timeout_s: float


def _run_check(check: Check, ctx: Context) -> CheckResult:
    started = time.monotonic()
    try:
        result = check.run(ctx)
    except BotError as exc:
        result = check.result(CheckStatus.ERROR, f"{check.name} failed: {exc}", {"error": str(exc)})
    except Exception as exc:  # a bug in a check must not stop L1
        log.exception("check %s crashed", check.name)
        result = check.result(CheckStatus.ERROR, f"{check.name} crashed: {type(exc).__name__}: {exc}")
    ms = int((time.monotonic() - started) * 1000)
    # what a check read is untrusted (names, annotations, node messages, logs): no control character
    # (PostgreSQL refuses NUL) and no secret, in its facts as much as in what it shows
    return replace(
        result,
        name=result.name or check.name,
        summary=redact(clean(result.summary)),
        evidence=redact_obj(clean_json(result.evidence)),
        duration_ms=ms,
        facts=redact_obj(clean_json(result.facts)),
    )


def run_checks(checks: list[Check], ctx: Context, timeout_s: float) -> list[CheckResult]:
    """Run each check in its own daemon thread; one that outlives `timeout_s` is reported, not awaited."""
    results: queue.Queue[tuple[int, CheckResult]] = queue.Queue()
    runnable: dict[int, Check] = {}
    out: dict[int, CheckResult] = {}
    for i, check in enumerate(checks):
        missing = ctx.deps.missing(check.needs)
        if missing:
            out[i] = check.result(
                CheckStatus.SKIPPED, f"{check.name} skipped: {', '.join(missing)} is not configured"
            )
            continue
        runnable[i] = check
        threading.Thread(
            target=lambda i=i, c=check: results.put((i, _run_check(c, ctx))),
            name=f"check-{check.name}",
            daemon=True,
        ).start()
    deadlines = {i: time.monotonic() + min(c.timeout_s, timeout_s) for i, c in runnable.items()}
    while len(out) < len(checks):
        pending = [i for i in runnable if i not in out]
        wait = max(0.0, min(deadlines[i] for i in pending) - time.monotonic())
        try:
            i, result = results.get(timeout=wait)
            out[i] = result
        except queue.Empty:
            now = time.monotonic()
            for i in pending:
                if deadlines[i] <= now and i not in out:
                    c = runnable[i]
                    limit = min(c.timeout_s, timeout_s)
                    out[i] = c.result(
                        CheckStatus.ERROR,
                        f"{c.name} did not answer within {limit:g}s and was cut off",
                        {"timeout_s": limit},
                    )
                    out[i] = replace(out[i], duration_ms=int(limit * 1000))
    return [out[i] for i in range(len(checks))]


class Runner:
    """Applies the Level 1 limits: checks with timeouts, at most `max_attempts` remediations, one budget."""

    def __init__(self, clock_now: Callable[[], datetime]) -> None:
        self._now = clock_now

    def run(
        self,
        diagnostics: CategoryDiagnostics,
        ctx: Context,
        limits: Limits,
        started: datetime,
        on_finding: Callable[[CheckResult], None] = lambda _r: None,
        on_attempt: Callable[[AttemptResult, int | None], None] = lambda _a, _id: None,
        before_apply: Callable[[AttemptResult], int | None] = lambda _a: None,
        already_used: int = 0,
        remediate: bool = True,
        after_checks: Callable[[], None] = lambda: None,
    ) -> list[AttemptResult]:
        """Run L1 for one incident; findings land in `ctx.findings`, attempts are returned (and reported).

        `already_used` attempts were applied earlier in this opening (before a restart) and count against
        the limit; `before_apply` records an attempt durably just before it is applied (it may raise to
        stop, e.g. when this run no longer holds its claim); `remediate=False` only diagnoses;
        `after_checks` is called once the checks are done, before any remediation."""
        deadline = started + timedelta(seconds=limits.budget_s)
        remaining = (deadline - self._now()).total_seconds()
        if remaining <= 0:
            return []
        for result in run_checks(
            [c() for c in diagnostics.checks], ctx, min(limits.check_timeout_s, remaining)
        ):
            ctx.findings.append(result)
            on_finding(result)
        after_checks()

        attempts_used = already_used

        def record(attempt: AttemptResult, row_id: int | None = None) -> None:
            attempt = replace(
                attempt,
                summary=redact(clean(attempt.summary)),
                evidence=redact_obj(clean_json(attempt.evidence)),
            )
            ctx.attempts.append(attempt)
            on_attempt(attempt, row_id)

        for cls in diagnostics.remediations if remediate else ():
            remediation: Remediation[Any] = cls()
            while attempts_used < limits.max_attempts and self._now() < deadline:
                n = attempts_used + 1
                try:
                    caps = remediation.caps_from(ctx.policy.allowed.get(remediation.name, {}))
                    plan = remediation.plan(ctx, caps)
                except BotError as exc:
                    record(AttemptResult(remediation.name, n, AttemptStatus.ERROR, f"could not plan: {exc}"))
                    break
                if plan is None:
                    break
                base = AttemptResult(
                    remediation.name, n, AttemptStatus.REFUSED, "", plan.description, remediation.risk
                )
                if remediation.name not in ctx.policy.allowed:
                    record(replace(base, summary=f"{remediation.name} is not on the remediation allowlist"))
                    break
                if remediation.risk is not Risk.SAFE:
                    record(
                        replace(
                            base,
                            summary=f"{remediation.name} is {remediation.risk}: it needs a person's decision",
                        )
                    )
                    break
                if plan.refused:
                    record(replace(base, summary=f"refused: {plan.refused}"))
                    break
                missing = ctx.deps.missing(remediation.needs)
                if missing:
                    record(
                        replace(
                            base,
                            status=AttemptStatus.ERROR,
                            summary=f"{', '.join(missing)} is not configured",
                        )
                    )
                    break
                if ctx.policy.dry_run:
                    record(
                        replace(
                            base, status=AttemptStatus.DRY_RUN, summary=f"dry run: would {plan.description}"
                        )
                    )
                    return ctx.attempts
                attempts_used = n
                row_id = before_apply(replace(base, status=AttemptStatus.APPLYING, summary="applying"))
                try:
                    applied = remediation.apply(ctx, plan)
                except BotError as exc:
                    record(
                        replace(
                            base, status=AttemptStatus.ERROR, summary=f"could not {plan.description}: {exc}"
                        ),
                        row_id,
                    )
                    continue
                try:
                    verdict = remediation.verify(ctx, plan, applied, deadline)
                except BotError as exc:
                    record(
                        replace(
                            base,
                            status=AttemptStatus.ERROR,
                            summary=f"could not verify: {exc}",
                            evidence=applied,
                        ),
                        row_id,
                    )
                    continue
                status = AttemptStatus.FIXED if verdict.fixed else AttemptStatus.FAILED
                evidence = {**applied, "verification": verdict.evidence}
                record(replace(base, status=status, summary=verdict.summary, evidence=evidence), row_id)
                if verdict.fixed:
                    return ctx.attempts
        return ctx.attempts


def outcome_of(ctx: Context, title: str, budget_exhausted: bool, max_attempts: int) -> L1Outcome:
    """Summarise L1 in the protocol's Error / Attempted / Action / Result terms."""
    findings, attempts = ctx.findings, ctx.attempts
    fixed = any(a.status is AttemptStatus.FIXED for a in attempts)
    failing = [f for f in findings if f.status in (CheckStatus.FAIL, CheckStatus.ERROR, CheckStatus.WARN)]
    # the category's own checks say what is wrong more plainly than the triage that chose the category
    failing = [f for f in failing if f.name != "triage"] or failing
    error = failing[0].summary if failing else title
    if not findings:
        attempted = "no automatic diagnostics exist for this category yet"
    else:
        attempted = "; ".join(f"{f.name} ({f.status}): {f.summary}" for f in findings)
    if attempts:
        action = "; ".join(f"attempt {a.attempt} {a.name} ({a.status}): {a.summary}" for a in attempts)
    else:
        action = "no remediation applied: nothing on the allowlist applies to what was found"
    if fixed:
        last = next(a for a in reversed(attempts) if a.status is AttemptStatus.FIXED)
        result = f"✅ fixed at Level 1: {last.summary}"
    elif budget_exhausted:
        result = "❌ the Level 1 budget ran out before the problem was fixed; escalating to Level 2"
    else:
        used = sum(
            1
            for a in attempts
            if a.status
            in (AttemptStatus.FIXED, AttemptStatus.FAILED, AttemptStatus.ERROR, AttemptStatus.INTERRUPTED)
        )
        result = f"❌ not fixed after {used} of {max_attempts} attempts; escalating to Level 2"
    return L1Outcome(
        fixed, list(findings), list(attempts), error, attempted, action, result, budget_exhausted
    )
