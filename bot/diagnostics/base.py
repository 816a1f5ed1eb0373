"""The shapes of Level 1 work: small Check and Remediation classes and the context they run in.

A check answers a question about the infrastructure and always returns a CheckResult (never raises
for an expected failure). A remediation declares its risk and its caps model, plans what it would do
within its caps (so a person can read it and the policy can refuse it), applies the plan and verifies
the outcome.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from bot.config import RemediationCaps, problems_from
from bot.core.errors import ConfigError
from bot.core.models import AttemptResult, Category, CheckResult, CheckStatus, Risk, Target

DEP_NAMES = {
    "kube": "Kubernetes (set KUBECONFIG or run in-cluster)",
    "mlflow": "MLflow (set MLFLOW_TRACKING_URI)",
    "sql": "the feature store database",
}


@dataclass
class Deps:
    """Outside systems a check may need; None when not configured."""

    kube: Any = None  # bot.integrations.kubernetes.KubeGateway
    mlflow: Any = None
    sql: Any = None

    def missing(self, needs: tuple[str, ...]) -> list[str]:
        """What is needed but not configured, named for the operator who has to configure it."""
        return [DEP_NAMES.get(n, n) for n in needs if getattr(self, n, None) is None]


@dataclass
class RemediationPolicy:
    """The allowlist (name -> caps as stored), the global dry-run switch and the namespaces L1 may touch."""

    allowed: dict[str, dict[str, Any]] = field(default_factory=dict)
    dry_run: bool = False
    namespaces: tuple[str, ...] = ()


@dataclass
class Context:
    """Everything a check or remediation sees about the incident it works on."""

    incident_id: int
    category: Category
    target: Target
    labels: dict[str, str]
    annotations: dict[str, str]
    deps: Deps
    policy: RemediationPolicy
    now: Callable[[], datetime]
    sleep: Callable[[float], None] = time.sleep
    verify_poll_seconds: float = 5.0
    findings: list[CheckResult] = field(default_factory=list)
    attempts: list[AttemptResult] = field(default_factory=list)
    config: Any = None  # the AppConfig: feature tables, compatibility matrix, orchestration settings …

    def fact(self, key: str) -> Any:
        """The latest value a finding or attempt recorded for `key` (attempts win over findings)."""
        for attempt in reversed(self.attempts):
            if key in attempt.evidence.get("facts", {}):
                return attempt.evidence["facts"][key]
        for finding in reversed(self.findings):
            if key in finding.facts:
                return finding.facts[key]
        return None


class Check(ABC):
    """One diagnostic question. Subclasses set the class attributes and implement `run`."""

    name: str = ""
    needs: tuple[str, ...] = ()
    timeout_s: float = 20.0

    @abstractmethod
    def run(self, ctx: Context) -> CheckResult:
        """Answer the question; report expected failures as a result, not an exception."""

    def result(
        self,
        status: CheckStatus,
        summary: str,
        evidence: dict[str, Any] | None = None,
        facts: dict[str, Any] | None = None,
    ) -> CheckResult:
        return CheckResult(self.name, status, summary, evidence or {}, 0, facts or {})


@dataclass(frozen=True)
class Plan:
    """What a remediation would do, readable by a person and checkable by the policy."""

    remediation: str
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    refused: str | None = None  # set when the plan breaks a cap: recorded, never applied


@dataclass(frozen=True)
class Verification:
    fixed: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)


CapsT = TypeVar("CapsT", bound=RemediationCaps)


class Remediation(ABC, Generic[CapsT]):
    """One recovery action. `plan` returns None when it does not apply to what was found."""

    name: str = ""
    risk: Risk = Risk.SAFE
    needs: tuple[str, ...] = ()
    caps_model: type[CapsT]  # what remediation.allowlist.<name> may set, and the defaults

    def caps_from(self, entry: Mapping[str, Any]) -> CapsT:
        """The caps in this remediation's allowlist entry; ConfigError when they no longer fit its model."""
        try:
            return self.caps_model.model_validate(dict(entry))
        except ValidationError as exc:
            problems = "; ".join(problems_from(exc))
            raise ConfigError([f"remediation.allowlist.{self.name}: {problems}"]) from None

    @abstractmethod
    def plan(self, ctx: Context, caps: CapsT) -> Plan | None:
        """Decide what to do from the findings and earlier attempts, within `caps`."""

    @abstractmethod
    def apply(self, ctx: Context, plan: Plan) -> dict[str, Any]:
        """Do it; return evidence (what was sent, what came back, and `facts` for later steps)."""

    @abstractmethod
    def verify(self, ctx: Context, plan: Plan, applied: dict[str, Any], deadline: datetime) -> Verification:
        """Check, until `deadline` at the latest, that the problem is gone."""
