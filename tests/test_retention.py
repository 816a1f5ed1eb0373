"""Retention prunes what it says and nothing else, on SQLite and PostgreSQL: every table is seeded with rows
just inside and just outside its window and in every status, and after a prune exactly the expected rows
are gone (the full row set of every table is compared); an incident whose alerts were pruned still shows."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, SQLModel, col, select

from bot.config.operations import RetentionSettings
from bot.core.clock import FakeClock
from bot.metrics import Metrics
from bot.sandbox.world import COORDINATOR, PIPELINE_ALERT, SandboxWorld, alertmanager_payload
from bot.services.retention import Retention
from bot.store.db import make_engine, migrate
from bot.store.knowledge import LlmUsage, Resolution
from bot.store.tables import (
    Alert,
    Decision,
    Delivery,
    Escalation,
    EscalationGroup,
    Finding,
    InboundRequest,
    Incident,
    OutboxMessage,
    ProcessedRequest,
    RemediationAttempt,
    SlackView,
    Storm,
    TimelineEvent,
    Timer,
)
from tests.test_details import click_details

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
SETTINGS = RetentionSettings(batch=100)  # the smallest batch: more rows than that are seeded
WINDOWS = {
    "processed_requests": SETTINGS.processed_requests,
    "outbox": SETTINGS.outbox,
    "timers": SETTINGS.timers,
    "alerts": SETTINGS.alerts,
}


def outside(window: str) -> datetime:
    return NOW - WINDOWS[window] - SECOND


def inside(window: str) -> datetime:
    return NOW - WINDOWS[window] + SECOND


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    url = (
        f"sqlite:///{tmp_path / 'bot.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    )
    made = make_engine(url)
    migrate(made)
    yield made
    made.dispose()


@dataclass
class Seed:
    """Rows added, with what retention must do with each: `gone` by the table rules, `owned` the rows of
    incidents a `retention.incidents` window deletes."""

    s: Session
    gone: set[tuple[str, Any]] = field(default_factory=set)
    owned: set[tuple[str, Any]] = field(default_factory=set)

    def add(self, row: SQLModel, *, gone: bool = False, owned: bool = False) -> Any:
        self.s.add(row)
        self.s.flush()
        key = (str(getattr(row, "__tablename__", "")), getattr(row, "id", None))
        if gone:
            self.gone.add(key)
        if owned:
            self.owned.add(key)
        return row


def incident(seed: Seed, status: str, *, resolved_at: datetime | None = None, owned: bool = False) -> int:
    row = Incident(
        fingerprint=f"fp-{len(seed.gone) + len(seed.owned)}-{status}-{resolved_at}",
        source="alertmanager",
        title="the feature build failed",
        category="pipeline_step_failed",
        status=status,
        level="L2",
        opened_at=NOW - timedelta(days=800),
        updated_at=NOW - timedelta(days=800),
        resolved_at=resolved_at,
    )
    return int(seed.add(row, owned=owned).id)


def outbox(seed: Seed, status: str, at: datetime, **kw: Any) -> int:
    owned = kw.pop("owned", False)
    gone = kw.pop("gone", False)
    sent_at = at if status in ("sent", "dead") else None
    row = OutboxMessage(
        kind=kw.pop("kind", "update"),
        status=status,
        next_attempt_at=at,
        created_at=at - SECOND,
        sent_at=sent_at,
        **kw,
    )
    return int(seed.add(row, gone=gone, owned=owned).id)


def records_of(seed: Seed, incident_id: int, *, owned: bool, old_anchor_at: datetime) -> None:
    """An incident's own record: findings, attempts, escalations, decisions, timeline, resolution, usage."""
    at = NOW - timedelta(days=700)
    kw = {"incident_id": incident_id}
    seed.add(Finding(check="job_failed", status="fail", summary="failed", at=at, **kw), owned=owned)
    seed.add(
        RemediationAttempt(name="retry", attempt=1, risk="low", status="failed", at=at, **kw), owned=owned
    )
    post = outbox(seed, "sent", old_anchor_at, kind="post", incident_id=incident_id, owned=owned)
    seed.add(Escalation(level="L2", channel="C1", outbox_id=post, at=at, **kw), owned=owned)
    vote = outbox(seed, "sent", old_anchor_at, kind="post", incident_id=incident_id, owned=owned)
    seed.add(Decision(question="which?", outbox_id=vote, created_at=at, expires_at=at, **kw), owned=owned)
    seed.add(TimelineEvent(at=at, kind="escalated", **kw), owned=owned)
    seed.add(LlmUsage(purpose="draft", model="rule-based", outcome="answer", at=at, **kw), owned=owned)


