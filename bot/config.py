"""app.yaml and the environment: typed, validated settings with errors that name the key to fix.

`load_config` turns app.yaml into an `AppConfig` (every section has defaults, so an empty file is a
valid config) or raises `ConfigError` listing every problem as "<key.path>: <message>". `Env` holds the
secrets and endpoints that come from the environment; this is the only module that reads it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from bot.core.errors import ConfigError
from bot.core.models import Category

Loc = tuple[str | int, ...]


class KeyProblems(ValueError):
    """Raised inside a validator to report problems at keys below the one being validated."""

    def __init__(self, problems: Sequence[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = list(problems)


# ---------------------------------------------------------------- durations and small value types

_DURATION_ERROR = "expected a duration like 30s, 5m, 1h"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_TEXT = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """Read "30s", "5m", "1h30m", "500ms" or a number of seconds as a timedelta."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PydanticCustomError("duration", _DURATION_ERROR)
    elif isinstance(value, str):
        text = "".join(value.split()).lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif _DURATION_TEXT.fullmatch(text):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise PydanticCustomError("duration", _DURATION_ERROR)
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise PydanticCustomError("duration", _DURATION_ERROR)
    if seconds < 0:
        raise PydanticCustomError("duration", "must not be negative")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Write a timedelta the way app.yaml spells it: "30m", "1h30m", "500ms"."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    if millis % 1000:
        return f"{millis / 1000}s"
    rest, parts = millis // 1000, []
    for unit in ("d", "h", "m", "s"):
        size = int(_UNIT_SECONDS[unit])
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


def _between(low: timedelta, high: timedelta) -> AfterValidator:
    def check(value: timedelta) -> timedelta:
        if not low <= value <= high:
            raise PydanticCustomError(
                "range", f"must be between {format_duration(low)} and {format_duration(high)}"
            )
        return value

    return AfterValidator(check)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise PydanticCustomError("range", "must be longer than 0s")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


def _int_range(low: int, high: int) -> AfterValidator:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise PydanticCustomError("range", f"must be between {low} and {high}")
        return value

    return AfterValidator(check)


def _not_bool(value: Any) -> Any:
    # YAML's true/false would otherwise pass as 1/0.
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "expected a whole number")
    return value


Count = Annotated[int, BeforeValidator(_not_bool)]


