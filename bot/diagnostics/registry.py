"""The explicit registry: which checks and remediations Level 1 runs for each failure category."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.core.models import Category, Target
from bot.diagnostics.base import Check, Remediation
from bot.diagnostics.kube_common import JobCheck

# Job re-runs: they do not apply to an Argo Workflow, which is retried as a whole (`retry_workflow`)
JOB_RERUNS = frozenset(
    {
        "rerun_job_with_more_memory",
        "retry_job_with_debug",
        "rerun_from_checkpoint",
        "rerun_with_known_good_image",
    }
)


@dataclass(frozen=True)
class CategoryDiagnostics:
    checks: list[type[Check]] = field(default_factory=list)
    remediations: list[type[Remediation[Any]]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.checks

    def for_target(self, target: Target) -> CategoryDiagnostics:
        """What runs against this target: for an Argo Workflow, its node check and `retry_workflow` in
        place of the Job checks and Job re-runs; otherwise the category's own."""
        if not target.workflow:
            return self
        from bot.diagnostics.workflow_retry import RetryWorkflow
        from bot.diagnostics.workflows import WorkflowCheck

        checks: list[type[Check]] = [WorkflowCheck]
        checks += [c for c in self.checks if not issubclass(c, JobCheck)]
        remediations: list[type[Remediation[Any]]] = [RetryWorkflow]
        remediations += [r for r in self.remediations if r.name not in JOB_RERUNS]
        return CategoryDiagnostics(checks, remediations)


def default_registry() -> dict[Category, CategoryDiagnostics]:
    """Every category with Level 1 diagnostics; a category missing here goes straight to Level 2."""
    from bot.diagnostics import (
        feature_store,
        orchestration,
        pipeline_step,
        registration,
        tracking,
        training_crash,
        versions,
    )

    modules = {
        Category.TRAINING_CRASH: training_crash,
        Category.PIPELINE_STEP_FAILED: pipeline_step,
        Category.TRACKING_DISCONNECTED: tracking,
        Category.MODEL_REGISTRATION_FAILED: registration,
        Category.FEATURE_STORE_ISSUE: feature_store,
        Category.ORCHESTRATION_TIMEOUT: orchestration,
        Category.VERSION_INCOMPATIBILITY: versions,
    }
    return {category: CategoryDiagnostics(m.CHECKS, m.REMEDIATIONS) for category, m in modules.items()}
