"""app.yaml's `levels` section: Level 1's limits, who answers at Levels 2 and 3 and how fast, and who
decides at Level 4."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError, ValidationInfo, field_validator, model_validator

from bot.config.durations import Duration, PositiveDuration, between, format_duration
from bot.config.errors import KeyProblems, Loc
from bot.config.names import ActorRef, GroupRef
from bot.config.section import Section
from bot.config.values import Count, int_range


class L1Settings(Section):
    max_attempts: Annotated[Count, int_range(1, 5)] = 2
    budget: Annotated[Duration, between(timedelta(seconds=10), timedelta(hours=1))] = timedelta(minutes=5)
    check_timeout: Annotated[Duration, between(timedelta(seconds=1), timedelta(minutes=5))] = timedelta(
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
    # who may act at this level; none listed: the level's group
    actors: list[ActorRef] = Field(default_factory=list, validate_default=True)
    ack_deadline: PositiveDuration
    reminder_after: PositiveDuration
    auto_escalate: bool = True

    @field_validator("actors")
    @classmethod
    def _group_when_none_listed(cls, value: list[str], info: ValidationInfo) -> list[str]:
        group = info.data.get("group")  # absent when the group itself is wrong: reported there
        return value or ([group] if group else [])

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
_GROUP: TypeAdapter[str] = TypeAdapter(GroupRef)


def _group(level: Any) -> list[str]:
    """The level's group as a one-item list when it is a valid one (a wrong one is reported at its key)."""
    given = level.get("group") if isinstance(level, dict) else None
    try:
        return [_GROUP.validate_python(given.strip() if isinstance(given, str) else given)]
    except ValidationError:
        return []


class Levels(Section):
    """The four levels. l2 and l3 keys left out of app.yaml keep their defaults."""

    l1: L1Settings = Field(default_factory=L1Settings)
    l2: LevelSettings
    l3: LevelSettings
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
                filled[name] = dict(defaults)
            elif isinstance(given, dict):
                filled[name] = {**defaults, **given}
        l2 = filled["l2"]
        if isinstance(l2, dict) and "actors" not in l2:
            # The tech lead can step in at L2 unless app.yaml lists the L2 actors explicitly.
            filled["l2"] = {**l2, "actors": list(dict.fromkeys(_group(l2) + _group(filled["l3"])))}
        return filled
