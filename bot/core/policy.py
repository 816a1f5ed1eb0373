"""The escalation policy and the incident state machine: pure functions of data and time.

An incident moves  L1 running → resolved at L1, or → L2 open → (acknowledged) → resolved at L2,
or → L3 open → (acknowledged) → resolved at L3, or → L4 decision pending → decided → resolved.
`step` says where an event takes an incident and which effects the service must carry out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from pydantic import TypeAdapter, ValidationError

from bot.core.errors import Conflict
from bot.core.models import IncidentStatus, Level

log = logging.getLogger(__name__)


class Event(StrEnum):
    L1_FIXED = "l1_fixed"
    L1_FAILED = "l1_failed"
    ACK = "ack"
    RESOLVE = "resolve"
    ESCALATE = "escalate"  # L2 → L3, by a person
    ASK_DECISION = "ask_decision"  # L3 → L4, by a person
    ACK_TIMEOUT = "ack_timeout"  # nobody acknowledged in time: the bot moves it up
    DECIDE = "decide"
    ALERT_RESOLVED = "alert_resolved"


@dataclass(frozen=True)
class Policy:
    """The escalation policy snapshot an incident carries, so editing app.yaml never changes it mid-flight."""

    channels: dict[str, str]  # alerts / coordinator / tech_lead / decisions / admin
    mentions: dict[str, list[str]]  # level → groups or users to mention
    actors: dict[str, list[str]]  # level → who may act there (handles, group ids, user ids)
    ack_deadline_s: dict[str, float]  # L2 / L3
    reminder_after_s: dict[str, float]
    auto_escalate: dict[str, bool]
    decision_expiry_s: float
    decision_reminder_s: float
    l1_max_attempts: int
    l1_budget_s: float
    check_timeout_s: float
    verify_poll_s: float
    dry_run: bool
    allowlist: dict[str, dict[str, Any]]
    namespaces: list[str]
    urgent_factor: float = 0.5
    decision_template: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The stored form: every field, and the schema it is written in."""
        return {"schema": POLICY_SCHEMA, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        """Read a stored snapshot of any schema this release knows: older ones are upgraded step by step,
        fields this release does not know are left out, and the rest is checked against the field types."""
        stored = dict(data)
        version = stored.pop("schema", 0)
        if not isinstance(version, int) or version < 0:
            raise ValueError(f"policy snapshot: schema must be a whole number, not {version!r}")
        while version < POLICY_SCHEMA:
            stored = _UPGRADES[version](stored)
            version += 1
        known = {f.name for f in fields(cls)}
        unknown = sorted(stored.keys() - known)
        if unknown:  # written by a newer release: what this one cannot use is dropped
            log.info("policy snapshot (schema %s): ignoring fields %s", version, ", ".join(unknown))
        try:
            return _ADAPTER.validate_python({k: v for k, v in stored.items() if k in known})
        except ValidationError as exc:
            raise ValueError(f"policy snapshot (schema {version}) does not load: {exc}") from None

    def ack_deadline(self, level: Level, urgent: bool) -> float:
        """Seconds an escalation at `level` waits for an acknowledgement ("time matters" halves it)."""
        return self.ack_deadline_s[level.value] * (self.urgent_factor if urgent else 1.0)

    def channel_for(self, level: Level) -> str:
        return {
            Level.L1: self.channels["alerts"],
            Level.L2: self.channels["coordinator"],
            Level.L3: self.channels["tech_lead"],
            Level.L4: self.channels["decisions"],
        }[level]


# The schema the snapshot is written in. A release that adds a field gives it a default or adds an upgrade
# step below; one that renames or removes a field adds an upgrade step. Snapshots are never rewritten.
POLICY_SCHEMA = 1


def _unversioned(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 0, written before snapshots carried a schema: the same fields as schema 1."""
    return data


_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _unversioned}
_ADAPTER = TypeAdapter(Policy)


class HasPolicy(Protocol):
    policy: dict[str, Any]


def policy_of(record: HasPolicy) -> Policy:
    """The policy an incident carries (whatever release stored it)."""
    return Policy.from_dict(record.policy)


@dataclass(frozen=True)
class Effect:
    """Something the service must do after a transition."""

    kind: str  # post_escalation / post_decision / update_message / start_timer / cancel_timers / run_action
    level: Level | None = None
    timer: str | None = None
    due_at: datetime | None = None


@dataclass(frozen=True)
class Step:
    level: Level
    status: IncidentStatus
    effects: tuple[Effect, ...]


_OPEN = {IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED}

_NEXT = {Level.L2: Level.L3, Level.L3: Level.L4}


def is_urgent(labels: Mapping[str, Any]) -> bool:
    """ "Time matters": an incident that puts a model deployment at risk escalates sooner."""
    severity = str(labels.get("severity", "")).lower()
    at_risk = str(labels.get("deployment_at_risk", "")).lower() in {"true", "yes", "1"}
    return at_risk or severity in {"critical", "page", "p1"}


def _timers_for(level: Level, policy: Policy, now: datetime, urgent: bool) -> tuple[Effect, ...]:
    factor = policy.urgent_factor if urgent else 1.0
    if level is Level.L4:
        return (
            Effect(
                "start_timer",
                level,
                "decision_reminder",
                now + timedelta(seconds=policy.decision_reminder_s * factor),
            ),
            Effect(
                "start_timer",
                level,
                "decision_expiry",
                now + timedelta(seconds=policy.decision_expiry_s * factor),
            ),
        )
    key = level.value
    effects = [
        Effect(
            "start_timer",
            level,
            "ack_reminder",
            now + timedelta(seconds=policy.reminder_after_s[key] * factor),
        )
    ]
    if policy.auto_escalate.get(key, True):
        effects.append(
            Effect(
                "start_timer",
                level,
                "ack_deadline",
                now + timedelta(seconds=policy.ack_deadline(level, urgent)),
            )
        )
    return tuple(effects)


def _escalate_to(level: Level, policy: Policy, now: datetime, urgent: bool) -> Step:
    post = Effect("post_decision", level) if level is Level.L4 else Effect("post_escalation", level)
    status = IncidentStatus.DECISION_PENDING if level is Level.L4 else IncidentStatus.OPEN
    effects = (
        Effect("cancel_timers"),
        Effect("update_message"),
        post,
        *_timers_for(level, policy, now, urgent),
    )
    return Step(level, status, effects)


def step(
    level: Level,
    status: IncidentStatus,
    event: Event,
    policy: Policy,
    now: datetime,
    *,
    urgent: bool = False,
) -> Step:
    """Where `event` takes an incident at (`level`, `status`); raises Conflict when it no longer applies."""
    if status is IncidentStatus.RESOLVED:
        raise Conflict(f"the incident is already resolved at {level}")
    if event is Event.L1_FIXED and status is IncidentStatus.L1_RUNNING:
        return Step(Level.L1, IncidentStatus.RESOLVED, (Effect("cancel_timers"),))
    if event is Event.L1_FAILED and status is IncidentStatus.L1_RUNNING:
        step_ = _escalate_to(Level.L2, policy, now, urgent)
        return Step(step_.level, step_.status, tuple(e for e in step_.effects if e.kind != "update_message"))
    if event is Event.ALERT_RESOLVED and status is IncidentStatus.L1_RUNNING:
        return Step(Level.L1, IncidentStatus.RESOLVED, (Effect("cancel_timers"),))
    if event is Event.ACK and status is IncidentStatus.OPEN and level in (Level.L2, Level.L3):
        return Step(level, IncidentStatus.ACKNOWLEDGED, (Effect("cancel_timers"), Effect("update_message")))
    if event is Event.ACK and status is IncidentStatus.ACKNOWLEDGED:
        raise Conflict(f"already acknowledged at {level}")
    if event is Event.RESOLVE and status is IncidentStatus.DECIDED:
        # the decision message already says what was decided; closing adds nothing to it
        return Step(level, IncidentStatus.RESOLVED, (Effect("cancel_timers"),))
    if event is Event.RESOLVE and status in _OPEN:
        return Step(level, IncidentStatus.RESOLVED, (Effect("cancel_timers"), Effect("update_message")))
    if event is Event.ESCALATE and status in _OPEN and level is Level.L2:
        return _escalate_to(Level.L3, policy, now, urgent)
    if event is Event.ASK_DECISION and status in _OPEN and level is Level.L3:
        return _escalate_to(Level.L4, policy, now, urgent)
    if event is Event.ACK_TIMEOUT and status is IncidentStatus.OPEN and level in _NEXT:
        return _escalate_to(_NEXT[level], policy, now, urgent)
    if event is Event.DECIDE and status is IncidentStatus.DECISION_PENDING:
        return Step(
            Level.L4,
            IncidentStatus.DECIDED,
            (Effect("cancel_timers"), Effect("update_message"), Effect("run_action")),
        )
    raise Conflict(f"cannot {event.value.replace('_', ' ')} an incident that is {status.value} at {level}")


def actors_for(level: Level, policy: Policy) -> list[str]:
    """Who may act on an incident at `level` (handles, user-group ids or user ids from app.yaml)."""
    return list(policy.actors.get(level.value, []))


def is_allowed(user_id: str, entries: list[str], members: Mapping[str, set[str]]) -> bool:
    """True when `user_id` is named directly or belongs to one of the groups in `entries`."""
    for entry in entries:
        if entry == user_id:
            return True
        if user_id in members.get(entry, set()):
            return True
    return False
