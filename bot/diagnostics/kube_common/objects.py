"""Reading Jobs and pods: names, conditions, container states, memory limits, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot.diagnostics.base import Context
from bot.integrations.kubernetes import CoreV1Event, V1Job, V1JobCondition, V1Pod

OOM_EXIT_CODE = 137  # 128 + SIGKILL
EPOCH = datetime.min.replace(tzinfo=UTC)  # the time of an object that carries none


def name_of(obj: V1Job | V1Pod | CoreV1Event) -> str:
    """The object's metadata.name ("" when the API left it out)."""
    return (obj.metadata.name if obj.metadata else None) or ""


def condition(job: V1Job, kind: str) -> V1JobCondition | None:
    """The Job's condition of type `kind` when it is True."""
    for cond in (job.status.conditions if job.status else None) or []:
        if cond.type == kind and cond.status == "True":
            return cond
    return None


def failed_condition(job: V1Job) -> V1JobCondition | None:
    """The condition that says the Job failed (Failed, or FailureTarget while it terminates)."""
    return condition(job, "Failed") or condition(job, "FailureTarget")


@dataclass(frozen=True)
class Termination:
    pod: str
    container: str
    reason: str
    exit_code: int
    restart_count: int

    @property
    def oom(self) -> bool:
        return self.reason == "OOMKilled" or self.exit_code == OOM_EXIT_CODE


@dataclass(frozen=True)
class Waiting:
    pod: str
    container: str
    image: str
    reason: str
    message: str
    restart_count: int


def terminations(pod: V1Pod) -> list[Termination]:
    """Every terminated state (current and last) of the pod's containers."""
    found = []
    for cs in (pod.status.container_statuses if pod.status else None) or []:
        for state in (cs.state, cs.last_state):
            term = state.terminated if state else None
            if term is not None:
                found.append(
                    Termination(name_of(pod), cs.name, term.reason or "", term.exit_code, cs.restart_count)
                )
    return found


def waiting(pod: V1Pod) -> list[Waiting]:
    """Containers (init ones included) that are waiting, with the reason."""
    status = pod.status
    statuses = [
        *((status.init_container_statuses or []) if status else []),
        *((status.container_statuses or []) if status else []),
    ]
    return [
        Waiting(
            name_of(pod),
            cs.name,
            cs.image,
            cs.state.waiting.reason or "",
            cs.state.waiting.message or "",
            cs.restart_count,
        )
        for cs in statuses
        if cs.state and cs.state.waiting
    ]


def memory_limit(job: V1Job, container: str | None, pod: V1Pod | None = None) -> str | None:
    """The memory limit of `container` (else the first) as the pod ran it, else as the Job sets it."""
    for spec in (pod.spec if pod else None, job.spec.template.spec if job.spec else None):
        for c in (spec.containers if spec else None) or []:
            if container in (None, c.name):
                limits = c.resources.limits if c.resources else None
                return (limits or {}).get("memory")
    return None


def main_container(ctx: Context, job: V1Job) -> str | None:
    """The container the alert names, else the Job's first container."""
    containers = (job.spec.template.spec.containers if job.spec and job.spec.template.spec else None) or []
    return ctx.target.container or (containers[0].name if containers else None)


def newest_first(pods: list[V1Pod]) -> list[V1Pod]:
    return sorted(
        pods, key=lambda p: (p.metadata.creation_timestamp if p.metadata else None) or EPOCH, reverse=True
    )