def seed_everything(s: Session) -> tuple[Seed, dict[str, int]]:
    seed = Seed(s)
    old = NOW - timedelta(days=800)
    done = incident(seed, "resolved", resolved_at=old, owned=True)  # resolved long ago
    still_open = incident(seed, "open")  # opened just as long ago, never resolved
    recent = incident(seed, "resolved", resolved_at=NOW - timedelta(days=1))
    waiting = incident(seed, "resolved", resolved_at=old)  # resolved long ago, a Slack write still waiting
    for inc in (done, still_open, recent, waiting):
        records_of(seed, inc, owned=inc == done, old_anchor_at=outside("outbox") - timedelta(days=1))
    s.add(Resolution(incident_id=done, category="c", title="t", level="L2", resolved_at=old, body="fixed"))
    s.flush()
    seed.owned.add(("resolutions", s.exec(select(Resolution.id)).one()))
    # each incident's root message, a post later updates name: kept while its incident is
    for inc in (done, still_open, recent, waiting):
        row = s.get(Incident, inc)
        assert row is not None
        row.alert_outbox_id = outbox(
            seed, "sent", outside("outbox"), kind="post", incident_id=inc, owned=inc == done
        )
        s.add(row)
    outbox(seed, "pending", old, incident_id=waiting)

    # processed requests: more outside than a batch holds, one just inside
    for n in range(SETTINGS.batch * 2 + 50):
        seed.add(ProcessedRequest(key=f"old-{n}", at=outside("processed_requests") - n * SECOND), gone=True)
    seed.add(ProcessedRequest(key="new", at=inside("processed_requests")))
    # Slack requests: done ones by when they were done; one never done is kept however old
    seed.add(
        InboundRequest(key="i1", kind="c", received_at=old, done_at=outside("processed_requests")), gone=True
    )
    seed.add(InboundRequest(key="i2", kind="c", received_at=old, done_at=inside("processed_requests")))
    seed.add(InboundRequest(key="i3", kind="c", received_at=old))
    seed.add(
        SlackView(key="v1", user_id="U", callback_id="c", opened_at=outside("processed_requests")), gone=True
    )
    seed.add(SlackView(key="v2", user_id="U", callback_id="c", opened_at=inside("processed_requests")))

    # the outbox in every status, just outside and just inside; only ended rows outside go
    for status in ("pending", "sending", "sent", "dead"):
        for at, is_old in ((outside("outbox"), True), (inside("outbox"), False)):
            outbox(seed, status, at, gone=is_old and status in ("sent", "dead"))
    outbox(seed, "dead", outside("outbox"), kind="ephemeral", gone=True)
    # a message a waiting reply still needs stays; one an ended update named goes, with the update
    parent = outbox(seed, "sent", outside("outbox"), kind="post")
    outbox(seed, "pending", NOW, kind="post", thread_of=parent)
    target = outbox(seed, "sent", outside("outbox"), kind="post", gone=True)
    outbox(seed, "sent", outside("outbox"), target_of=target, gone=True)
    storm_post = outbox(seed, "sent", outside("outbox"), kind="post")
    group_post = outbox(seed, "sent", outside("outbox"), kind="post")
    storm = seed.add(
        Storm(channel="C1", started_at=old, last_opened_at=old, ended_at=old, outbox_id=storm_post)
    )
    s.get(Incident, done).storm_id = storm.id  # type: ignore[union-attr]
    seed.add(
        EscalationGroup(
            key="storm:1", level="L2", channel="C1", created_at=old, closed_at=old, outbox_id=group_post
        )
    )

    # timers in every status
    for status in ("pending", "running", "done", "cancelled", "failed"):
        for at, is_old in ((outside("timers"), True), (inside("timers"), False)):
            ended = status in ("done", "cancelled", "failed")
            seed.add(
                Timer(kind="ack_reminder", due_at=at, status=status, created_at=old), gone=is_old and ended
            )
    seed.add(
        Timer(kind="ack_reminder", incident_id=done, due_at=old, status="done", created_at=old), gone=True
    )
    seed.add(Timer(kind="ack_reminder", incident_id=waiting, due_at=NOW, status="pending", created_at=old))

    # alerts: an open incident keeps its newest; deliveries in every status
    def alert(inc: int | None, at: datetime, gone: bool, owned: bool = False) -> None:
        row = Alert(
            source="alertmanager",
            fingerprint="fp",
            status="firing",
            title="t",
            received_at=at,
            incident_id=inc,
        )
        seed.add(row, gone=gone, owned=owned)

    for inc in (done, still_open, recent):
        alert(inc, outside("alerts") - timedelta(days=2), gone=True, owned=inc == done)
        alert(inc, outside("alerts"), gone=inc != still_open, owned=inc == done)  # the newest of its incident
    alert(done, inside("alerts"), gone=False, owned=True)
    alert(None, outside("alerts"), gone=True)
    alert(None, inside("alerts"), gone=False)
    for status in ("pending", "done", "failed"):
        for at, is_old in ((outside("alerts"), True), (inside("alerts"), False)):
            seed.add(
                Delivery(source="alertmanager", status=status, received_at=at),
                gone=is_old and status != "pending",
            )
    s.commit()
    return seed, {"done": done, "open": still_open, "recent": recent, "waiting": waiting}


