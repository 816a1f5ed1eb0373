"""What one delivery's alerts do to incidents, inside its transaction: open a new one, count a repeat,
record another source joining, note that the alert resolved, reopen a flapping one."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot.config import AppConfig
from bot.core.classify import Rule, classify
from bot.core.models import AlertIn, Category, IncidentStatus, Level
from bot.core.policy import Policy, policy_of
from bot.integrations.slack.outbox import enqueue
from bot.services.opening import Opening, new_incident, occurrence, start_l1
from bot.services.records import timeline
from bot.services.refresh import MessageRefresh
from bot.services.snapshot import policy_from_config
from bot.services.storm import StormDesk
from bot.store.tables import Incident

SAME_NOTIFICATION = timedelta(minutes=1)  # the same firing delivered again within this is one delivery


@dataclass
class IngestResult:
    accepted: int = 0
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    duplicates: int = 0  # the same notification delivered again (an HA pair): stored, not counted

    def added_to(self, stored: dict[str, Any]) -> dict[str, Any]:
        """A stored delivery's result with this chunk's added (counts summed, incident ids appended)."""
        total = dict(stored)
        for key, value in asdict(self).items():
            total[key] = (
                total.get(key, 0) + value if isinstance(value, int) else [*total.get(key, []), *value]
            )
        return total


@dataclass
class Batch:
    """One delivery's transaction: what it changed, and what is left for after the commit."""

    s: Session
    now: datetime
    config: AppConfig
    desk: StormDesk
    refresh: MessageRefresh
    rules: tuple[Rule, ...]
    truncated: int
    result: IngestResult = field(default_factory=IngestResult)
    to_resolve: list[int] = field(default_factory=list)  # closed after the commit, by a transition
    opened_categories: list[str] = field(default_factory=list)
    roots: dict[int, Incident] = field(default_factory=dict)  # root messages to refresh (debounced)
    policies: dict[Category, Policy] = field(default_factory=dict)
    delivery_id: int | None = None  # the stored delivery these alerts came in (alerts sent together)

    def open(self, alert: AlertIn, key: str | None) -> Incident:
        """A new incident at Level 1: its root message (or its place in a storm) and Level 1's timers."""
        found = classify(alert, self.rules)
        policy = self.policies.get(found.category)
        if policy is None:
            policy = self.policies[found.category] = policy_from_config(self.config, found.category)
        opening = Opening(alert, found, policy, target_key=key, truncated=self.truncated)
        inc = new_incident(self.s, self.now, opening)
        inc.delivery_id = self.delivery_id
        self.opened_categories.append(found.category.value)
        if alert.slack_channel and alert.slack_ts:
            # the alert is already a Slack message: its thread is where Level 1 reports
            inc.alert_channel, inc.alert_ts = alert.slack_channel, alert.slack_ts
        else:
            channel = policy.channels["alerts"]
            storm = self.desk.place(inc, channel)
            inc.root_channel = channel  # after place(): it counts the incidents already there
            if storm is not None:
                # in a storm the summary is the root: Level 1 reports in its thread
                inc.storm_id, inc.alert_outbox_id = storm.id, storm.outbox_id
            else:
                payload = self.refresh.composer.alert_message(inc)
                inc.alert_outbox_id = enqueue(
                    self.s, self.now, "post", incident_id=inc.id, channel=channel, **payload
                ).id
        self.s.add(inc)
        start_l1(self.s, inc, policy, self.now)
        self.result.opened.append(inc.id or 0)
        return inc

    def repeat(self, inc: Incident, alert: AlertIn) -> None:
        key = occurrence(alert)
        window = max(self.config.intake.debounce, SAME_NOTIFICATION)
        last = inc.last_alert_at
        if key is not None and key == inc.last_alert_key and last is not None and self.now - last < window:
            self.result.duplicates += 1  # the same notification again: an HA pair or a group re-send
            return
        inc.alert_count += 1
        inc.last_alert_at, inc.last_alert_key = self.now, key
        inc.group_key = inc.group_key or alert.group_key
        inc.updated_at = self.now
        if inc.alert_resolved_at is not None:
            inc.alert_resolved_at = None  # firing again: the "alert resolved" line goes away
            timeline(self.s, inc.id or 0, self.now, "alert_firing_again", None, source=alert.source)
            self.refresh.level(self.s, inc, self.now)
        self.s.add(inc)
        self.result.updated.append(inc.id or 0)
        self.desk.repeat(inc)
        self.roots[inc.id or 0] = inc

    def join(self, inc: Incident, alert: AlertIn) -> None:
        """Record on `inc` that another source reports the same failure (once per source)."""
        if alert.source in inc.sources:
            return
        inc.sources = [*inc.sources, alert.source]
        inc.updated_at = self.now
        self.s.add(inc)
        detail = {"source": alert.source, "fingerprint": alert.fingerprint}
        timeline(self.s, inc.id or 0, self.now, "source_joined", None, **detail)
        if inc.status != IncidentStatus.RESOLVED.value:
            self.roots[inc.id or 0] = inc

    def resolved(self, inc: Incident) -> None:
        if inc.alert_resolved_at is not None:
            self.result.duplicates += 1  # already told (an HA pair, or a repeat of the resolved notice)
            return
        inc.alert_resolved_at = self.now
        inc.last_alert_at, inc.last_alert_key = self.now, "resolved"
        self.s.add(inc)
        timeline(self.s, inc.id or 0, self.now, "alert_resolved_received", None, source=inc.source)
        if inc.status == IncidentStatus.L1_RUNNING.value:
            self.to_resolve.append(inc.id or 0)
        else:
            # people own it now: say so on their message, and let them close it
            self.refresh.level(self.s, inc, self.now)

    def reopen(self, inc: Incident, alert: AlertIn) -> None:
        """A resolved incident fires again inside the flap window: reopen it and run Level 1 again."""
        resolved_at = inc.resolved_at
        inc.status, inc.level = IncidentStatus.L1_RUNNING.value, Level.L1.value
        inc.resolved_at = inc.resolved_by = inc.resolved_level = inc.resolution_note = None
        inc.acked_at = inc.acked_by = inc.alert_resolved_at = None
        inc.investigation = {}  # the last opening's cause and drafts cite findings of that opening
        inc.reopened_count += 1
        inc.alert_count += 1
        # Level 1's budget counts from opened_at; the first opening stays in the timeline
        inc.opened_at = inc.updated_at = inc.last_alert_at = self.now
        inc.delivery_id = self.delivery_id  # reopened: sent with this notification's alerts
        inc.last_alert_key = occurrence(alert)
        inc.version += 1
        self.s.add(inc)
        timeline(
            self.s,
            inc.id or 0,
            self.now,
            "reopened",
            None,
            source=alert.source,
            reopened_count=inc.reopened_count,
            resolved_at=resolved_at.isoformat() if resolved_at else None,
        )
        start_l1(self.s, inc, policy_of(inc), self.now)
        self.refresh.root(self.s, inc, self.now, immediate=True)
        self.roots.pop(inc.id or 0, None)
        self.result.reopened.append(inc.id or 0)

    def note_truncated(self, inc: Incident) -> None:
        if self.truncated == inc.truncated_alerts:
            return
        inc.truncated_alerts = self.truncated
        self.s.add(inc)
        if self.truncated:
            timeline(self.s, inc.id or 0, self.now, "alerts_truncated", None, truncated=self.truncated)
        if inc.id not in self.result.opened:  # a new root message already says so
            self.roots[inc.id or 0] = inc

    def finish(self) -> None:
        """Storm summaries and the debounced root messages, once each."""
        self.desk.finish()
        for inc in self.roots.values():
            self.refresh.root(self.s, inc, self.now, immediate=False)
            self.s.add(inc)


def started_before(alert: AlertIn, resolved_at: datetime | None) -> bool:
    """Whether the alert's failure started before its target's incident was resolved (unknown: yes)."""
    if alert.starts_at is None or resolved_at is None:
        return True
    resolved = resolved_at if resolved_at.tzinfo else resolved_at.replace(tzinfo=UTC)
    return alert.starts_at <= resolved
