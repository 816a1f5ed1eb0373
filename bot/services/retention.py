"""Retention: bookkeeping rows deleted once they stopped mattering (app.yaml `retention`), on a schedule.

What goes, each after its own window:
- `processed_requests`: ids of deliveries already handled (by when they were recorded); with the same
  window the Slack requests handled (`inbox`, by when they were done) and the modals opened (`slack_views`);
- `outbox`: Slack writes sent or given up (never one pending or being sent), by when they ended, except the
  post that is an incident's, an escalation's, a decision's, a storm's or a group's message (later updates
  and replies name it) and a post a waiting row still replies to or rewrites;
- `timers`: timers done, cancelled or failed (never one pending or running), by when they were due;
- `alerts`: raw alerts by when they arrived, except the newest of an incident that is not resolved (its
  Details link to the alert's source), and webhook deliveries applied or failed by when they arrived;
- `incidents` (only when set): resolved incidents, by when they were resolved, with every row of every
  table that has an `incident_id` (findings, timeline, decisions, escalations, resolutions, ...). An
  incident with a Slack write or a timer still waiting stays until a later run.

Incidents, their decisions and their timeline are otherwise never touched. Rows go `batch` at a time, each
batch its own short transaction; on PostgreSQL a batch locks its rows with SKIP LOCKED, so replicas
pruning at once take different rows and never wait on each other."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Table,
    and_,
    column,
    delete,
    exists,
    func,
    inspect,
    or_,
    select,
    union_all,
)
from sqlalchemy import table as table_ref
from sqlalchemy.exc import DBAPIError

from bot.config.operations import RetentionSettings
from bot.core.clock import Clock
from bot.core.models import IncidentStatus
from bot.metrics import Metrics
from bot.store.db import is_postgres, unavailable
from bot.store.tables import (
    Alert,
    Decision,
    Delivery,
    Escalation,
    EscalationGroup,
    InboundRequest,
    Incident,
    OutboxMessage,
    ProcessedRequest,
    SlackView,
    Storm,
    Timer,
)

log = logging.getLogger(__name__)

RESOLVED = IncidentStatus.RESOLVED.value
OUTBOX_ENDED = ("sent", "dead")
OUTBOX_ACTIVE = ("pending", "sending")
TIMERS_ENDED = ("done", "cancelled", "failed")
DELIVERIES_ENDED = ("done", "failed")
PARENTS = ("thread_of", "target_of")  # a row waiting to be sent needs the row it replies to or rewrites
INCIDENT_ROWS = 100  # an incident's rows a batch counts on: `batch // INCIDENT_ROWS` incidents a transaction


def _t(model: Any) -> Table:
    table: Table = model.__table__
    return table


@dataclass(frozen=True)
class Rule:
    """Rows of one table older than a window: by the column `at`, in one of the `ended` statuses (any when
    empty), meeting `more` (given the cut-off time and whether the database is PostgreSQL)."""

    name: str
    table: Table
    at: str
    window: str  # the RetentionSettings field
    ended: tuple[str, ...] = ()
    more: Callable[[datetime, bool], ColumnElement[bool]] | None = None

    def where(self, cut: datetime, postgres: bool) -> ColumnElement[bool]:
        parts = [self.table.c[self.at] < cut]  # NULL (an inbox row not done yet) never compares true
        if self.ended:
            parts.append(self.table.c.status.in_(self.ended))
        if self.more is not None:
            parts.append(self.more(cut, postgres))
        return and_(*parts)


def _outbox_unreferenced(cut: datetime, postgres: bool) -> ColumnElement[bool]:
    o, waiting = _t(OutboxMessage), _t(OutboxMessage).alias("waiting")
    anchors = [
        (_t(Incident), "alert_outbox_id"),
        (_t(Escalation), "outbox_id"),
        (_t(Decision), "outbox_id"),
        (_t(Storm), "outbox_id"),
        (_t(EscalationGroup), "outbox_id"),
    ]
    active = waiting.c.status.in_(OUTBOX_ACTIVE)
    if postgres:  # anti-joins, hashed once per statement
        kept = [exists().where(t.c[name] == o.c.id) for t, name in anchors]
        kept += [exists().where(active, waiting.c[name] == o.c.id) for name in PARENTS]
        unreferenced = and_(*(~k for k in kept))
    else:  # SQLite runs a correlated EXISTS once a row, but builds a NOT IN list once a statement
        named = [select(t.c[name]).where(t.c[name].is_not(None)) for t, name in anchors]
        named += [select(waiting.c[name]).where(active, waiting.c[name].is_not(None)) for name in PARENTS]
        unreferenced = o.c.id.not_in(union_all(*named))
    return and_(or_(o.c.sent_at.is_(None), o.c.sent_at < cut), unreferenced)


def _not_newest_of_open(_cut: datetime, _postgres: bool) -> ColumnElement[bool]:
    a, i, b = _t(Alert), _t(Incident), _t(Alert).alias("newest")
    newest_of_open = (
        select(func.max(b.c.id))
        .select_from(b.join(i, i.c.id == b.c.incident_id))
        .where(i.c.status != RESOLVED)
        .group_by(b.c.incident_id)
    )
    return a.c.id.not_in(newest_of_open)


RULES = (
    Rule("processed_requests", _t(ProcessedRequest), "at", "processed_requests"),
    Rule("inbox", _t(InboundRequest), "done_at", "processed_requests"),
    Rule("slack_views", _t(SlackView), "opened_at", "processed_requests"),
    Rule("outbox", _t(OutboxMessage), "created_at", "outbox", OUTBOX_ENDED, _outbox_unreferenced),
    Rule("timers", _t(Timer), "due_at", "timers", TIMERS_ENDED),
    Rule("alerts", _t(Alert), "received_at", "alerts", more=_not_newest_of_open),
    Rule("deliveries", _t(Delivery), "received_at", "alerts", DELIVERIES_ENDED),
)


class Retention:
    """Deletes what app.yaml's `retention` says has been kept long enough."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        settings: Callable[[], RetentionSettings],
        metrics: Metrics | None = None,
    ) -> None:
        self.engine, self.clock, self.settings, self.metrics = engine, clock, settings, metrics

    def run(self) -> dict[str, int]:
        """The scheduled job: prune as of now. A database that cannot be reached is tried at the next run."""
        try:
            return self.prune(self.clock.now())
        except DBAPIError as exc:
            if not unavailable(exc):
                raise
            log.warning("retention: the database is unavailable, pruning at the next run: %s", exc.orig)
            return {}

    def prune(self, now: datetime) -> dict[str, int]:
        """Delete every row past its window as of `now`; how many went, by table."""
        settings = self.settings()
        counts: dict[str, int] = {}
        for rule in RULES:
            cut = now - getattr(settings, rule.window)
            where = rule.where(cut, is_postgres(self.engine))
            counts[rule.name] = self._batches(rule.table, where, settings.batch)
        if settings.incidents is not None:
            for name, n in self._incidents(now - settings.incidents, settings.batch).items():
                counts[name] = counts.get(name, 0) + n
        for name, n in counts.items():
            if self.metrics is not None:  # 0 too: each table's series exists from the first run, for rate()
                self.metrics.retention_pruned.labels(table=name).inc(n)
        log.info("retention: pruned %s", ", ".join(f"{k}={v}" for k, v in counts.items()) or "nothing")
        return counts

    def _batches(self, table: Table, where: ColumnElement[bool], batch: int) -> int:
        """Delete the rows `where` picks, `batch` at a time, each batch committed on its own."""
        total = 0
        while True:
            ids = select(table.c.id).where(where).order_by(table.c.id).limit(batch)
            if is_postgres(self.engine):
                ids = ids.with_for_update(of=table, skip_locked=True)  # another replica's batch is skipped
            with self.engine.begin() as conn:
                gone = conn.execute(delete(table).where(table.c.id.in_(ids.scalar_subquery()))).rowcount
            total += gone
            if gone < batch:
                return total

    def _incidents(self, cut: datetime, batch: int) -> dict[str, int]:
        """Delete resolved incidents resolved before `cut` with all their rows, a few incidents a batch."""
        tables = self._incident_tables()
        counts = dict.fromkeys([*tables, "incidents"], 0)
        per_batch = max(1, batch // INCIDENT_ROWS)
        while True:
            with self.engine.begin() as conn:
                ids = list(conn.execute(self._resolved_before(cut, per_batch)).scalars())
                for name in tables:
                    t = table_ref(name, column("incident_id"))
                    counts[name] += conn.execute(delete(t).where(t.c.incident_id.in_(ids))).rowcount
                inc = _t(Incident)
                counts["incidents"] += conn.execute(delete(inc).where(inc.c.id.in_(ids))).rowcount
            if len(ids) < per_batch:
                break
        counts.update(self._leftovers(cut, batch))
        return counts

    def _resolved_before(self, cut: datetime, limit: int) -> Any:
        inc, o, t = _t(Incident), _t(OutboxMessage), _t(Timer)
        query = (
            select(inc.c.id)
            .where(
                inc.c.status == RESOLVED,
                inc.c.resolved_at < cut,
                ~exists().where(o.c.incident_id == inc.c.id, o.c.status.in_(OUTBOX_ACTIVE)),
                ~exists().where(t.c.incident_id == inc.c.id, t.c.status.in_(("pending", "running"))),
            )
            .order_by(inc.c.id)
            .limit(limit)
        )
        return query.with_for_update(of=inc, skip_locked=True) if is_postgres(self.engine) else query

    def _incident_tables(self) -> list[str]:
        """Every table of the database with an incident_id column (read from the database itself, so a
        table added later is not forgotten)."""
        schema = inspect(self.engine)
        return sorted(
            name
            for name in schema.get_table_names()
            if name != "incidents" and any(c["name"] == "incident_id" for c in schema.get_columns(name))
        )

    def _leftovers(self, cut: datetime, batch: int) -> dict[str, int]:
        """Storms and escalation groups that ended before `cut` and no longer have an incident in them."""
        storms, groups = _t(Storm), _t(EscalationGroup)
        inc, esc = _t(Incident), _t(Escalation)
        storm_done = and_(storms.c.ended_at < cut, ~exists().where(inc.c.storm_id == storms.c.id))
        group_done = and_(groups.c.closed_at < cut, ~exists().where(esc.c.group_id == groups.c.id))
        return {
            "storms": self._batches(storms, storm_done, batch),
            "escalation_groups": self._batches(groups, group_done, batch),
        }
