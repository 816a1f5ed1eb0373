"""The state machine and who may act: pure functions, tested table-driven with no fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.core.errors import Conflict
from bot.core.models import IncidentStatus as S
from bot.core.models import Level as L
from bot.core.policy import Event as E
from bot.core.policy import Policy, is_allowed, is_urgent, step

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
POLICY = Policy(
    channels={"alerts": "#a", "coordinator": "#c", "tech_lead": "#t", "decisions": "#d", "admin": ""},
    mentions={"L2": ["@c"], "L3": ["@t"], "L4": ["@d"]},
    actors={"L2": ["@c", "@t"], "L3": ["@t"], "L4": ["@d"]},
    ack_deadline_s={"L2": 1800, "L3": 7200},
    reminder_after_s={"L2": 900, "L3": 3600},
    auto_escalate={"L2": True, "L3": True},
    decision_expiry_s=86400,
    decision_reminder_s=14400,
    l1_max_attempts=2,
    l1_budget_s=300,
    check_timeout_s=20,
    verify_poll_s=5,
    dry_run=False,
    allowlist={},
    namespaces=["ml"],
)


@pytest.mark.parametrize(
    ("level", "status", "event", "to_level", "to_status"),
    [
        (L.L1, S.L1_RUNNING, E.L1_FIXED, L.L1, S.RESOLVED),
        (L.L1, S.L1_RUNNING, E.L1_FAILED, L.L2, S.OPEN),
        (L.L1, S.L1_RUNNING, E.ALERT_RESOLVED, L.L1, S.RESOLVED),
        (L.L2, S.OPEN, E.ACK, L.L2, S.ACKNOWLEDGED),
        (L.L2, S.OPEN, E.RESOLVE, L.L2, S.RESOLVED),
        (L.L2, S.ACKNOWLEDGED, E.RESOLVE, L.L2, S.RESOLVED),
        (L.L2, S.OPEN, E.ESCALATE, L.L3, S.OPEN),
        (L.L2, S.ACKNOWLEDGED, E.ESCALATE, L.L3, S.OPEN),
        (L.L2, S.OPEN, E.ACK_TIMEOUT, L.L3, S.OPEN),
        (L.L3, S.OPEN, E.ACK, L.L3, S.ACKNOWLEDGED),
        (L.L3, S.ACKNOWLEDGED, E.ASK_DECISION, L.L4, S.DECISION_PENDING),
        (L.L3, S.OPEN, E.ACK_TIMEOUT, L.L4, S.DECISION_PENDING),
        (L.L4, S.DECISION_PENDING, E.DECIDE, L.L4, S.DECIDED),
        (L.L4, S.DECIDED, E.RESOLVE, L.L4, S.RESOLVED),
    ],
)
def test_each_event_moves_an_incident_where_the_protocol_says(
    level: L, status: S, event: E, to_level: L, to_status: S
) -> None:
    nxt = step(level, status, event, POLICY, NOW)
    assert (nxt.level, nxt.status) == (to_level, to_status)


@pytest.mark.parametrize(
    ("level", "status", "event"),
    [
        (L.L2, S.RESOLVED, E.ACK),
        (L.L2, S.ACKNOWLEDGED, E.ACK),
        (L.L2, S.ACKNOWLEDGED, E.ACK_TIMEOUT),  # acknowledged incidents do not auto-escalate
        (L.L3, S.OPEN, E.ESCALATE),
        (L.L2, S.OPEN, E.ASK_DECISION),
        (L.L4, S.DECIDED, E.DECIDE),
        (L.L1, S.L1_RUNNING, E.ACK),
        (L.L4, S.RESOLVED, E.RESOLVE),
    ],
)
def test_an_event_that_no_longer_applies_is_a_conflict(level: L, status: S, event: E) -> None:
    with pytest.raises(Conflict):
        step(level, status, event, POLICY, NOW)


def test_escalating_to_l2_posts_and_starts_the_reminder_and_the_deadline() -> None:
    nxt = step(L.L1, S.L1_RUNNING, E.L1_FAILED, POLICY, NOW)
    kinds = [(e.kind, e.timer, e.due_at) for e in nxt.effects]
    assert ("post_escalation", None, None) in kinds
    assert ("start_timer", "ack_reminder", NOW + timedelta(minutes=15)) in kinds
    assert ("start_timer", "ack_deadline", NOW + timedelta(minutes=30)) in kinds


def test_time_matters_an_urgent_incident_escalates_in_half_the_time() -> None:
    nxt = step(L.L1, S.L1_RUNNING, E.L1_FAILED, POLICY, NOW, urgent=True)
    deadline = next(e.due_at for e in nxt.effects if e.timer == "ack_deadline")
    assert deadline == NOW + timedelta(minutes=15)
    assert is_urgent({"severity": "critical"}) and is_urgent({"deployment_at_risk": "true"})
    assert not is_urgent({"severity": "warning"})


def test_asking_for_a_decision_posts_it_and_starts_its_timers() -> None:
    nxt = step(L.L3, S.OPEN, E.ASK_DECISION, POLICY, NOW)
    assert [e.kind for e in nxt.effects if e.kind.startswith("post")] == ["post_decision"]
    assert {e.timer for e in nxt.effects if e.kind == "start_timer"} == {
        "decision_reminder",
        "decision_expiry",
    }


@pytest.mark.parametrize(
    ("user", "entries", "members", "allowed"),
    [
        ("U1", ["@c"], {"@c": {"U1", "U2"}}, True),
        ("U3", ["@c"], {"@c": {"U1", "U2"}}, False),
        ("U3", ["@c", "U3"], {"@c": {"U1"}}, True),
        ("U1", [], {}, False),
        ("U1", ["@unknown"], {"@unknown": set()}, False),
    ],
)
def test_who_may_act_is_the_configured_groups_and_users(
    user: str, entries: list[str], members: dict[str, set[str]], allowed: bool
) -> None:
    assert is_allowed(user, entries, members) is allowed


def test_the_policy_snapshot_survives_a_round_trip_through_json() -> None:
    assert Policy.from_dict(POLICY.to_dict()) == POLICY
