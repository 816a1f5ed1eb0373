"""The base of the checks about the Job an alert names, and the warning-events check both the
pipeline-step and training-crash categories run."""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime

from bot.core.causes import NODE_REASONS
from bot.core.errors import IntegrationError
from bot.core.models import CheckResult, CheckStatus
from bot.core.redact import redact
from bot.diagnostics.base import Check, Context
from bot.diagnostics.kube_common.evidence import error_result, events_call, evidence, pods_call
from bot.diagnostics.kube_common.guards import skip_reason
from bot.diagnostics.kube_common.objects import EPOCH, name_of
from bot.integrations.kubernetes import CoreV1Event, KubeGateway, to_wire

MAX_EVENTS = 10


def _event_time(event: CoreV1Event) -> datetime:
    series = event.series.last_observed_time if event.series else None
    return (
        event.last_timestamp
        or series
        or event.event_time
        or event.first_timestamp
        or event.metadata.creation_timestamp
        or EPOCH
    )


class JobCheck(Check):
    """A check about the Job the alert names; it skips, saying why, when it may not or cannot look."""

    needs = ("kube",)

    def run(self, ctx: Context) -> CheckResult:
        reason = skip_reason(ctx)
        if reason:
            return self.result(CheckStatus.SKIPPED, reason)
        return self.inspect(ctx, ctx.deps.kube, str(ctx.target.namespace), str(ctx.target.job))

    @abstractmethod
    def inspect(self, ctx: Context, gateway: KubeGateway, ns: str, job: str) -> CheckResult:
        """Look at Job `ns`/`job` through `gateway`."""


class WarningEventsCheck(JobCheck):
    """Warning events of the Job and its pods, newest first."""

    name = "warning_events"
    timeout_s = 20.0

    def inspect(self, ctx: Context, gateway: KubeGateway, ns: str, job: str) -> CheckResult:
        """List the Warning events of the target Job and its pods."""
        calls = [events_call(ns, job, "Job")]
        try:
            events = gateway.list_events(ns, job, "Job")
            calls.append(pods_call(ns, job))
            nodes: dict[str, str] = {}  # pod → the node it ran on
            for pod in gateway.list_job_pods(ns, job):
                calls.append(events_call(ns, name_of(pod), "Pod"))
                events += gateway.list_events(ns, name_of(pod), "Pod")
                if pod.spec is not None and pod.spec.node_name:
                    nodes[name_of(pod)] = pod.spec.node_name
        except IntegrationError as exc:
            return error_result(self, calls[-1], exc)
        warnings = sorted((e for e in events if e.type == "Warning"), key=_event_time, reverse=True)[
            :MAX_EVENTS
        ]
        briefs = [
            {
                "object": f"{e.involved_object.kind}/{e.involved_object.name}",
                "reason": e.reason,
                "message": e.message,
                "count": e.count,
                "last_seen": to_wire(_event_time(e)),
            }
            for e in warnings
        ]
        found = evidence(calls[0], {"events": briefs}, calls)
        on_pods = [e for e in warnings if e.involved_object.kind == "Pod" and e.involved_object.name in nodes]
        lost = {nodes[str(e.involved_object.name)] for e in on_pods if e.reason in NODE_REASONS}
        facts = {
            "warning_reasons": sorted({str(e.reason) for e in warnings}),
            "job_name": job,
            "lost_nodes": sorted(lost),  # nodes that ended this Job's pods: a cause other Jobs may share
        }
        if not warnings:
            return self.result(CheckStatus.OK, f"no warning events for job {job} or its pods", found, facts)
        newest = warnings[0]
        summary = (
            f"{len(warnings)} warning event(s) for job {job} and its pods; newest: {newest.reason} on "
            f"{newest.involved_object.kind} {newest.involved_object.name}: {(newest.message or '')[:200]}"
        )
        return self.result(CheckStatus.WARN, redact(summary), found, facts)
