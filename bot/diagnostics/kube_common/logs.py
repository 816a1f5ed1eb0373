"""Reading the log that explains a failed Job: which pod and container, and the error line in it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.errors import IntegrationError
from bot.core.models import CheckResult, CheckStatus
from bot.core.redact import redact
from bot.diagnostics.base import Check, Context
from bot.diagnostics.kube_common.evidence import error_result, log_call, pods_call
from bot.diagnostics.kube_common.objects import name_of, newest_first, terminations
from bot.integrations.kubernetes import KubeGateway, V1Pod

ERROR_LINE = re.compile(r"Traceback|Error|Exception|ERROR|FATAL")


def last_error_line(text: str) -> str | None:
    """The last line of a log that looks like an error (Traceback, Error, Exception)."""
    lines = [line.strip() for line in text.splitlines() if ERROR_LINE.search(line)]
    return lines[-1][:500] if lines else None


def failed_container(ctx: Context, pods: list[V1Pod]) -> tuple[V1Pod, str, bool] | None:
    """The pod and container whose log explains the failure, and whether to read its previous run.

    The pod the alert names wins, then the newest pod with a container that exited non-zero, then the
    newest pod; the container is the alert's, else the one that exited non-zero, else the first.
    """
    named = [p for p in pods if name_of(p) == ctx.target.pod] if ctx.target.pod else []
    pool = named or pods
    if not pool:
        return None
    broken = [(p, t) for p in pool for t in terminations(p) if t.exit_code != 0]
    pod = broken[0][0] if broken else pool[0]
    spec = pod.spec.containers if pod.spec and pod.spec.containers else []
    container = ctx.target.container or (broken[0][1].container if broken else (spec[0].name if spec else ""))
    statuses = (pod.status.container_statuses if pod.status else None) or []
    status = next((cs for cs in statuses if cs.name == container), None)
    # A restarted container's own log starts afresh; the failure is in the previous run's log.
    previous = bool(
        status
        and not (status.state and status.state.terminated)
        and status.last_state
        and status.last_state.terminated
    )
    return pod, container, previous


@dataclass(frozen=True)
class FailedLog:
    pod: str
    container: str
    call: str
    tail: str  # redacted


def read_failed_log(
    check: Check, gateway: KubeGateway, ctx: Context, ns: str, job: str, lines: int
) -> FailedLog | CheckResult:
    """The redacted log tail of the container that failed the Job, or the result to report instead."""
    try:
        chosen = failed_container(ctx, newest_first(gateway.list_job_pods(ns, job)))
    except IntegrationError as exc:
        return error_result(check, pods_call(ns, job), exc)
    if chosen is None:
        return check.result(CheckStatus.SKIPPED, f"job {job} has no pods whose logs could be read")
    pod, container, previous = chosen
    call = log_call(ns, name_of(pod), container, lines, previous)
    try:
        tail = redact(gateway.read_pod_log(ns, name_of(pod), container, lines, previous))
    except IntegrationError as exc:
        return error_result(check, call, exc)
    return FailedLog(name_of(pod), container, call, tail)
