"""Alert storms and debounced message refreshes.

When more than `storm_threshold` new incidents in `storm_window` would each post a root message to one
channel, the rest share one summary message instead; each incident's Level 1 report goes in its thread.
A message that changes often (a repeating alert, a growing storm) is refreshed through the outbox at
most once per debounce interval: while a write to it is still waiting, the waiting write is rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.integrations.slack.outbox import enqueue, rewrite
from bot.services.messages import Composer
from bot.store.tables import Incident, OutboxMessage, Storm


def refresh_message(
    s: Session,
    now: datetime,
    *,
    post_id: int,
    update_id: int | None,
    last: datetime,
    wait: timedelta | None,
    payload: dict[str, Any],
) -> tuple[int, datetime] | None:
    """Make the message outbox row `post_id` posts show `payload`: now (`wait` None), or no sooner than
    `wait` after its `last` refresh. Returns the newly queued update row's id and when it shows, or None
    when a waiting row was rewritten instead."""
    # still waiting to be posted: post the newest text in the first place
    if rewrite(s, post_id, payload):
        return None
    due = now if wait is None else max(now, last + wait)
    # a refresh is already queued: it carries the newest text (and goes no later than `due`)
    if update_id is not None and rewrite(s, update_id, payload, due):
        return None
    post = s.get(OutboxMessage, post_id)
    sent = post is not None and post.status == "sent" and post.result_ts
    row = enqueue(
        s,
        now,
        "update",
        # not tied to the incident's queue, so a refresh waiting for its slot never holds back a report
        incident_id=None,
        channel=post.result_channel if sent and post else None,
        target_ts=post.result_ts if sent and post else None,
        target_of=None if sent else post_id,
        **payload,
    )
    row.next_attempt_at = due
    s.add(row)
    return row.id or 0, due


def pipeline_of(incident: Incident) -> str:
    """What a storm summary groups incidents by: the job, else the alert name, else the category."""
    labels = incident.labels or {}
    name = (incident.target or {}).get("job") or labels.get("alertname") or incident.category
    return str(name)[:80]


@dataclass
class _Channel:
    recent: int  # new incidents with a root message in this channel within the storm window
    storm: Storm | None
    joined: bool = False  # the storm changed in this delivery: refresh its summary once at the end


@dataclass
class StormDesk:
    """Decides, for one delivery (one transaction), which new incidents join a storm."""

    s: Session
    now: datetime
    composer: Composer
    threshold: int
    window: timedelta
    debounce: timedelta
    _channels: dict[str, _Channel] = field(default_factory=dict)

    def _channel(self, channel: str) -> _Channel:
        state = self._channels.get(channel)
        if state is None:
            since = self.now - self.window
            recent = self.s.exec(
                select(func.count(col(Incident.id))).where(
                    col(Incident.root_channel) == channel,
                    col(Incident.opened_at) > since,
                    col(Incident.reopened_count) == 0,
                )
            ).one()
            query = select(Storm).where(col(Storm.channel) == channel, col(Storm.ended_at).is_(None))
            if self.s.get_bind().dialect.name == "postgresql":
                query = query.with_for_update()
            storm = self.s.exec(query).first()
            state = _Channel(int(recent), storm)
            self._channels[channel] = state
        return state

    def place(self, incident: Incident, channel: str) -> Storm | None:
        """Count a new incident for `channel`; the storm it joins, or None to post its own root message."""
        state = self._channel(channel)
        state.recent += 1
        storm = state.storm
        if storm is not None and storm.last_opened_at <= self.now - self.window:
            self._end(state)  # the storm died down before this incident came
            storm = None
        if state.recent <= self.threshold:
            if storm is not None:
                self._end(state)
            return None
        if storm is None:
            storm = Storm(channel=channel, started_at=self.now, last_opened_at=self.now, pipelines={})
            self.s.add(storm)
            self.s.flush()
            # posted first, so the incidents can name it as their root; finish() writes its text
            row = enqueue(self.s, self.now, "post", channel=channel, **self.composer.storm_summary(storm))
            storm.outbox_id, storm.updated_at = row.id, self.now
            state.storm = storm
        pipelines = dict(storm.pipelines)
        key = pipeline_of(incident)
        pipelines[key] = int(pipelines.get(key, 0)) + 1
        storm.pipelines = pipelines
        storm.incident_count += 1
        storm.alert_count += 1
        storm.last_opened_at = self.now
        state.joined = True
        return storm

    def repeat(self, incident: Incident) -> None:
        """A repeat of an incident in a storm: the summary counts its alerts."""
        if incident.storm_id is None or not incident.root_channel:
            return
        state = self._channel(incident.root_channel)
        if state.storm is not None and state.storm.id == incident.storm_id:
            state.storm.alert_count += 1
            state.joined = True

    def _end(self, state: _Channel) -> None:
        storm = state.storm
        if storm is None:
            return
        storm.ended_at = self.now
        self._refresh(storm, immediate=True)
        state.storm, state.joined = None, False

    def finish(self) -> None:
        """Post or refresh the summary of every storm this delivery changed (once each)."""
        for state in self._channels.values():
            storm = state.storm
            if storm is not None and state.joined:
                self._refresh(storm, immediate=False)

    def _refresh(self, storm: Storm, *, immediate: bool) -> None:
        self.s.flush()  # the summary counts the incidents of this delivery too
        refresh_summary(self.s, self.composer, storm, self.now, None if immediate else self.debounce)


def categories_of(s: Session, storm_id: int | None) -> dict[str, int]:
    """How many of the storm's incidents are in each category now."""
    rows = s.exec(
        select(Incident.category, func.count())
        .where(col(Incident.storm_id) == storm_id)
        .group_by(col(Incident.category))
    ).all()
    return {str(category): int(n) for category, n in rows}


def refresh_summary(
    s: Session, composer: Composer, storm: Storm | int, now: datetime, wait: timedelta | None
) -> None:
    """Show the storm summary as its incidents now stand (one joined, or was re-classified): now (`wait`
    None), or no sooner than `wait` after its last refresh."""
    found = s.get(Storm, storm) if isinstance(storm, int) else storm
    if found is None or found.outbox_id is None:
        return
    queued = refresh_message(
        s,
        now,
        post_id=found.outbox_id,
        update_id=found.update_outbox_id,
        last=found.updated_at or found.started_at,
        wait=wait,
        payload=composer.storm_summary(found, categories_of(s, found.id)),
    )
    if queued is not None:
        found.update_outbox_id, found.updated_at = queued
    s.add(found)