def snapshot(engine: Engine) -> dict[str, dict[Any, str]]:
    """Every row of every table, by table and id (or the whole row when there is no id)."""
    rows: dict[str, dict[Any, str]] = {}
    schema = inspect(engine)
    with engine.connect() as conn:
        for name in schema.get_table_names():
            if name.startswith("resolutions_fts") or name == "alembic_version":
                continue
            found = conn.execute(text(f'SELECT * FROM "{name}"')).mappings()
            rows[name] = {
                r.get("id", json.dumps(dict(r), default=str)): json.dumps(
                    dict(r), default=str, sort_keys=True
                )
                for r in found
            }
    return rows


def without(before: dict[str, dict[Any, str]], gone: set[tuple[str, Any]]) -> dict[str, dict[Any, str]]:
    return {t: {k: v for k, v in rows.items() if (t, k) not in gone} for t, rows in before.items()}


def test_each_table_loses_exactly_its_ended_rows_outside_the_window_and_nothing_else(engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as s:
        seed, _ = seed_everything(s)
    before = snapshot(engine)
    metrics = Metrics()

    counts = Retention(engine, FakeClock(NOW), lambda: SETTINGS, metrics).prune(NOW)

    after = snapshot(engine)
    assert after == without(before, seed.gone)
    assert sum(counts.values()) == len(seed.gone)
    assert counts["processed_requests"] == SETTINGS.batch * 2 + 50  # more than two batches, all of them
    for table in ("incidents", "findings", "timeline", "decisions", "escalations", "resolutions", "storms"):
        assert after[table] == before[table], table
    rendered = metrics.render().decode()
    outbox_gone = sum(1 for table, _ in seed.gone if table == "outbox")
    assert f'escalation_retention_pruned_total{{table="outbox"}} {outbox_gone}.0' in rendered
    # a second run finds nothing more
    assert sum(Retention(engine, FakeClock(NOW), lambda: SETTINGS).prune(NOW).values()) == 0


def test_a_run_that_prunes_nothing_still_exports_each_tables_counter_at_zero(engine: Engine) -> None:
    metrics = Metrics()

    counts = Retention(engine, FakeClock(NOW), lambda: SETTINGS, metrics).prune(NOW)

    assert counts and not any(counts.values())
    rendered = metrics.render().decode()
    for name in counts:  # rate() and increase() need the series before the first row goes
        assert f'escalation_retention_pruned_total{{table="{name}"}} 0.0' in rendered


def test_an_incidents_window_deletes_a_resolved_old_incident_with_all_its_rows_and_keeps_open_ones(
    engine: Engine,
) -> None:
    with Session(engine, expire_on_commit=False) as s:
        seed, ids = seed_everything(s)
    before = snapshot(engine)
    settings = SETTINGS.model_copy(update={"incidents": timedelta(days=365)})

    counts = Retention(engine, FakeClock(NOW), lambda: settings).prune(NOW)

    after = snapshot(engine)
    # the storm and the group it was alone in go with it once they ended and nothing else is in them
    left = {("storms", k) for k in before["storms"]} | {
        ("escalation_groups", k) for k in before["escalation_groups"]
    }
    assert after == without(before, seed.gone | seed.owned | left)
    assert set(after["incidents"]) == {ids["open"], ids["recent"], ids["waiting"]}
    assert counts["incidents"] == 1 and counts["timeline"] == 1 and counts["resolutions"] == 1
    for table, rows in after.items():
        if table != "incidents" and rows and "incident_id" in json.loads(next(iter(rows.values()))):
            assert all(json.loads(r)["incident_id"] != ids["done"] for r in rows.values()), table


def test_two_replicas_pruning_at_once_delete_every_row_once_without_error_or_deadlock(engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as s:
        for n in range(2000):
            s.add(ProcessedRequest(key=f"k{n}", at=outside("processed_requests")))
        for _ in range(1000):
            s.add(
                OutboxMessage(
                    kind="update",
                    status="sent",
                    next_attempt_at=NOW,
                    created_at=outside("outbox") - SECOND,
                    sent_at=outside("outbox"),
                )
            )
        seed = Seed(s)
        for _ in range(60):  # resolved long ago, each with its record
            old = incident(seed, "resolved", resolved_at=NOW - timedelta(days=800), owned=True)
            records_of(seed, old, owned=True, old_anchor_at=outside("outbox"))
        s.commit()
    settings = SETTINGS.model_copy(update={"incidents": timedelta(days=365)})
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def replica() -> None:
        start.wait()
        try:
            results.append(Retention(engine, FakeClock(NOW), lambda: settings).prune(NOW))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 2
    assert sum(r["processed_requests"] for r in results) == 2000
    assert sum(r["outbox"] for r in results) == 1000 + 60 * 2
    assert sum(r["incidents"] for r in results) == 60 and sum(r["timeline"] for r in results) == 60
    left = snapshot(engine)
    for table in ("processed_requests", "outbox", "incidents", "timeline", "decisions", "escalations"):
        assert left[table] == {}, table


@pytest.fixture(params=["sqlite", "postgresql"])
def any_world(request: pytest.FixtureRequest) -> Iterator[SandboxWorld]:
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_url")
    with SandboxWorld(database_url=url) as world:
        yield world


def test_an_incident_whose_alerts_were_pruned_still_shows_in_show_details_and_app_home(
    any_world: SandboxWorld,
) -> None:
    world = any_world
    assert world.driver is not None and world.bot is not None
    assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202
    world.settle()
    [l2] = world.slack.messages("#data-coordinator")
    world.driver.slash_command(
        "/escalation", "resolve 1 upstream partition restored", COORDINATOR, "#ml-alerts"
    )
    world.settle()
    engine = world.bot.services.engine
    later = datetime.now(UTC) + timedelta(days=400)

    counts = Retention(engine, FakeClock(later), lambda: SETTINGS).prune(later)

    assert counts["alerts"] >= 1 and counts["outbox"] >= 1
    with Session(engine) as s:
        assert s.exec(select(Alert).where(col(Alert.incident_id) == 1)).all() == []
    shown = world.driver.slash_command("/escalation", "show 1", COORDINATOR, "#ml-alerts").text
    assert "INC-1" in shown and "resolved" in shown and "Job status" in shown
    click_details(world, COORDINATOR, "#data-coordinator", l2)
    assert world.slack.views[-1]["title"]["text"] == "INC-1 details"
    assert world.driver.app_home_opened(COORDINATOR).status == 200
    world.settle()
    assert world.slack.home(COORDINATOR)["blocks"]
