"""The category a failed Job's own evidence points at: its conditions, its pods' container states, its
events and the failed container's log tail, each in the Kubernetes API's wire format (what `GET` answers).

`triage` returns the category with the reason a person can check ("pod trainer-x7 OOMKilled with limit
2Gi"), or None when the evidence names no known signature. Strongest evidence first: what Kubernetes
itself recorded (a kill, a deadline, a scheduling failure, an image pull) before what the log says.
Level 1 runs it first (`bot.diagnostics.triage`), and the category it names replaces one the alert's name
or source chose; a category label or an app.yaml rule is kept."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core.models import Category, Classification

Wire = Mapping[str, Any]
IMAGE_PULL = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")


@dataclass(frozen=True)
class JobEvidence:
    """What Level 1 read about one Job, as the API served it."""

    job: Wire = field(default_factory=dict)
    pods: Sequence[Wire] = field(default_factory=list)
    events: Sequence[Wire] = field(default_factory=list)
    log_tail: str = ""  # the failed container's last lines
    messages: Sequence[str] = ()  # what the orchestrator said about the failure (an Argo node's message)
    deadline_s: int | None = None  # the deadline those messages may refer to (a Workflow's)


# (category, pattern, what it means) for the log tail, in order; the first match wins.
_LOG_SIGNATURES: tuple[tuple[Category, re.Pattern[str], str], ...] = tuple(
    (category, re.compile(pattern, re.IGNORECASE), meaning)
    for category, pattern, meaning in (
        (
            Category.TRAINING_CRASH,
            r"CUDA out of memory|OutOfMemoryError|\bMemoryError\b|OOM when allocating tensor",
            "out of memory",
        ),
        (
            Category.VERSION_INCOMPATIBILITY,
            r"\b(ImportError|ModuleNotFoundError|VersionConflict|pkg_resources\.ContextualVersionConflict)\b"
            r"|incompatible (?:versions?|with)|compiled using NumPy \d|is installed but \S+ is required"
            r"|No package metadata was found for",
            "an import or version conflict",
        ),
        (
            Category.MODEL_REGISTRATION_FAILED,
            r"Registered Model with name=\S+ not found"
            r"|RestException: \w+: .*(?:registered model|model version)"
            r"|(?:register_model|create_model_version|transition_model_version_stage)\b"
            r".*(?:Error|Exception|failed)",
            "the model could not be registered",
        ),
        (
            Category.TRACKING_DISCONNECTED,
            r"mlflow\S*\s.*(?:Max retries exceeded|Connection refused|NewConnectionError|timed out)"
            r"|MlflowException: API request to \S+ failed",
            "the step could not reach MLflow",
        ),
        (
            Category.FEATURE_STORE_ISSUE,
            r"\b(?:Table|relation) \S+ (?:not found|does not exist)|NoSuchTableError|TABLE_OR_VIEW_NOT_FOUND"
            r"|FileNotFoundError|No such file or directory|NoSuchKey|Path does not exist",
            "missing input data",
        ),
        (
            Category.FEATURE_STORE_ISSUE,
            r"KeyError: ['\"]\w+['\"]|column \S+ (?:not found|does not exist)|missing columns?"
            r"|(?:dtype|schema) mismatch|cannot cast|Schema\w*Error",
            "the input's schema changed",
        ),
    )
)


def triage(evidence: JobEvidence) -> Classification | None:
    """The category the evidence points at, with its reason; None when it names no known signature."""
    # an OOMKilled reason is certain; a bare exit 137 (SIGKILL) is also what a deadline leaves behind
    for check in (_oom_killed, _deadline, _killed, _unschedulable, _image_pull, _log):
        found = check(evidence)
        if found is not None:
            return found
    return None


def _containers(pod: Wire) -> Iterable[tuple[str, Wire, Wire]]:
    """(container name, its status, its spec) for every container of a pod."""
    specs = {c.get("name"): c for c in pod.get("spec", {}).get("containers", [])}
    for status in pod.get("status", {}).get("containerStatuses", []) or []:
        yield status.get("name", "?"), status, specs.get(status.get("name"), {})


def _name(pod: Wire) -> str:
    return str(pod.get("metadata", {}).get("name", "?"))


def _oom_killed(evidence: JobEvidence) -> Classification | None:
    return _killed(evidence, reported_only=True)


def _killed(evidence: JobEvidence, reported_only: bool = False) -> Classification | None:
    for pod in evidence.pods:
        for container, status, spec in _containers(pod):
            for state in ("state", "lastState"):
                ended = (status.get(state) or {}).get("terminated") or {}
                oom = ended.get("reason") == "OOMKilled"
                if oom or (ended.get("exitCode") == 137 and not reported_only):
                    limit = spec.get("resources", {}).get("limits", {}).get("memory")
                    what = "OOMKilled" if ended.get("reason") == "OOMKilled" else "killed with exit code 137"
                    at = f" with limit {limit}" if limit else " (no memory limit set)"
                    return Classification(
                        Category.TRAINING_CRASH, f"pod {_name(pod)} container {container} {what}{at}"
                    )
    return None


DEADLINE_MESSAGE = re.compile(r"exceeded its deadline|longer than the specified deadline", re.IGNORECASE)


def _deadline(evidence: JobEvidence) -> Classification | None:
    for message in evidence.messages:  # Argo: "Step exceeded its deadline", kubelet: "… longer than …"
        if DEADLINE_MESSAGE.search(message):
            limit = f" (activeDeadlineSeconds {evidence.deadline_s} s)" if evidence.deadline_s else ""
            return Classification(Category.ORCHESTRATION_TIMEOUT, f"{message[:200]}{limit}")
    for pod in evidence.pods:  # the pod's own activeDeadlineSeconds (kubelet) ran out
        if pod.get("status", {}).get("reason") == "DeadlineExceeded":
            message = str(pod.get("status", {}).get("message", "it ran past its deadline"))[:200]
            return Classification(Category.ORCHESTRATION_TIMEOUT, f"pod {_name(pod)}: {message}")
    for condition in evidence.job.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == "Failed" and condition.get("reason") == "DeadlineExceeded":
            deadline = evidence.job.get("spec", {}).get("activeDeadlineSeconds")
            limit = f" ({deadline} s)" if deadline else ""
            return Classification(
                Category.ORCHESTRATION_TIMEOUT, f"the Job ran past its activeDeadlineSeconds{limit}"
            )
    return None


def _unschedulable(evidence: JobEvidence) -> Classification | None:
    for event in evidence.events:
        if event.get("reason") == "FailedScheduling":
            who = event.get("involvedObject", {}).get("name", "a pod")
            message = str(event.get("message", ""))[:200]
            return Classification(Category.ORCHESTRATION_TIMEOUT, f"{who} could not be scheduled: {message}")
    for pod in evidence.pods:
        for condition in pod.get("status", {}).get("conditions", []) or []:
            if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
                message = str(condition.get("message", ""))[:200]
                return Classification(
                    Category.ORCHESTRATION_TIMEOUT, f"pod {_name(pod)} could not be scheduled: {message}"
                )
    return None


def _image_pull(evidence: JobEvidence) -> Classification | None:
    for pod in evidence.pods:
        for container, status, spec in _containers(pod):
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in IMAGE_PULL:
                image = spec.get("image") or status.get("image") or "its image"
                return Classification(
                    Category.PIPELINE_STEP_FAILED,
                    f"pod {_name(pod)} container {container} cannot pull {image} ({waiting['reason']})",
                )
    return None


def _log(evidence: JobEvidence) -> Classification | None:
    for category, pattern, meaning in _LOG_SIGNATURES:
        for line in reversed(evidence.log_tail.splitlines()):  # the last occurrence is nearest the failure
            match = pattern.search(line)
            if match:
                return Classification(category, f"{meaning}: '{match.group(0)[:120]}' in the step's log")
    return None
