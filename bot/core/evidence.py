"""What an incident's messages and its Details modal show of Level 1's work: one `Step` per check that ran
or remediation that was tried (or a person's move), and the `Link`s to where the incident can be seen."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class StepKind(StrEnum):
    CHECK = "check"
    REMEDIATION = "remediation"
    ESCALATION = "escalation"  # a person (or a deadline) moved the incident up a level


# A status a person reads at a glance: ok or fixed, a warning, a failure, something not done.
OK_MARK, WARN_MARK, FAIL_MARK, SKIP_MARK, WAIT_MARK, UP_MARK = "✅", "⚠️", "❌", "⏭️", "⏳", "⬆️"
MARKS = {
    "ok": OK_MARK,
    "fixed": OK_MARK,
    "warn": WARN_MARK,
    "fail": FAIL_MARK,
    "error": FAIL_MARK,
    "failed": FAIL_MARK,
    "interrupted": FAIL_MARK,
    "skipped": SKIP_MARK,
    "refused": SKIP_MARK,
    "dry_run": SKIP_MARK,
    "applying": WAIT_MARK,
    "escalated": UP_MARK,
}
# what is dropped first when a message has room for only some checks: what found nothing wrong
SHED_ORDER = {"skipped": 0, "ok": 1, "warn": 2}


@dataclass(frozen=True)
class Step:
    """One thing Level 1 (or a person) did about an incident, as recorded, with its human name."""

    kind: StepKind
    name: str  # the human name: "Pod logs", "Re-run with 4Gi"
    status: str  # a CheckStatus or AttemptStatus value, or "escalated"
    summary: str
    internal: str = ""  # the check or remediation's own name: job_pods_oom
    duration_ms: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)  # the exact call and answer, redacted
    plan: str = ""
    attempt: int = 0
    ref: str = ""  # a stored finding's id as messages cite it ("F12")

    @property
    def mark(self) -> str:
        return MARKS.get(self.status, WARN_MARK)


@dataclass(frozen=True)
class Link:
    """Where to see more: a page (url) or, with no url, a name to look up (a Job, a Workflow)."""

    label: str
    url: str | None = None


@dataclass(frozen=True)
class Evidence:
    """Everything an incident's messages can show of what was found and done."""

    checks: list[Step] = field(default_factory=list)
    remediations: list[Step] = field(default_factory=list)
    moves: list[Step] = field(default_factory=list)  # escalations by a person or a deadline
    links: list[Link] = field(default_factory=list)

    @property
    def steps(self) -> list[Step]:
        return [*self.checks, *self.remediations, *self.moves]

    @property
    def empty(self) -> bool:
        return not (self.checks or self.remediations)
