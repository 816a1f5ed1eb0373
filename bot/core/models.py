"""Domain vocabulary: levels, categories, statuses and the small value objects passed between layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    L1 = "L1"
    L2 = "L2"
    L3 = "L3"
    L4 = "L4"


class Category(StrEnum):
    PIPELINE_STEP_FAILED = "pipeline_step_failed"
    TRAINING_CRASH = "training_crash"
    TRACKING_DISCONNECTED = "tracking_disconnected"
    MODEL_REGISTRATION_FAILED = "model_registration_failed"
    FEATURE_STORE_ISSUE = "feature_store_issue"
    ORCHESTRATION_TIMEOUT = "orchestration_timeout"
    VERSION_INCOMPATIBILITY = "version_incompatibility"
    UNCLASSIFIED = "unclassified"

    @property
    def label(self) -> str:
        return CATEGORY_LABELS[self]

    @property
    def l2_request(self) -> str:
        return CATEGORY_REQUESTS[self]

    @property
    def request_text(self) -> str:
        """The L2 "Request:" line: the seed's ask for this category."""
        if self is Category.UNCLASSIFIED:
            return "Triage: which failure category is this, and who should own it?"
        article = "an" if self.l2_request[0] in "aeiou" else "a"
        return f"Guidance on {article} {self.l2_request}"


CATEGORY_LABELS: dict[Category, str] = {
    Category.PIPELINE_STEP_FAILED: "pipeline step failed",
    Category.TRAINING_CRASH: "training crash",
    Category.TRACKING_DISCONNECTED: "tracking disconnected",
    Category.MODEL_REGISTRATION_FAILED: "model registration failed",
    Category.FEATURE_STORE_ISSUE: "feature store issue",
    Category.ORCHESTRATION_TIMEOUT: "orchestration timeout",
    Category.VERSION_INCOMPATIBILITY: "version incompatibility",
    Category.UNCLASSIFIED: "unclassified",
}

# The seed protocol's L2 ask per category ("If Fails → Level 2").
CATEGORY_REQUESTS: dict[Category, str] = {
    Category.PIPELINE_STEP_FAILED: "debugging strategy",
    Category.TRAINING_CRASH: "resource tuning strategy",
    Category.TRACKING_DISCONNECTED: "experiment tracking pattern",
    Category.MODEL_REGISTRATION_FAILED: "model registry pattern",
    Category.FEATURE_STORE_ISSUE: "feature store strategy",
    Category.ORCHESTRATION_TIMEOUT: "orchestration pattern",
    Category.VERSION_INCOMPATIBILITY: "versioning strategy",
    Category.UNCLASSIFIED: "triage",
}


class IncidentStatus(StrEnum):
    L1_RUNNING = "l1_running"
    OPEN = "open"  # escalated, waiting for someone at the current level to acknowledge
    ACKNOWLEDGED = "acknowledged"
    DECISION_PENDING = "decision_pending"
    DECIDED = "decided"
    RESOLVED = "resolved"


