"""The explicit registry: which checks and remediations Level 1 runs for each failure category."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.core.models import Category
from bot.diagnostics.base import Check, Remediation


@dataclass(frozen=True)
class CategoryDiagnostics:
    checks: list[type[Check]] = field(default_factory=list)
    remediations: list[type[Remediation]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.checks


def default_registry() -> dict[Category, CategoryDiagnostics]:
    """Every category with Level 1 diagnostics; a category missing here goes straight to Level 2."""
    from bot.diagnostics import pipeline_step, training_crash

    return {
        Category.TRAINING_CRASH: CategoryDiagnostics(training_crash.CHECKS, training_crash.REMEDIATIONS),
        Category.PIPELINE_STEP_FAILED: CategoryDiagnostics(pipeline_step.CHECKS, pipeline_step.REMEDIATIONS),
    }
