"""Helpers for tests that drive Level 1 against the sandbox Kubernetes API with the real client."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.core.clock import FakeClock
from bot.core.models import AttemptResult, AttemptStatus, Category, CheckResult, Target
from bot.diagnostics.base import Context, Deps, Plan, RemediationPolicy, Verification
from bot.integrations.kubernetes import KubeGateway
from bot.sandbox.kube_api import JobRule, SandboxKubeAPI, WorkflowRule

NS = "ml-pipelines"
SECRETS = ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "S3cretPass", "AKIAIOSFODNN7EXAMPLE")
# The instant the recorded cluster was captured: its Jobs failed shortly before.
RECORDED_AT = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)


def write_kubeconfig(path: Path, server: str, cluster: str = "sandbox", token: str = "sandbox-token") -> str:
    """A kubeconfig file naming one cluster at `server` and a bearer token; its path."""
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server}}],
        "users": [{"name": "escalation-bot", "user": {"token": token}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": "escalation-bot"}}],
        "current-context": cluster,
    }
    path.write_text(json.dumps(kubeconfig))  # JSON is YAML
    return str(path)


def recorded_clock() -> FakeClock:
    """A fake clock started when the recorded cluster was captured."""
    return FakeClock(RECORDED_AT)


@contextmanager
def running_sandbox(
    *fixtures: str,
    rule: JobRule | None = None,
    workflow_rule: WorkflowRule | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Iterator[tuple[SandboxKubeAPI, KubeGateway]]:
    """A started sandbox loaded with `fixtures`, and a gateway to it (closed afterwards)."""
    with SandboxKubeAPI(on_job_created=rule, on_workflow_run=workflow_rule, clock=clock, seed=7) as sandbox:
        for name in fixtures:
            sandbox.load_fixture(name)
        gateway = KubeGateway.for_url(sandbox.url, request_timeout=5.0)
        try:
            yield sandbox, gateway
        finally:
            gateway.close()


def make_context(
    gateway: KubeGateway | None,
    category: Category,
    job: str | None,
    clock: FakeClock,
    *,
    namespace: str = NS,
    allowed: dict[str, dict[str, Any]] | None = None,
    namespaces: tuple[str, ...] = (NS,),
    container: str | None = None,
) -> Context:
    """A Context for one incident about `job`, as the runner would build it."""
    return Context(
        incident_id=42,
        category=category,
        target=Target(namespace=namespace, job=job, container=container, cluster="sandbox"),
        labels={},
        annotations={},
        deps=Deps(kube=gateway),
        policy=RemediationPolicy(allowed=allowed or {}, namespaces=namespaces),
        now=clock.now,
        sleep=clock.sleep,
        verify_poll_seconds=5.0,
    )


def record_attempt(
    ctx: Context,
    plan: Plan,
    applied: dict[str, Any],
    status: AttemptStatus,
    verdict: Verification | None = None,
) -> None:
    """Append an attempt to the context the way the runner records one."""
    evidence = {**applied, "verification": verdict.evidence} if verdict else applied
    summary = verdict.summary if verdict else plan.refused or ""
    result = AttemptResult(
        plan.remediation, len(ctx.attempts) + 1, status, summary, plan.description, evidence=evidence
    )
    ctx.attempts.append(result)


def assert_no_secrets(results: list[CheckResult]) -> None:
    """None of the fixture's secrets may survive in any finding."""
    for result in results:
        text = repr(result)
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked in {result.name}"
