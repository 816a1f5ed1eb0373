"""The explicit registry: which checks and remediations Level 1 runs for each failure category."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.core.models import Category
from bot.diagnostics.base import Check, Remediation


@dataclass(frozen=True)
class CategoryDiagnostics:
    checks: list[type[Check]] = field(default_factory=list)
    remediations: list[type[Remediation[Any]]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.checks


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
