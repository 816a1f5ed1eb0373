"""app.yaml's `remediation` section: which remediations Level 1 may apply, each with its caps.

Each remediation's caps model is the one place its caps and their defaults are written: app.yaml is
validated against it, and the remediation (in bot.diagnostics) reads its caps through it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SerializeAsAny, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from bot.config.errors import KeyProblems, Loc, located
from bot.config.quantities import MemoryQuantity
from bot.config.section import Section
from bot.config.values import Count, int_range, not_bool


class RemediationCaps(Section):
    """Base of the caps a remediation accepts in remediation.allowlist.<name>."""


class RerunWithMoreMemoryCaps(RemediationCaps):
    memory_step_factor: Annotated[float, BeforeValidator(not_bool)] = 2.0  # each re-run's limit × this
    max_memory: MemoryQuantity = "16Gi"  # never above this

    @field_validator("memory_step_factor")
    @classmethod
    def _factor(cls, value: float) -> float:
        if not 1.1 <= value <= 4:
            raise PydanticCustomError("range", "must be between 1.1 and 4")
        return value


class RetryWithDebugCaps(RemediationCaps):
    max_retries: Annotated[Count, int_range(1, 3)] = 1


class RetryWorkflowCaps(RerunWithMoreMemoryCaps):
    """An Argo Workflow retried from its failed node (or resubmitted), with more memory after an OOM kill."""

    max_retries: Annotated[Count, int_range(1, 3)] = 1


class RestartTrackingServerCaps(RemediationCaps):
    max_restarts: Annotated[Count, int_range(1, 2)] = 1


class RecheckTrackingCaps(RemediationCaps):
    max_checks: Annotated[Count, int_range(1, 6)] = 3


class NoCaps(RemediationCaps):
    """A remediation with nothing to cap beyond being on the allowlist."""


# Extend with `KNOWN_REMEDIATIONS["name"] = CapsModel` before loading a config that allows it.
KNOWN_REMEDIATIONS: dict[str, type[RemediationCaps]] = {
    "rerun_job_with_more_memory": RerunWithMoreMemoryCaps,
    "retry_job_with_debug": RetryWithDebugCaps,
    "recheck_tracking": RecheckTrackingCaps,
    "restart_tracking_server": RestartTrackingServerCaps,
    "reregister_model_version": NoCaps,
    "trigger_materialization": NoCaps,
    "rerun_from_checkpoint": NoCaps,
    "rerun_with_known_good_image": NoCaps,
    "retry_workflow": RetryWorkflowCaps,
}


class RemediationSettings(Section):
    dry_run: bool = False
    allowlist: dict[str, SerializeAsAny[RemediationCaps]] = Field(default_factory=dict)

    @field_validator("allowlist", mode="before")
    @classmethod
    def _known_with_caps(cls, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(name, str) for name in value):
            value = dict.fromkeys(value)  # a bare list of names takes every cap's default
        if not isinstance(value, dict):
            return value
        problems: list[tuple[Loc, str]] = []
        caps: dict[str, RemediationCaps] = {}
        for name, given in value.items():
            model = KNOWN_REMEDIATIONS.get(name)
            if model is None:
                known = ", ".join(sorted(KNOWN_REMEDIATIONS))
                problems.append(((str(name),), f"unknown remediation (known: {known})"))
                continue
            try:
                caps[name] = model.model_validate({} if given is None else given)
            except ValidationError as exc:
                problems.extend(((name, *loc), message) for loc, message in located(exc))
        if problems:
            raise KeyProblems(problems)
        return caps
