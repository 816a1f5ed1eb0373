"""app.yaml's sections about the outside systems Level 1 looks at: Kubernetes, MLflow, the feature
store, pipeline orchestration and package versions."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bot.config.durations import PositiveDuration
from bot.config.errors import KeyProblems
from bot.config.names import Namespace, ObjectRef
from bot.config.section import Section
from bot.config.values import Count, int_range, matching


class KubernetesSettings(Section):
    namespaces: list[Namespace] = Field(default_factory=lambda: ["ml-pipelines"])
    cluster_name: Annotated[str, Field(min_length=1)] = "default"
    request_timeout: PositiveDuration = timedelta(seconds=10)

    @field_validator("namespaces")
    @classmethod
    def _some_namespace(cls, value: list[str]) -> list[str]:
        if not value:
            raise PydanticCustomError("too_short", "needs at least one namespace")
        return value


class MlflowSettings(Section):
    request_timeout: PositiveDuration = timedelta(seconds=10)
    max_retries: Annotated[Count, int_range(0, 5)] = 2
    latency_warn: PositiveDuration = timedelta(seconds=2)  # a slower /health answer is reported as WARN
    server_deployment: ObjectRef | None = None  # the tracking server's Deployment, for a restart


class FreshnessTable(Section):
    """One feature table whose freshness (dbt-style) and schema Level 1 checks."""

    name: Annotated[str, Field(min_length=1)]
    # SQLAlchemy URL; "${VAR}" takes it from the environment
    url: Annotated[
        str,
        Field(min_length=1),
        matching(
            r"(?:[^$]|\$(?!\{)|\$\{[A-Za-z_][A-Za-z0-9_]*\})*",
            "a ${VAR} must be closed and name a variable, e.g. ${FEATURE_STORE_URL}",
        ),
    ]
    table: Annotated[
        str,
        matching(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$", "must be table or schema.table"),
    ]
    timestamp_column: Annotated[str, matching(r"^[A-Za-z_][A-Za-z0-9_]*$", "must be a column name")]
    filter: str | None = None  # an SQL condition, e.g. "region = 'eu'"
    warn_after: PositiveDuration = timedelta(hours=1)
    error_after: PositiveDuration = timedelta(hours=6)
    expected_columns: dict[str, Literal["integer", "float", "string", "timestamp", "boolean", "any"]] = Field(
        default_factory=dict
    )
    materialization_job: ObjectRef | None = None  # a Job or CronJob that refreshes the table

    @model_validator(mode="after")
    def _ordered(self) -> FreshnessTable:
        if self.error_after <= self.warn_after:
            raise KeyProblems([(("error_after",), "must be longer than warn_after")])
        return self


class FeatureStoreSettings(Section):
    tables: list[FreshnessTable] = Field(default_factory=list)


class OrchestrationSettings(Section):
    silent_step_after: PositiveDuration = timedelta(minutes=30)  # no log line for this long: stuck
    checkpoint_annotation: str = "escalation-bot/checkpoint"  # on a Job: where its last checkpoint is
    checkpoint_env: str = "RESUME_FROM_CHECKPOINT"  # set on the re-run so the job resumes from it
    upstream_annotation: str = "escalation-bot/upstream"  # on a Job: comma-separated upstream Jobs


class CompatibilityRule(Section):
    package: Annotated[str, Field(min_length=1)]
    allowed: Annotated[str, Field(min_length=1)]  # a PEP 440 specifier, e.g. ">=2.1,<3"
    reason: str = ""

    @field_validator("allowed")
    @classmethod
    def _specifier(cls, value: str) -> str:
        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            raise PydanticCustomError("specifier", "must be a version specifier like '>=2.1,<3'") from None
        return value


class VersionSettings(Section):
    matrix: list[CompatibilityRule] = Field(default_factory=list)
    known_good_images: dict[str, str] = Field(default_factory=dict)  # image repository → tag known to work
