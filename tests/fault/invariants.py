"""The invariants every run must keep, checked from outside once the bot is quiet and stopped: the database
read directly with SQLAlchemy, the messages the Slack emulator holds, and the Jobs the Kubernetes sandbox
holds. Each violation is one line that says what was seen, with ids, so it can be reproduced.

1. every alert the bot answered 2xx for is stored and belongs to an incident;
2. every Slack message exists exactly once;
3. every due timer fires once;
4. no decision a person made (and the bot acked) is lost;
5. no remediation is applied twice.

Besides these, [scenario] lines say the scenarios did not finish (an incident left at Level 1, a chosen
option's action never carried out), and [fault] lines that an outage did not do what it was meant to.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bot.config import KNOWN_REMEDIATIONS
from bot.diagnostics.kube_common import INCIDENT_LABEL, REMEDIATION_ANNOTATION
from bot.store.tables import (
    Alert,
    Decision,
    Escalation,
    Incident,
    OutboxMessage,
    RemediationAttempt,
    TimelineEvent,
    Timer,
)
from tests.fault.slack_view import SlackView, is_refusal

if TYPE_CHECKING:
    from tests.fault.run import Run
    from tests.fault.scenario import Scenario

# The per-incident cap each remediation's caps carry in the policy snapshot (else only l1.max_attempts).
GRACE = timedelta(seconds=3)  # the quiet window (1.5 s), the timer interval (1 s) and a margin
CAP_KEYS = {"retry_job_with_debug": "max_retries", "restart_tracking_server": "max_restarts"}


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Snapshot:
    """Everything the checks read, taken once."""

    def __init__(self, run: Run) -> None:
        with run.db.connect() as conn:

            def rows(table: Any) -> list[Any]:
                return list(conn.execute(select(table).order_by(table.id)))

            self.alerts = rows(Alert)
            self.incidents = {r.id: r for r in rows(Incident)}
            self.outbox = rows(OutboxMessage)
            self.timers = rows(Timer)
            self.escalations = rows(Escalation)
            self.decisions = rows(Decision)
            self.attempts = rows(RemediationAttempt)
            self.timeline = rows(TimelineEvent)
        self.now = datetime.now(UTC)
        self.slack = SlackView(run.world.slack)
        self.ephemerals = run.world.slack.ephemerals()
        self.jobs = [j for j in run.world.jobs() if INCIDENT_LABEL in (j["metadata"].get("labels") or {})]


def check(run: Run, scenario: Scenario) -> None:
    snap = Snapshot(run)
    for name, checker in (
        ("1 alerts", alerts_stored),
        ("2 messages", messages_once),
        ("3 timers", timers_fire_once),
        ("4 decisions", decisions_kept),
        ("5 remediations", remediations_once),
    ):
        for problem in checker(run, snap):
            run.violation(f"[{name}] {problem}")
    for problem in decision_actions_ran(run, snap):
        run.violation(f"[scenario] {problem}")
    for problem in scenario.faults.check():
        run.violation(f"[fault] {problem}")
    unfinished = [i for i in snap.incidents.values() if i.status == "l1_running"]
    for inc in unfinished:
        run.violation(f"[scenario] INC-{inc.id} is still at Level 1 (l1_running) after the run")
    run.note(
        "incidents: "
        + "; ".join(f"INC-{i.id} {i.level} {i.status}" for i in snap.incidents.values())
        + f"; {len(snap.slack.messages)} messages, {len(snap.jobs)} Jobs created"
    )


# -- 1 -----------------------------------------------------------------------------------------------------
def alerts_stored(run: Run, snap: Snapshot) -> list[str]:
    problems = []
    answered: Counter[str] = Counter()
    for it in run.interactions:
        if it.kind == "webhook":
            for fp in it.effect["fingerprints"]:
                answered[f"am:{fp}"] += 1
    stored = Counter(a.fingerprint for a in snap.alerts)
    for fp, n in answered.items():
        if stored[fp] < n:
            problems.append(
                f"{n} webhook(s) with alert {fp} were answered 2xx but {stored[fp]} alert row(s) are stored"
            )
    for a in snap.alerts:
        if a.incident_id is None or a.incident_id not in snap.incidents:
            problems.append(
                f"alert row {a.id} ({a.fingerprint}) belongs to no incident (incident_id={a.incident_id})"
            )
    return problems


# -- 2 -----------------------------------------------------------------------------------------------------
def messages_once(run: Run, snap: Snapshot) -> list[str]:
    problems = []
    by_outbox: dict[int, list[Any]] = defaultdict(list)
    for m in snap.slack.messages:
        if m.outbox_id is not None:
            by_outbox[m.outbox_id].append(m)
    rows = {r.id: r for r in snap.outbox}
    for outbox_id, msgs in sorted(by_outbox.items()):
        if len(msgs) > 1:
            where = ", ".join(m.where() for m in msgs)
            problems.append(
                f"outbox row {outbox_id} posted {len(msgs)} times ({where}): '{msgs[0].first_line}'"
            )
        if outbox_id not in rows:
            problems.append(f"message with outbox id {outbox_id} has no outbox row: '{msgs[0].first_line}'")
    for m in snap.slack.messages:
        if m.outbox_id is None:
            problems.append(f"bot message without an outbox id at {m.where()}: '{m.first_line}'")
    per_level: dict[tuple[int, str, str], list[Any]] = defaultdict(list)
    for m in snap.slack.messages:
        if m.incident is not None and m.kind in ("root", "l1_report", "escalation", "decision"):
            per_level[(m.incident, m.kind, m.level or "")].append(m)
    for (incident, kind, level), msgs in sorted(per_level.items()):
        if len(msgs) > 1:
            ids = ", ".join(f"outbox {m.outbox_id} at {m.where()}" for m in msgs)
            problems.append(
                f"INC-{incident} has {len(msgs)} {kind} messages{' at ' + level if level else ''}: {ids}"
            )
    # ephemerals carry no metadata: each one shown must have an outbox row of its own
    queued = Counter(
        (r.channel, r.payload.get("user"), r.payload.get("text"))
        for r in snap.outbox
        if r.kind == "ephemeral"
    )
    shown = Counter((e.get("channel"), e.get("user"), e.get("text")) for e in snap.ephemerals)
    for (_channel, user, text), n in sorted(shown.items(), key=str):
        rows_for = sum(v for (_c, u, t), v in queued.items() if u == user and t == text)
        if n > rows_for:
            problems.append(
                f"ephemeral to {user} shown {n} times for {rows_for} outbox row(s): '{str(text)[:90]}'"
            )
    for r in snap.outbox:
        if r.kind == "post" and r.status == "sent":
            found = [m for m in by_outbox.get(r.id, []) if (m.ts, r.result_ts) and m.ts == r.result_ts]
            if not found:
                problems.append(
                    f"outbox row {r.id} (post for INC-{r.incident_id}) is marked sent as ts {r.result_ts} "
                    "but Slack holds no such message"
                )
        if r.kind == "post" and r.status == "dead":
            problems.append(
                f"outbox row {r.id} (post for INC-{r.incident_id} to {r.channel}) was given up: {r.error}"
            )
        if r.status in ("pending", "sending"):
            problems.append(
                f"outbox row {r.id} ({r.kind} for INC-{r.incident_id}) is still {r.status} "
                f"(attempts {r.attempts})"
            )
    return problems


# -- 3 -----------------------------------------------------------------------------------------------------
def timers_fire_once(run: Run, snap: Snapshot) -> list[str]:
    problems = []
    for t in snap.timers:
        due, lease = _utc(t.due_at), _utc(t.claimed_until)
        what = f"timer {t.id} {t.kind} {t.payload.get('level', '')} for INC-{t.incident_id}".replace(
            "  ", " "
        )
        # a timer that fell due in the last moments before the stop had no time to fire; any earlier
        # one kept the bot from counting as quiet
        if t.status == "pending" and due is not None and due <= run.stopped_at - GRACE:
            problems.append(f"{what} was due at {due:%H:%M:%S} and never fired")
        elif t.status == "running" and lease is not None and lease < snap.now:
            problems.append(f"{what} was claimed (attempt {t.attempts}) and never finished")
        elif t.status == "running":
            inc = snap.incidents.get(t.incident_id)
            moved_on = t.kind == "run_l1" and inc is not None and inc.status != "l1_running"
            held = f"{what} is held by a dead process's claim until {lease:%H:%M:%S}" if lease else what
            if moved_on:
                run.note(f"{held}; its incident moved on (l1_deadline escalated it)")
            else:
                problems.append(held)
        elif t.status == "failed":
            problems.append(f"{what} failed after {t.attempts} attempts")
    # reminders: one message per reminder the timeline records, at most one per incident, level and kind
    reminders: Counter[tuple[int, str, str]] = Counter()
    for m in snap.slack.messages:
        if m.kind in ("reminder", "overdue") and m.incident is not None:
            reminders[(m.incident, m.level or "", m.kind)] += 1
    for (incident, level, kind), n in sorted(reminders.items()):
        if n > 1:
            problems.append(f"INC-{incident} got {n} {kind} messages at {level}")
    recorded: Counter[tuple[int, str]] = Counter(
        (e.incident_id, e.detail.get("level", "")) for e in snap.timeline if e.kind == "reminded"
    )
    shown: Counter[tuple[int, str]] = Counter()
    for (incident, level, _kind), n in reminders.items():
        shown[(incident, level)] += n
    for key in sorted(set(recorded) | set(shown)):
        if recorded[key] != shown[key]:
            problems.append(
                f"INC-{key[0]} at {key[1]}: {recorded[key]} reminder(s) in the timeline, "
                f"{shown[key]} in Slack"
            )
    # escalations: one per incident and level, one decision request per incident
    for (incident, level), n in sorted(Counter((e.incident_id, e.level) for e in snap.escalations).items()):
        if n > 1:
            problems.append(f"INC-{incident} was escalated to {level} {n} times (escalations rows)")
    for incident, n in sorted(Counter(d.incident_id for d in snap.decisions).items()):
        if n > 1:
            problems.append(f"INC-{incident} has {n} decision requests (decisions rows)")
    moves = Counter(
        (e.incident_id, e.detail.get("level", ""))
        for e in snap.timeline
        if e.kind in ("escalated", "auto_escalated", "decision_requested")
    )
    for (incident, level), n in sorted(moves.items()):
        if n > 1:
            problems.append(f"INC-{incident} moved to {level} {n} times (timeline)")
    return problems


# -- 4 -----------------------------------------------------------------------------------------------------
def decisions_kept(run: Run, snap: Snapshot) -> list[str]:
    """A click or submission the bot acked either took effect or the person was told why not."""
    problems = []
    for it in run.interactions:
        if not it.effect or it.kind == "webhook":
            continue
        took, expected = _took_effect(it.effect, snap)
        if took:
            continue
        told = [
            e
            for e in snap.ephemerals
            if e.get("user") == it.user
            and float(e.get("ts", 0)) >= it.at_wall - 1
            and is_refusal(e.get("text", ""))
        ]
        if "decided" in it.effect:  # the decision itself must be recorded, whoever's click recorded it
            problems.append(
                f"'{it.what}' was acked at {time.strftime('%H:%M:%S', time.gmtime(it.at_wall))} "
                f"but {expected}"
            )
        elif not told:
            problems.append(f"'{it.what}' was acked but {expected}, and {it.user} was told nothing")
        else:
            run.note(f"'{it.what}': {expected}; {it.user} was told: {told[0].get('text', '')[:120]}")
    return problems


def decision_actions_ran(run: Run, snap: Snapshot) -> list[str]:
    """The scenario ends with the chosen option's action carried out: a decision that names a remediation
    creates its Job (recorded as a decided remediation attempt)."""
    problems = []
    for d in snap.decisions:
        if d.status != "decided" or d.chosen_index is None:
            continue
        action = (d.options[d.chosen_index] or {}).get("action")
        if not action or action == "resolve":
            continue
        ran = [
            a
            for a in snap.attempts
            if a.incident_id == d.incident_id and a.name == action and (a.evidence or {}).get("decided")
        ]
        if not ran:
            message = snap.slack.level_message(d.incident_id, "L4")
            said = (
                [m.first_line for m in snap.slack.replies(message) if m.kind == "action_failed"]
                if message
                else []
            )
            problems.append(
                f"decision {d.id} for INC-{d.incident_id} chose '{d.chosen_label}' ({action}) but the "
                "action was never carried out (no decided remediation_attempts row)"
                + (f"; the decision thread says: {said[0]}" if said else "")
            )
    return problems


def _took_effect(effect: dict[str, Any], snap: Snapshot) -> tuple[bool, str]:
    if "ack" in effect:
        incident, level = effect["ack"]
        ok = any(
            e.incident_id == incident and e.kind == "acknowledged" and e.detail.get("level") == level
            for e in snap.timeline
        )
        return ok, f"INC-{incident} has no acknowledgement at {level} recorded"
    if "escalated" in effect:
        incident, level, user = effect["escalated"]
        ok = any(
            e.incident_id == incident and e.level == level and e.escalated_by == user
            for e in snap.escalations
        )
        return ok, f"INC-{incident} has no escalation to {level} by {user} recorded"
    if "decision_requested" in effect:
        incident, user = effect["decision_requested"]
        ok = any(d.incident_id == incident and d.requested_by == user for d in snap.decisions)
        return ok, f"INC-{incident} has no decision request by {user} recorded"
    if "decided" in effect:
        incident, index, user = effect["decided"]
        decided = [d for d in snap.decisions if d.incident_id == incident and d.status == "decided"]
        ok = any(d.chosen_index == index and d.chosen_by == user for d in decided)
        state = ", ".join(f"decision {d.id} {d.status}" for d in snap.decisions if d.incident_id == incident)
        return ok, f"the decision for INC-{incident} was never recorded ({state or 'no decision row'})"
    if "rationale" in effect:
        decision_id, rationale = effect["rationale"]
        ok = any(d.id == decision_id and d.rationale == rationale for d in snap.decisions)
        return ok, f"decision {decision_id} has no rationale recorded"
    return True, ""


# -- 5 -----------------------------------------------------------------------------------------------------
def remediations_once(run: Run, snap: Snapshot) -> list[str]:
    problems = []
    jobs_by: dict[tuple[int, str], list[str]] = defaultdict(list)
    for job in snap.jobs:
        meta = job["metadata"]
        incident = int(meta["labels"][INCIDENT_LABEL])
        remediation = (meta.get("annotations") or {}).get(REMEDIATION_ANNOTATION, "?")
        jobs_by[(incident, remediation)].append(meta["name"])
    recorded_names: Counter[str] = Counter()
    for a in snap.attempts:
        name = ((a.evidence or {}).get("response") or {}).get("name")
        if name:
            recorded_names[name] += 1
    for (incident, remediation), names in sorted(jobs_by.items()):
        inc = snap.incidents.get(incident)
        policy = inc.policy if inc is not None else {}
        allowlist = policy.get("allowlist") or {}
        l1_cap = int(policy.get("l1_max_attempts", 2))
        if remediation in CAP_KEYS:
            caps = KNOWN_REMEDIATIONS[remediation].model_validate(allowlist.get(remediation, {}))
            l1_cap = min(l1_cap, int(getattr(caps, CAP_KEYS[remediation])))
        by_decision = sum(
            1
            for d in snap.decisions
            if d.incident_id == incident
            and d.status == "decided"
            and d.chosen_index is not None
            and (d.options[d.chosen_index] or {}).get("action") == remediation
        )
        allowed = l1_cap + by_decision
        if len(names) > allowed:
            problems.append(
                f"INC-{incident}: {remediation} created {len(names)} Jobs ({', '.join(names)}); "
                f"at most {allowed} allowed (Level 1 cap {l1_cap} + {by_decision} decided)"
            )
        for name in names:
            if recorded_names[name] == 0:
                problems.append(
                    f"INC-{incident}: Job {name} ({remediation}) was created but no "
                    "remediation_attempts row records it"
                )
    for name, n in recorded_names.items():
        if n > 1:
            problems.append(f"Job {name} is recorded by {n} remediation_attempts rows")
    created = {job["metadata"]["name"] for job in snap.jobs}
    for name in recorded_names:
        if name not in created:
            problems.append(f"a remediation_attempts row records Job {name}, which the cluster does not hold")
    l1_attempts = Counter((a.incident_id, a.name, a.attempt) for a in snap.attempts if a.attempt > 0)
    for (incident, name, attempt), n in sorted(l1_attempts.items()):
        if n > 1:
            problems.append(f"INC-{incident}: Level 1 attempt {attempt} ({name}) is recorded {n} times")
    return problems
