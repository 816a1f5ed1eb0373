"""The SQL behind the escalation stats (bot.services.stats): aggregate queries only, the same numbers on
SQLite and PostgreSQL. No incident row is loaded into Python; each query returns one row per count, level,
week or name.

Portability: a duration is whole seconds (`seconds_between`, compiled per dialect: `julianday` on SQLite,
`EXTRACT(EPOCH …)` on PostgreSQL, both rounded); a percentile is picked by nearest rank with the window
functions `row_number()` and `count()` (SQLite 3.25+), not `percentile_cont`, which SQLite lacks; a JSON
value is read through SQLAlchemy's JSON index (`json_extract` / `->>`) inside a subquery, so PostgreSQL
never compares two bound copies of its key in a GROUP BY."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, String, and_, case, func, literal, select, union_all
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import col

from bot.store.tables import Escalation, Incident, TimelineEvent

RESOLVED = "resolved"
ACK_KINDS = ("acknowledged", "decided")  # the timeline's acknowledgement at L2/L3, and the decision at L4
PERCENTILES = (50, 90)
Query = Select[*tuple[Any, ...]]  # a SELECT of any columns


class seconds_between(FunctionElement[int]):  # a SQL function, named like one
    """`later - earlier` in whole seconds (rounded), as an integer, on SQLite and PostgreSQL alike."""

    type = Integer()
    inherit_cache = True


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(ROUND((julianday({later}) - julianday({earlier})) * 86400) AS INTEGER)"


@compiles(seconds_between, "postgresql")
def _seconds_postgresql(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(ROUND(EXTRACT(EPOCH FROM ({later} - {earlier}))) AS INTEGER)"


def _when(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def count_columns(level: Any, status: Any) -> list[ColumnElement[int]]:
    """The counts bot.core.targets reads (see bot.services.stats), over the rows a query selects, from their
    incident's `level` and `status` columns."""
    resolved = status == RESOLVED
    return [
        func.count().label("total"),
        _when(resolved).label("resolved"),
        _when(~resolved).label("open"),
        _when(and_(resolved, level == "L1")).label("resolved_l1"),
        _when(level != "L1").label("beyond_l1"),
        _when(and_(resolved, level == "L2")).label("resolved_l2"),
        _when(level == "L4").label("reached_l4"),
    ]


COUNT_KEYS = ("total", "resolved", "open", "resolved_l1", "beyond_l1", "resolved_l2", "reached_l4")