def _matching(pattern: str, message: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise PydanticCustomError("format", message)
        return value

    return AfterValidator(check)


def _channel(value: str) -> str:
    if re.fullmatch(r"[CG][A-Z0-9]{6,}", value):
        return value
    if not value.startswith("#"):
        raise PydanticCustomError("channel", "must start with '#' or be a channel id")
    if not re.fullmatch(r"#[a-z0-9_\-.]{1,80}", value):
        raise PydanticCustomError(
            "channel",
            "must be a channel name like '#ml-alerts' (lowercase, no spaces, at most 80 characters)",
        )
    return value


def _command(value: str) -> str:
    if not value.startswith("/"):
        raise PydanticCustomError("command", "must start with '/'")
    if len(value) > 32:
        raise PydanticCustomError("command", "must be at most 32 characters")
    if not re.fullmatch(r"/[a-z0-9_\-]+", value):
        raise PydanticCustomError("command", "must be a command like '/escalate' (lowercase, no spaces)")
    return value


def _channel_given(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError(
            "channel_missing", "needs a value (quote channel names: an unquoted # starts a YAML comment)"
        )
    return value


_HANDLE = r"@[a-z0-9][a-z0-9._\-]{0,79}"
ChannelRef = Annotated[str, BeforeValidator(_channel_given), AfterValidator(_channel)]
CommandName = Annotated[str, AfterValidator(_command)]
GroupRef = Annotated[
    str,
    _matching(
        rf"{_HANDLE}|S[A-Z0-9]{{6,}}",
        "must be a user-group handle like '@data-coordinator' or a group id (S…)",
    ),
]
ActorRef = Annotated[
    str,
    _matching(
        rf"{_HANDLE}|[SUW][A-Z0-9]{{6,}}",
        "must be a handle like '@data-coordinator', a group id (S…) or a user id (U…/W…)",
    ),
]
HttpUrl = Annotated[str, _matching(r"https?://[^\s/?#]+[^\s?#]*", "must be an http(s) URL without a query")]
Namespace = Annotated[
    str,
    _matching(r"(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?", "must be a DNS-1123 label like 'ml-pipelines'"),
]
_QUANTITY = re.compile(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")
_QUANTITY_FACTOR = {
    **{s: 1024 ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{s: 1000 ** (i + 1) for i, s in enumerate(("k", "M", "G", "T", "P", "E"))},
}


def memory_bytes(quantity: str) -> int:
    """Convert a Kubernetes memory quantity ("512Mi", "16Gi", "1G", "1048576") to bytes."""
    match = _QUANTITY.fullmatch(quantity.strip())
    if not match:
        raise ValueError(f"not a Kubernetes memory quantity: {quantity!r}")
    number, suffix = match.groups()
    return int(float(number) * _QUANTITY_FACTOR.get(suffix or "", 1))


MemoryQuantity = Annotated[
    str, _matching(_QUANTITY.pattern, "must be a Kubernetes memory quantity like '16Gi' or '512Mi'")
]


class Section(BaseModel):
    """Base of every app.yaml section: unknown keys are errors and values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# ---------------------------------------------------------------- slack


class Channels(Section):
    alerts: ChannelRef = "#ml-alerts"
    coordinator: ChannelRef = "#data-coordinator"
    tech_lead: ChannelRef = "#tech-leads"
    decisions: ChannelRef = "#ml-decisions"
    admin: ChannelRef | None = None


class Commands(Section):
    escalate: CommandName = "/escalate"
    escalation: CommandName = "/escalation"

    @model_validator(mode="after")
    def _distinct(self) -> Commands:
        if self.escalate == self.escalation:
            raise KeyProblems([(("escalation",), "must differ from slack.commands.escalate")])
        return self


class SlackSettings(Section):
    channels: Channels = Field(default_factory=Channels)
    commands: Commands = Field(default_factory=Commands)
    group_cache_ttl: Duration = timedelta(minutes=5)
    app_name: Annotated[str, Field(min_length=1, max_length=35)] = "escalation-bot"
    public_url: HttpUrl | None = None
    alert_channels: list[ChannelRef] = Field(
        default_factory=list
    )  # other bots post alerts here; [] = channels.alerts


# ---------------------------------------------------------------- levels


class L1Settings(Section):
    max_attempts: Annotated[Count, _int_range(1, 5)] = 2
    budget: Annotated[Duration, _between(timedelta(seconds=10), timedelta(hours=1))] = timedelta(minutes=5)
    check_timeout: Annotated[Duration, _between(timedelta(seconds=1), timedelta(minutes=5))] = timedelta(
        seconds=20
    )
    verify_poll_interval: PositiveDuration = timedelta(seconds=5)

    @model_validator(mode="after")
    def _fits_budget(self) -> L1Settings:
        problems: list[tuple[Loc, str]] = []
        for key in ("check_timeout", "verify_poll_interval"):
            if getattr(self, key) >= self.budget:
                problems.append(((key,), f"must be shorter than budget ({format_duration(self.budget)})"))
        if problems:
            raise KeyProblems(problems)
        return self


class LevelSettings(Section):
    group: GroupRef
    actors: list[ActorRef] = Field(default_factory=list)
    ack_deadline: PositiveDuration
    reminder_after: PositiveDuration
    auto_escalate: bool = True

    @model_validator(mode="after")
    def _check(self) -> LevelSettings:
        if self.reminder_after >= self.ack_deadline:
            raise KeyProblems(
                [
                    (
                        ("reminder_after",),
                        f"must be shorter than ack_deadline ({format_duration(self.ack_deadline)})",
                    )
                ]
            )
        if not self.actors:
            object.__setattr__(self, "actors", [self.group])
        return self


class L4Settings(Section):
    deciders: list[ActorRef] = Field(default_factory=lambda: ["@ml-deciders"])
    decision_expiry: PositiveDuration = timedelta(hours=24)
    reminder_after: PositiveDuration = timedelta(hours=4)

    @model_validator(mode="after")
    def _check(self) -> L4Settings:
        problems: list[tuple[Loc, str]] = []
        if not self.deciders:
            problems.append((("deciders",), "needs at least one decider"))
        if self.reminder_after >= self.decision_expiry:
            expiry = format_duration(self.decision_expiry)
            problems.append((("reminder_after",), f"must be shorter than decision_expiry ({expiry})"))
        if problems:
            raise KeyProblems(problems)
        return self


_LEVEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "l2": {"group": "@data-coordinator", "ack_deadline": "30m", "reminder_after": "15m"},
    "l3": {"group": "@tech-lead-orchestrator", "ack_deadline": "2h", "reminder_after": "1h"},
}


class Levels(Section):
    """The four levels. l2 and l3 keys left out of app.yaml keep their defaults."""

    l1: L1Settings = Field(default_factory=L1Settings)
    l2: LevelSettings = Field(default_factory=lambda: LevelSettings.model_validate(_LEVEL_DEFAULTS["l2"]))
    l3: LevelSettings = Field(default_factory=lambda: LevelSettings.model_validate(_LEVEL_DEFAULTS["l3"]))
    l4: L4Settings = Field(default_factory=L4Settings)

    @model_validator(mode="before")
    @classmethod
    def _fill_level_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        for name, defaults in _LEVEL_DEFAULTS.items():
            given = filled.get(name)
            if given is None:
                filled.pop(name, None)
            elif isinstance(given, dict):
                filled[name] = {**defaults, **given}
        return filled

    @model_validator(mode="after")
    def _tech_lead_may_act_at_l2(self) -> Levels:
        # The tech lead can step in at L2 unless app.yaml lists the L2 actors explicitly.
        if "actors" not in self.l2.model_fields_set:
            actors = list(dict.fromkeys([self.l2.group, self.l3.group]))
            object.__setattr__(self, "l2", self.l2.model_copy(update={"actors": actors}))
        return self


# ---------------------------------------------------------------- outside systems


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


ObjectRef = Annotated[
    str,
    _matching(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$", "must be 'namespace/name'"),
]


class MlflowSettings(Section):
    request_timeout: PositiveDuration = timedelta(seconds=10)
    max_retries: Annotated[Count, _int_range(0, 5)] = 2
    latency_warn: PositiveDuration = timedelta(seconds=2)  # a slower /health answer is reported as WARN
    server_deployment: ObjectRef | None = None  # the tracking server's Deployment, for a restart


class FreshnessTable(Section):
    """One feature table whose freshness (dbt-style) and schema Level 1 checks."""

    name: Annotated[str, Field(min_length=1)]
    url: Annotated[str, Field(min_length=1)]  # SQLAlchemy URL; "${VAR}" takes it from the environment
    table: Annotated[
        str,
        _matching(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$", "must be table or schema.table"),
    ]
    timestamp_column: Annotated[str, _matching(r"^[A-Za-z_][A-Za-z0-9_]*$", "must be a column name")]
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
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            raise PydanticCustomError("specifier", "must be a version specifier like '>=2.1,<3'") from None
        return value


class VersionSettings(Section):
    matrix: list[CompatibilityRule] = Field(default_factory=list)
    known_good_images: dict[str, str] = Field(default_factory=dict)  # image repository → tag known to work


class ClassificationRule(Section):
    category: Category
    pattern: Annotated[str, Field(min_length=1)]  # a regular expression, case-insensitive
    description: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise PydanticCustomError(
                "regex", "not a valid regular expression: {error}", {"error": str(exc)}
            ) from None
        return value


class ClassificationSettings(Section):
    rules: list[ClassificationRule] = Field(default_factory=list)  # tried before the built-in rules


# ---------------------------------------------------------------- remediation allowlist


class RemediationCaps(Section):
    """Base of the caps a remediation accepts in remediation.allowlist.<name>."""


class RerunWithMoreMemoryCaps(RemediationCaps):
    memory_step_factor: Annotated[float, BeforeValidator(_not_bool)] = 2.0
    max_memory: MemoryQuantity = "16Gi"

    @field_validator("memory_step_factor")
    @classmethod
    def _factor(cls, value: float) -> float:
        if not 1.1 <= value <= 4:
            raise PydanticCustomError("range", "must be between 1.1 and 4")
        return value


class RetryWithDebugCaps(RemediationCaps):
    max_retries: Annotated[Count, _int_range(1, 3)] = 1


class RestartTrackingServerCaps(RemediationCaps):
    max_restarts: Annotated[Count, _int_range(1, 2)] = 1


class RecheckTrackingCaps(RemediationCaps):
    max_checks: Annotated[Count, _int_range(1, 6)] = 3


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
}


class RemediationSettings(Section):
    dry_run: bool = False
    allowlist: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("allowlist", mode="before")
    @classmethod
    def _known_with_caps(cls, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(name, str) for name in value):
            value = dict.fromkeys(value)  # a bare list of names takes every cap's default
        if not isinstance(value, dict):
            return value
        problems: list[tuple[Loc, str]] = []
        caps: dict[str, dict[str, Any]] = {}
        for name, given in value.items():
            model = KNOWN_REMEDIATIONS.get(name)
            if model is None:
                known = ", ".join(sorted(KNOWN_REMEDIATIONS))
                problems.append(((str(name),), f"unknown remediation (known: {known})"))
                continue
            try:
                caps[name] = model.model_validate({} if given is None else given).model_dump()
            except ValidationError as exc:
                problems.extend(((name, *loc), message) for loc, message in _located(exc))
        if problems:
            raise KeyProblems(problems)
        return caps


# ---------------------------------------------------------------- decisions


class DecisionOption(Section):
    label: str = Field(min_length=1, max_length=75)
    trade_off: str = Field(min_length=1, max_length=300)
    action: str | None = None  # None, "resolve", or a name on remediation.allowlist
    style: Literal["primary", "danger"] | None = None


class DecisionTemplate(Section):
    question: str = Field(min_length=1, max_length=300)
    options: list[DecisionOption]

    @model_validator(mode="after")
    def _options(self) -> DecisionTemplate:
        if not 2 <= len(self.options) <= 4:
            raise KeyProblems([(("options",), f"needs 2 to 4 options (got {len(self.options)})")])
        seen: set[str] = set()
        for index, option in enumerate(self.options):
            if option.label.casefold() in seen:
                raise KeyProblems([(("options", index, "label"), f"duplicate label '{option.label}'")])
            seen.add(option.label.casefold())
        return self


TEMPLATE_KEYS: tuple[str, ...] = ("default", *(c.value for c in Category))


class DecisionSettings(Section):
    """L4 templates by category. Keys left out of app.yaml keep the built-in template."""

    templates: dict[str, DecisionTemplate] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _merge_builtins(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = data.get("templates")
        if given is None:
            given = {}
        if not isinstance(given, dict):
            return data
        unknown = [key for key in given if key not in TEMPLATE_KEYS]
        if unknown:
            known = ", ".join(TEMPLATE_KEYS)
            raise KeyProblems(
                [(("templates", str(key)), f"unknown category (known: {known})") for key in unknown]
            )
        ours = {key: value for key, value in given.items() if value is not None}
        return {**data, "templates": {**_builtin_templates(), **ours}}

    @model_validator(mode="after")
    def _has_default(self) -> DecisionSettings:
        if "default" not in self.templates:
            raise KeyProblems([(("templates",), "must contain a 'default' template")])
        return self

    def for_category(self, category: str) -> DecisionTemplate:
        """The template for `category`, or the default one."""
        return self.templates.get(str(category)) or self.templates["default"]


# Written as app.yaml would write them; an option without an action only records the choice.
_BUILTIN_TEMPLATES = """
pipeline_step_failed:
  question: A pipeline step keeps failing after Level 1 and Level 2. How do we proceed?
  options:
    - {label: Retry the step with debug logging, action: retry_job_with_debug, style: primary,
       trade_off: "Cheap to try and leaves detailed logs; a deterministic failure fails again and
         downstream steps wait one more run."}
    - {label: Run downstream on the last good output,
       trade_off: "Keeps the pipeline moving; downstream models and reports use stale data until the
         step is fixed, and their consumers must be told."}
    - {label: Pause the pipeline until the step is fixed,
       trade_off: "No bad or stale data reaches consumers; nothing downstream refreshes until an
         engineer fixes the step, which may take days."}
training_crash:
  question: Training keeps crashing (e.g. out of memory) after Level 1 and Level 2. What do we do
    with this run?
  options:
    - {label: Re-run with more memory, action: rerun_job_with_more_memory, style: primary,
       trade_off: "Fastest way back to a trained model; each run costs more, the memory cap still
         applies, and a leak or data growth is only postponed."}
    - {label: Re-run on a larger node pool,
       trade_off: "Lifts the resource ceiling for this model; an engineer must change the node
         selector, and larger nodes cost more per hour and may queue for capacity."}
    - {label: Reduce batch size and retrain,
       trade_off: "Fits current resources at no extra cost; training takes longer and may converge
         differently, so its metrics need re-validation before promotion."}
    - {label: Keep the current model and defer, action: resolve,
       trade_off: "No risk to production, which keeps serving the current model; this run's
         improvements ship later and the crash stays unexplained."}
tracking_disconnected:
  question: The experiment tracking server is still unreachable. How do training jobs proceed?
  options:
    - {label: "Keep training and log locally, sync later", style: primary,
       trade_off: "Training continues; runs logged during the outage need a manual import afterwards,
         and anything not synced is lost if the pod is deleted."}
    - {label: Pause training until tracking is back,
       trade_off: "No experiment data is lost; GPU time and the training schedule slip for as long as
         the outage lasts."}
    - {label: Accept the gap and close the incident, action: resolve,
       trade_off: "Nothing more to do now; runs from the outage have no tracked metrics or artifacts
         and cannot be compared later."}
model_registration_failed:
  question: The model version failed to register in the model registry. How do we proceed?
  options:
    - {label: Fix the registration and re-register, style: primary,
       trade_off: "Keeps the registry the single source of truth; the new model waits while its
         flavor, signature or the registry configuration is fixed."}
    - {label: "Deploy from the run artifacts, bypassing the registry", style: danger,
       trade_off: "Unblocks the deployment now; the deployed model has no registry version, stage
         history or approval trail until it is registered."}
    - {label: Keep the previous version in production, action: resolve,
       trade_off: "No risk to serving; the new model's improvements wait until registration works."}
feature_store_issue:
  question: Features are stale or their schema changed. How do we proceed?
  options:
    - {label: Re-run feature materialization now, style: primary,
       trade_off: "Freshest features quickly; costs a full materialization run and adds load on the
         online store, possibly during peak traffic."}
    - {label: Serve the last good features,
       trade_off: "No downtime; predictions use features older than their TTL, which can lower model
         accuracy until the next materialization."}
    - {label: Roll back the feature schema change,
       trade_off: "Restores compatibility for the models; the producers' change must be redone later,
         coordinated with every consumer."}
orchestration_timeout:
  question: A pipeline run keeps hitting its deadline. How do we proceed?
  options:
    - {label: Extend the deadline and re-run, style: primary,
       trade_off: "Likely to finish this time; consumers wait longer, and a step that is really stuck
         only fails later."}
    - {label: Split the slow step and add checkpoints,
       trade_off: "Fixes the cause and makes re-runs cheaper; needs engineering work before the next
         successful run."}
    - {label: Skip this run and wait for the next schedule, action: resolve,
       trade_off: "No extra compute; data and models stay one cycle stale."}
version_incompatibility:
  question: A package or image version conflict is breaking the pipeline. How do we proceed?
  options:
    - {label: Pin the last known good versions, style: primary,
       trade_off: "Restores the pipeline fastest; fixes and features in the newer versions are
         postponed, and the pin must be revisited."}
    - {label: Upgrade the code to the new versions,
       trade_off: "Fixes it for good; needs engineering time and re-validation of the affected models
         before release."}
unclassified:
  question: This failure matched no known category and is still open. How do we proceed?
  options:
    - {label: Assign an engineer to investigate, style: primary,
       trade_off: "Finds the real cause; takes engineering time away from planned work."}
    - {label: Roll back the last pipeline change,
       trade_off: "Often restores service quickly; the change must be redone later and the cause may
         lie elsewhere."}
    - {label: Accept the risk and close the incident, action: resolve, style: danger,
       trade_off: "No further effort now; the failure may recur and will escalate again."}
default:
  question: This incident needs a decision. How do we proceed?
  options:
    - {label: Roll back to the last known good state, style: primary,
       trade_off: "Usually restores service fastest; recent changes are undone and must be re-applied
         later."}
    - {label: Fix forward,
       trade_off: "Keeps recent changes; the failure continues until the fix ships."}
    - {label: Accept the risk and close the incident, action: resolve, style: danger,
       trade_off: "No further effort now; the failure may recur and will escalate again."}
"""


def expand_env(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace ${VAR} in a config value (e.g. a feature store URL) with the environment's value."""
    env = os.environ if environ is None else environ
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), value)


def _builtin_templates() -> dict[str, Any]:
    templates: dict[str, Any] = yaml.safe_load(_BUILTIN_TEMPLATES)
    return templates


# ---------------------------------------------------------------- intake, runtime, root


class PollerSettings(Section):
    enabled: bool = True
    interval: PositiveDuration = timedelta(minutes=1)


class PollersSettings(Section):
    mlflow_failed_runs: PollerSettings = Field(
        default_factory=lambda: PollerSettings(interval=timedelta(minutes=2))
    )  # runs FAILED/KILLED since the last poll (needs MLFLOW_TRACKING_URI)
    kubernetes_failed_jobs: PollerSettings = Field(default_factory=PollerSettings)  # in kubernetes.namespaces
    mlflow_experiments: list[str] = Field(default_factory=list)  # experiment names to watch; empty: all


class RateLimit(Section):
    per_second: Annotated[float, BeforeValidator(_not_bool), Field(gt=0, le=100000)] = 50.0
    burst: Annotated[Count, _int_range(1, 1000000)] = 100


AlertSource = Literal["alertmanager", "generic", "mlflow"]


def _default_rate_limits() -> dict[AlertSource, RateLimit]:
    return {
        "alertmanager": RateLimit(),
        "generic": RateLimit(per_second=20, burst=40),
        "mlflow": RateLimit(per_second=20, burst=40),
    }


class IntakeSettings(Section):
    debounce: Duration = timedelta(minutes=1)  # a repeating alert updates its message at most this often
    flap_window: Duration = timedelta(minutes=10)  # a resolved alert firing again within this reopens
    storm_threshold: Annotated[Count, _int_range(1, 10000)] = 10  # new incidents per storm_window per channel
    storm_window: PositiveDuration = timedelta(seconds=60)
    # a delivery with more alerts is refused with 413 (one accepted delivery must answer well inside the
    # sender's timeout: Alertmanager gives up after 10 s and sends everything again)
    max_alerts_per_request: Annotated[Count, _int_range(1, 100000)] = 500
    # a second source reporting the same target (cluster/namespace/Job, MLflow run, model version,
    # feature table, workflow) within this joins the incident instead of opening another
    same_target_window: Duration = timedelta(minutes=30)
    rate_limits: dict[AlertSource, RateLimit] = Field(default_factory=_default_rate_limits)
    pollers: PollersSettings = Field(default_factory=PollersSettings)


class RuntimeSettings(Section):
    # how long a claim on a timer, an outbox row or a stored Slack request lasts unless its process renews
    # it: work a process was doing when it died is taken up again this long afterwards
    claim_lease: Annotated[Duration, _between(timedelta(seconds=2), timedelta(hours=1))] = timedelta(
        seconds=30
    )
    timer_interval: PositiveDuration = timedelta(seconds=1)
    outbox_interval: PositiveDuration = timedelta(milliseconds=500)
    l1_workers: Annotated[Count, _int_range(1, 32)] = 4
    slack_rate_per_channel: Annotated[float, BeforeValidator(_not_bool), Field(gt=0, le=100)] = 1.0
    slack_burst: Annotated[Count, _int_range(1, 100)] = 3


class AppConfig(Section):
    """The whole of app.yaml."""

    slack: SlackSettings = Field(default_factory=SlackSettings)
    levels: Levels = Field(default_factory=Levels)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    remediation: RemediationSettings = Field(default_factory=RemediationSettings)
    decisions: DecisionSettings = Field(default_factory=DecisionSettings)
    feature_store: FeatureStoreSettings = Field(default_factory=FeatureStoreSettings)
    orchestration: OrchestrationSettings = Field(default_factory=OrchestrationSettings)
    versions: VersionSettings = Field(default_factory=VersionSettings)
    classification: ClassificationSettings = Field(default_factory=ClassificationSettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)

    @model_validator(mode="wrap")
    @classmethod
    def _decision_actions(cls, data: Any, handler: Callable[[Any], AppConfig]) -> AppConfig:
        written = _written_template_keys(data)
        config = handler(data)
        allowed = {"resolve", *config.remediation.allowlist}
        problems: list[tuple[Loc, str]] = []
        templates = dict(config.decisions.templates)
        for key, template in config.decisions.templates.items():
            bad = [
                i for i, o in enumerate(template.options) if o.action is not None and o.action not in allowed
            ]
            if not bad:
                continue
            if key in written:
                for index in bad:
                    problems.append(
                        (
                            ("decisions", "templates", key, "options", index, "action"),
                            f"'{template.options[index].action}' is neither 'resolve' nor a remediation "
                            "on remediation.allowlist",
                        )
                    )
            else:
                # A built-in option keeps its label but only records the choice when its
                # remediation is not allowed here.
                options = [
                    o.model_copy(update={"action": None}) if i in bad else o
                    for i, o in enumerate(template.options)
                ]
                templates[key] = template.model_copy(update={"options": options})
        if problems:
            raise KeyProblems(problems)
        object.__setattr__(config, "decisions", config.decisions.model_copy(update={"templates": templates}))
        return config


def _written_template_keys(data: Any) -> set[str]:
    if isinstance(data, AppConfig):
        return set(data.decisions.templates)
    decisions = data.get("decisions") if isinstance(data, dict) else None
    templates = decisions.get("templates") if isinstance(decisions, dict) else None
    if not isinstance(templates, dict):
        return set()
    return {str(key) for key, value in templates.items() if value is not None}


# ---------------------------------------------------------------- error messages


def _message(error: ErrorDetails) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing" or (value is None and kind.endswith("_type")):
        return "needs a value"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "expected a whole number"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return "expected a number"
    if kind in ("bool_type", "bool_parsing"):
        return "expected true or false"
    if kind == "string_type":
        return "expected text"
    if kind == "list_type":
        return "expected a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "expected a mapping of keys to values"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}"
    if kind == "string_too_short":
        return (
            "must not be empty"
            if ctx.get("min_length") == 1
            else f"must be at least {ctx['min_length']} characters"
        )
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters (got {len(str(value))})"
    message = error["msg"]
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _located(exc: ValidationError) -> list[tuple[Loc, str]]:
    located: list[tuple[Loc, str]] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, KeyProblems):
            located.extend(((*loc, *sub), message) for sub, message in cause.problems)
        else:
            located.append((loc, _message(error)))
    return located


def key_path(loc: Loc) -> str:
    """Render a location as app.yaml's key path: ("levels", "l1", "budget") -> "levels.l1.budget"."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def problems_from(exc: ValidationError) -> list[str]:
    """One "<key.path>: <message>" line per validation error."""
    return [f"{key_path(loc)}: {message}" for loc, message in _located(exc)]


# ---------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key written twice in one mapping instead of keeping the last."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str | int | float | bool):
            continue  # SafeLoader reports unhashable keys itself
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the file ({exc.__class__.__name__}: {exc})"]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}: invalid YAML{where}: {exc.problem or exc.context}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {exc}"]) from None


def parse_config(data: Any) -> AppConfig:
    """Validate already-parsed app.yaml content; raise ConfigError with every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [f"(top level): expected a mapping of sections (slack, levels, …), got {type(data).__name__}"]
        )
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from(exc)) from None


def load_config(path: str | Path) -> AppConfig:
    """Read and validate app.yaml; raise ConfigError listing every problem with its key path."""
    return parse_config(_read_yaml(Path(path)))


def check_config(path: str | Path, env: Env | Sequence[str] | None = None) -> list[str]:
    """Every problem with app.yaml, followed by the environment's (an Env or a list of problems)."""
    try:
        load_config(path)
        problems: list[str] = []
    except ConfigError as exc:
        problems = list(exc.problems)
    if isinstance(env, Env):
        problems.extend(env.problems_for_run())
    elif env is not None:
        problems.extend(env)
    return problems


# ---------------------------------------------------------------- environment

_ENV_NAMES: dict[str, str] = {
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_app_token": "SLACK_APP_TOKEN",
    "slack_api_url": "SLACK_API_URL",
    "database_url": "DATABASE_URL",
    "anthropic_api_key": "ANTHROPIC_API_KEY",
    "anthropic_base_url": "ANTHROPIC_BASE_URL",
    "anthropic_model": "ANTHROPIC_MODEL",
    "mlflow_tracking_uri": "MLFLOW_TRACKING_URI",
    "kubeconfig": "KUBECONFIG",
    "alert_webhook_token": "ALERT_WEBHOOK_TOKEN",
    "mlflow_webhook_secret": "MLFLOW_WEBHOOK_SECRET",
}


@dataclass(frozen=True)
class Env:
    """Secrets and endpoints from the environment; None when unset or empty."""

    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str | None = None
    database_url: str | None = None
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    mlflow_tracking_uri: str | None = None
    kubeconfig: str | None = None
    alert_webhook_token: str | None = None
    mlflow_webhook_secret: str | None = None
    anthropic_model: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Env:
        """Read the variables from `environ` (os.environ when None)."""
        source = os.environ if environ is None else environ
        return cls(**{field: (source.get(name) or "").strip() or None for field, name in _ENV_NAMES.items()})

    @property
    def socket_mode(self) -> bool:
        """True when an app-level token is set, so Slack is reached over Socket Mode."""
        return self.slack_app_token is not None

    def problems_for_run(self) -> list[str]:
        """What stops `run` from talking to Slack and the database (values are never echoed)."""
        problems: list[str] = []
        if self.slack_bot_token is None:
            problems.append("SLACK_BOT_TOKEN: required (the bot token, starting with 'xoxb-')")
        elif not self.slack_bot_token.startswith("xoxb-"):
            problems.append("SLACK_BOT_TOKEN: must start with 'xoxb-'")
        if self.slack_signing_secret is None and self.slack_app_token is None:
            problems.append("SLACK_SIGNING_SECRET: required unless SLACK_APP_TOKEN is set (Socket Mode)")
        if self.slack_app_token is not None and not self.slack_app_token.startswith("xapp-"):
            problems.append("SLACK_APP_TOKEN: must start with 'xapp-'")
        if self.slack_api_url is not None and not re.match(r"https?://[^\s/]+", self.slack_api_url):
            problems.append("SLACK_API_URL: must be an http(s) URL, e.g. https://slack.com/api/")
        if self.database_url is not None and not self.database_url.startswith(("sqlite", "postgresql")):
            problems.append("DATABASE_URL: must start with 'sqlite' or 'postgresql'")
        return problems

    def database_url_or_default(self, default: str) -> str:
        """DATABASE_URL, or `default` when it is unset."""
        return self.database_url or default

    @property
    def slack_api_url_normalized(self) -> str | None:
        """SLACK_API_URL ending in "/", as slack_sdk's base_url needs (".../api/")."""
        if self.slack_api_url is None:
            return None
        return self.slack_api_url if self.slack_api_url.endswith("/") else self.slack_api_url + "/"
