"""The whole of app.yaml: every section, each with defaults, so an empty file is a valid config."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, ValidatorFunctionWrapHandler, field_validator, model_validator

from bot.config.classification import ClassificationSettings
from bot.config.decisions import DecisionSettings, with_builtins
from bot.config.errors import KeyProblems
from bot.config.intake import IntakeSettings
from bot.config.integrations import (
    FeatureStoreSettings,
    KubernetesSettings,
    MlflowSettings,
    OrchestrationSettings,
    VersionSettings,
)
from bot.config.levels import Levels
from bot.config.llm import LlmSettings
from bot.config.operations import ReportsSettings, RetentionSettings
from bot.config.remediation import RemediationSettings
from bot.config.runtime import RuntimeSettings
from bot.config.section import Section
from bot.config.slack import SlackSettings


class AppConfig(Section):
    """The whole of app.yaml."""

    slack: SlackSettings = Field(default_factory=SlackSettings)
    levels: Levels = Field(default_factory=lambda: Levels.model_validate({}))
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    remediation: RemediationSettings = Field(default_factory=RemediationSettings)
    # after remediation: a decision's options act only through remediations on its allowlist
    decisions: DecisionSettings = Field(default_factory=DecisionSettings)
    feature_store: FeatureStoreSettings = Field(default_factory=FeatureStoreSettings)
    orchestration: OrchestrationSettings = Field(default_factory=OrchestrationSettings)
    versions: VersionSettings = Field(default_factory=VersionSettings)
    classification: ClassificationSettings = Field(default_factory=ClassificationSettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    reports: ReportsSettings = Field(default_factory=ReportsSettings)

    @model_validator(mode="before")
    @classmethod
    def _builtin_decisions_checked_too(cls, data: Any) -> Any:
        # Without this a config that leaves decisions out would keep every built-in option's action.
        if isinstance(data, dict) and "decisions" not in data:
            return {**data, "decisions": {}}
        return data

    @field_validator("decisions", mode="wrap")
    @classmethod
    def _act_within_the_allowlist(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> DecisionSettings:
        remediation = info.data.get("remediation")
        if remediation is None:  # the remediation section is wrong and reported: no allowlist to check
            decisions: DecisionSettings = handler(value)
            return decisions
        allowed = {"resolve", *remediation.allowlist}
        decisions = handler(with_builtins(value, allowed))
        problems = decisions.actions_outside(allowed)
        if problems:
            raise KeyProblems(problems)
        return decisions