def opened_within(start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(col(Incident.opened_at) >= start, col(Incident.opened_at) < end)


def counts(start: datetime, end: datetime) -> Query:
    """One row: the counts of the incidents opened in [start, end)."""
    return select(*count_columns(col(Incident.level), col(Incident.status))).where(opened_within(start, end))


def weekly_counts(start: datetime, end: datetime, bounds: Sequence[datetime]) -> Query:
    """One row per week that has incidents: its index (0 before bounds[0], i before bounds[i]) and its
    counts. `bounds` are the Mondays (00:00 UTC) after `start` and before `end`: a CASE puts each incident in
    its week, so no dialect's date functions are needed."""
    whens = [(col(Incident.opened_at) < b, i) for i, b in enumerate(bounds)]
    # a CASE needs a WHEN: a period of one week from a Monday 00:00 has no boundary inside it
    week = case(*whens, else_=len(bounds)) if whens else literal(0, Integer)
    inner = select(week.label("week"), col(Incident.level), col(Incident.status)).where(
        opened_within(start, end)
    )
    sub = inner.subquery("weeks")
    return (
        select(sub.c.week, *count_columns(sub.c.level, sub.c.status))
        .group_by(sub.c.week)
        .order_by(sub.c.week)
    )


def pipeline_name() -> ColumnElement[str]:
    """The pipeline an incident is about, as bot.services.learning.pipeline_of reads it: its `pipeline`
    label, else its workflow's, else its Job's name; NULL when it names none."""
    labels, target = col(Incident.labels), col(Incident.target)
    parts = (
        labels["pipeline"],
        target["workflow"],
        labels["workflow"],
        target["job"],
        labels["job_name"],
    )
    return func.coalesce(*(func.nullif(part.as_string(), "") for part in parts))


def escapes(start: datetime, end: datetime, by: str, limit: int) -> Query:
    """The `limit` categories (by="category") or pipelines (by="pipeline") with the most incidents opened in
    [start, end) that left Level 1: (name, count), most first, ties by name."""
    name = col(Incident.category) if by == "category" else pipeline_name()
    inner = select(name.label("name")).where(opened_within(start, end), col(Incident.level) != "L1")
    sub = inner.subquery("escaped")
    count = func.count().label("count")
    query = select(sub.c.name, count).where(sub.c.name.is_not(None)).group_by(sub.c.name)
    return query.order_by(count.desc(), sub.c.name).limit(limit)


def level_times(start: datetime, end: datetime) -> Query:
    """Per (measure, level): how many samples, and their p50 and p90 in seconds by nearest rank.

    Measures, for the incidents opened in [start, end) (their latest opening: earlier rows are older):
    - reached: the incident reached the level (value 0; only its count is used);
    - ack: its first acknowledgement at the level (the decision at L4) minus its reaching the level;
    - resolve: its resolution minus its reaching the level, for incidents resolved at that level.
    An incident reaches L1 when it opens, and L2..L4 at its first Escalation row of that level."""
    inc = (
        select(
            col(Incident.id).label("id"),
            col(Incident.opened_at).label("opened_at"),
            col(Incident.level).label("level"),
            col(Incident.status).label("status"),
            col(Incident.resolved_at).label("resolved_at"),
        )
        .where(opened_within(start, end))
        .cte("inc")
    )
    escalated: Query = (
        select(
            col(Escalation.incident_id).label("incident_id"),
            col(Escalation.level).label("level"),
            func.min(Escalation.at).label("at"),
        )
        .join(inc, inc.c.id == col(Escalation.incident_id))
        .where(col(Escalation.incident_id).in_(select(inc.c.id)), col(Escalation.at) >= inc.c.opened_at)
        .group_by(col(Escalation.incident_id), col(Escalation.level))
    )
    opened = select(
        inc.c.id.label("incident_id"), literal("L1", String).label("level"), inc.c.opened_at.label("at")
    )
    entered = union_all(opened, escalated).cte("entered")
    acked_rows = (
        select(
            col(TimelineEvent.incident_id).label("incident_id"),
            col(TimelineEvent.detail)["level"].as_string().label("level"),
            col(TimelineEvent.at).label("at"),
        )
        .join(inc, inc.c.id == col(TimelineEvent.incident_id))
        .where(
            col(TimelineEvent.incident_id).in_(select(inc.c.id)),  # lets SQLite search its index by id
            col(TimelineEvent.kind).in_(ACK_KINDS),
            col(TimelineEvent.at) >= inc.c.opened_at,
        )
        .subquery("acked_rows")
    )
    acked = (
        select(acked_rows.c.incident_id, acked_rows.c.level, func.min(acked_rows.c.at).label("at"))
        .group_by(acked_rows.c.incident_id, acked_rows.c.level)
        .cte("acked")
    )
    e = entered.c
    samples = union_all(
        select(literal("reached", String).label("measure"), e.level, literal(0, Integer).label("seconds")),
        select(literal("ack", String), e.level, seconds_between(acked.c.at, e.at)).join(
            acked, and_(acked.c.incident_id == e.incident_id, acked.c.level == e.level)
        ),
        select(literal("resolve", String), e.level, seconds_between(inc.c.resolved_at, e.at))
        .join(inc, inc.c.id == e.incident_id)
        .where(inc.c.status == RESOLVED, inc.c.level == e.level),
    ).subquery("samples")
    s = samples.c
    ranked = select(
        s.measure,
        s.level,
        s.seconds,
        func.row_number().over(partition_by=(s.measure, s.level), order_by=s.seconds).label("rn"),
        func.count().over(partition_by=(s.measure, s.level)).label("n"),
    ).subquery("ranked")
    r = ranked.c
    picks = [
        # nearest rank: the rank-th smallest, rank = ceil(p·n/100), i.e. 100·(rank-1) < p·n <= 100·rank
        func.max(case((and_(r.rn * 100 >= p * r.n, (r.rn - 1) * 100 < p * r.n), r.seconds))).label(f"p{p}")
        for p in PERCENTILES
    ]
    return select(r.measure, r.level, func.max(r.n).label("n"), *picks).group_by(r.measure, r.level)
