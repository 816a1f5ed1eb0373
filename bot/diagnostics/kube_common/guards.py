"""Whether Level 1 may look at, or change, the Kubernetes target an alert names."""

from __future__ import annotations

from bot.diagnostics.base import Context


def namespace_refusal(ctx: Context) -> str | None:
    """Why L1 may not touch the target's namespace, or None when it may."""
    ns = ctx.target.namespace
    if not ns:
        return "the alert names no Kubernetes namespace"
    if ctx.policy.namespaces and ns not in ctx.policy.namespaces:
        return f"namespace {ns} is not in the allowed namespaces"
    return None


def skip_reason(ctx: Context) -> str | None:
    """Why a Job check cannot run against this target, or None when it can."""
    refusal = namespace_refusal(ctx)
    if refusal:
        return refusal
    if not ctx.target.job:
        return "the alert names no Kubernetes job to inspect"
    if ctx.deps.kube is None:
        return "no Kubernetes cluster is configured"
    return None