class CheckStatus(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"


class Risk(StrEnum):
    SAFE = "safe"
    GUARDED = "guarded"
    DESTRUCTIVE = "destructive"


class AttemptStatus(StrEnum):
    REFUSED = "refused"  # not on the allowlist, above its cap, or past the attempt/budget limit
    DRY_RUN = "dry_run"
    FIXED = "fixed"  # applied and verified
    FAILED = "failed"  # applied, verification failed
    ERROR = "error"  # could not be applied
    APPLYING = "applying"  # recorded just before it is applied; the outcome is not known yet
    INTERRUPTED = "interrupted"  # the bot stopped while applying it: never applied again


class StrategicTrigger(StrEnum):
    """The seed's Level 3 triggers."""

    ARCHITECTURE_REDESIGN = "architecture_redesign"
    TOOL_STACK = "tool_stack"
    SCALABILITY = "scalability"
    TRACKING_REGISTRY_OVERHAUL = "tracking_registry_overhaul"

    @property
    def label(self) -> str:
        return TRIGGER_LABELS[self]


TRIGGER_LABELS: dict[StrategicTrigger, str] = {
    StrategicTrigger.ARCHITECTURE_REDESIGN: "MLOps pipeline architecture redesign",
    StrategicTrigger.TOOL_STACK: "Tool stack replacement/upgrade",
    StrategicTrigger.SCALABILITY: "Scalability beyond current infrastructure",
    StrategicTrigger.TRACKING_REGISTRY_OVERHAUL: "Experiment tracking/model registry overhaul",
}


class ActionId(StrEnum):
    """Every Block Kit action and view callback id the bot owns."""

    ACK = "incident_ack"
    RESOLVE = "incident_resolve"
    ESCALATE_L3 = "incident_escalate_l3"
    ASK_DECISION = "incident_ask_decision"
    DECISION_OPTION = "decision_option"  # suffixed with the option index: decision_option_0 …
    RESOLVE_VIEW = "resolve_view"
    ESCALATE_L3_VIEW = "escalate_l3_view"
    ASK_DECISION_VIEW = "ask_decision_view"
    RATIONALE_VIEW = "decision_rationale_view"
    ESCALATE_VIEW = "escalate_view"
    DETAILS = "incident_details"  # the evidence behind an L1 report or an L2/L3 message, in a modal
    DETAILS_VIEW = "incident_details_view"  # read-only: it has no submit button
    SNOOZE = "incident_snooze"  # pause an L2/L3 incident's reminder and deadline for a while
    SNOOZE_VIEW = "snooze_view"


@dataclass(frozen=True)
class Target:
    """What the alert is about in the infrastructure, as far as the alert tells."""

    namespace: str | None = None
    job: str | None = None
    pod: str | None = None
    container: str | None = None
    cluster: str | None = None
    run_id: str | None = None
    model: str | None = None
    model_version: str | None = None
    workflow: str | None = None  # an Argo Workflow (Kubeflow Pipelines runs on them)

    def describe(self) -> str:
        parts = [
            f"{k}={v}"
            for k, v in (
                ("cluster", self.cluster),
                ("namespace", self.namespace),
                ("job", self.job),
                ("workflow", self.workflow),
                ("pod", self.pod),
                ("run", self.run_id),
                ("model", self.model),
            )
            if v
        ]
        return ", ".join(parts)


@dataclass(frozen=True)
class AlertIn:
    """One alert as parsed from any source, before it is stored."""

    source: str
    fingerprint: str
    status: str  # firing | resolved
    title: str
    text: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    group_key: str | None = None
    severity: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    # set when the alert is a message another bot posted in Slack: the bot answers in its thread
    slack_channel: str | None = None
    slack_ts: str | None = None
    # set by a source that knows what it found (e.g. an MLflow registry event): wins over the rules
    category: str | None = None
    category_reason: str = ""


class Basis(StrEnum):
    """What a category was decided from, strongest first: a label on the alert, a rule in app.yaml, the
    target's own evidence (what Level 1 read), what the source reported, the alert's name and text."""

    LABEL = "label"
    CONFIGURED = "configured"
    EVIDENCE = "evidence"
    SOURCE = "source"
    NAME = "name"
    NONE = "none"

    @property
    def evidence_may_override(self) -> bool:
        """Whether what Level 1 reads about the target may change a category decided this way (evidence
        read again, after a restart, may too)."""
        return self in (Basis.EVIDENCE, Basis.SOURCE, Basis.NAME, Basis.NONE)


@dataclass(frozen=True)
class Classification:
    category: Category
    reason: str
    basis: Basis = Basis.NAME


@dataclass(frozen=True)
class CheckResult:
    """What one diagnostic check found: a value, never an exception."""

    name: str
    status: CheckStatus
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    duration_ms: int = 0
    # facts later checks and remediations can use (e.g. the memory limit that was OOM-killed)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AttemptResult:
    """What one remediation attempt did."""

    name: str
    attempt: int
    status: AttemptStatus
    summary: str
    plan: str = ""
    risk: Risk = Risk.SAFE
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class L1Outcome:
    fixed: bool
    findings: list[CheckResult]
    attempts: list[AttemptResult]
    error: str
    attempted: str
    action: str
    result: str
    budget_exhausted: bool = False
