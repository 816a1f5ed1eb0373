"""On the real PostgreSQL server (TEST_DATABASE_URL): the whole flow, two replicas sharing one database
without double posts or double escalations, and migrations that can run on every start."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, cast

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import inspect, text
from sqlmodel import Session, SQLModel, select

from bot.app import Bot
from bot.core.clock import FakeClock
from bot.core.models import ActionId
from bot.integrations.kubernetes import KubeGateway
from bot.sandbox.slack_driver import select_value, text_value
from bot.sandbox.world import (
    COORDINATOR,
    DECIDER,
    PIPELINE_ALERT,
    TECH_LEAD,
    SandboxWorld,
    alertmanager_payload,
    http,
)
from bot.store.db import make_engine, migrate
from bot.store.tables import Decision, Escalation, Incident, OutboxMessage, Timer
from bot.web import WebServer

pytestmark = pytest.mark.postgres

ALERTS, COORDINATION, TECH_LEADS, DECISIONS = (
    "#ml-alerts",
    "#data-coordinator",
    "#tech-leads",
    "#ml-decisions",
)


def latest(world: SandboxWorld, channel: str) -> str:
    return str(world.slack.messages(channel)[-1]["ts"])


def context_text(message: dict[str, Any]) -> str:
    return "\n".join(
        e["text"] for b in message.get("blocks", []) if b["type"] == "context" for e in b["elements"]
    )


def has_buttons(message: dict[str, Any]) -> bool:
    return any(b["type"] == "actions" for b in message.get("blocks", []))


def test_the_whole_flow_records_the_decision_on_postgres(pg_url: str) -> None:
    with SandboxWorld(database_url=pg_url) as world:
        assert world.bot is not None
        assert world.bot.services.engine.dialect.name == "postgresql"
        assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202
        world.settle()
        assert "Level 2 · INC-1" in world.slack.messages(COORDINATION)[0]["text"]

        assert (
            world.click(COORDINATOR, ActionId.ESCALATE_L3, COORDINATION, latest(world, COORDINATION)).status
            == 200
        )
        world.settle()
        world.submit_latest_view(
            COORDINATOR,
            {
                "trigger": {"value": select_value("architecture_redesign")},
                "reason": {"value": text_value("Upstream no longer writes the daily partition.")},
            },
        )
        world.settle()
        assert "Level 3 · INC-1" in world.slack.messages(TECH_LEADS)[0]["text"]

        assert (
            world.click(TECH_LEAD, ActionId.ASK_DECISION, TECH_LEADS, latest(world, TECH_LEADS)).status == 200
        )
        world.settle()
        world.submit_latest_view(
            TECH_LEAD,
            {
                "question": {"value": text_value("The daily feature build is blocked. How do we proceed?")},
                "context": {"value": text_value("Churn and fraud models retrain tonight.")},
            },
        )
        world.settle()
        [request] = world.slack.messages(DECISIONS)
        assert has_buttons(request)

        assert world.click(DECIDER, f"{ActionId.DECISION_OPTION}_1", DECISIONS, request["ts"]).status == 200
        world.settle()
        world.submit_latest_view(
            DECIDER, {"rationale": {"value": text_value("Tonight's retrain matters more.")}}
        )
        world.settle()

        with Session(world.bot.services.engine) as s:
            [decision] = s.exec(select(Decision)).all()
            inc = s.get(Incident, decision.incident_id)
        assert decision.status == "decided"
        assert (decision.chosen_index, decision.chosen_label) == (1, "Run downstream on the last good output")
        assert (decision.chosen_by, decision.requested_by) == (DECIDER, TECH_LEAD)
        assert decision.rationale == "Tonight's retrain matters more."
        assert decision.question == "The daily feature build is blocked. How do we proceed?"
        assert inc is not None and (inc.level, inc.status) == ("L4", "resolved")
        updated = world.slack.message(DECISIONS, request["ts"])
        assert not has_buttons(updated)
        assert "Decided: Run downstream on the last good output by <@U0DECIDE> at " in context_text(updated)
        assert "why: Tonight's retrain matters more." in context_text(updated)


@contextmanager
def replica(world: SandboxWorld) -> Iterator[tuple[Bot, str]]:
    """A second bot process on the same database, Slack workspace and cluster, with its own web server."""
    bot = Bot(
        world.config, world.env(), clock=world.clock, kube=KubeGateway.for_url(world.kube.url), pace=False
    )
    bot.auth()
    server = WebServer(bot.web)
    url = server.start()
    try:
        yield bot, url
    finally:
        server.stop()
        bot.stop()


def settle_together(*bots: Bot) -> None:
    """Every replica drains its due timers and outbox at the same moment, each in its own thread."""
    start = threading.Barrier(len(bots))
    errors: list[BaseException] = []

    def run(bot: Bot) -> None:
        start.wait()
        try:
            bot.settle()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(bot,)) for bot in bots]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def newest_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from bot.store.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def counter(url: str, name: str) -> float:
    """The sum of a counter's samples as GET /metrics shows it."""
    body = http("GET", url + "/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        if family.name == name
        for sample in family.samples
        if sample.name == f"{name}_total"
    )


def test_two_replicas_draining_the_same_timers_and_outbox_never_post_or_escalate_twice(pg_url: str) -> None:
    clock = FakeClock()
    incidents = 4
    with SandboxWorld(database_url=pg_url, clock=clock) as world, replica(world) as (other, other_url):
        assert world.bot is not None
        for n in range(incidents):
            alert = {
                **PIPELINE_ALERT,
                # four Jobs: alerts about one Job are one incident
                "labels": {
                    **cast(dict[str, str], PIPELINE_ALERT["labels"]),
                    "severity": "warning",
                    "job_name": f"feature-build-{n}",
                },
                "fingerprint": f"feedc0de0000000{n}",
            }
            assert world.post_alerts(alertmanager_payload([alert])).status == 202

        settle_together(world.bot, other)  # Level 1 for every incident, the reports and the L2 posts
        world.settle()
        clock.advance(timedelta(minutes=16).total_seconds())
        settle_together(world.bot, other)  # the reminders, all due at once
        world.settle()
        clock.advance(timedelta(minutes=15).total_seconds())
        settle_together(world.bot, other)  # the automatic escalations, all due at once
        world.settle()

        roots = world.slack.messages(ALERTS)
        assert len(roots) == incidents
        assert all(len(world.slack.thread(ALERTS, m["ts"])) == 1 for m in roots)  # one L1 report each
        l2 = world.slack.messages(COORDINATION)
        l3 = world.slack.messages(TECH_LEADS)
        assert len(l2) == incidents and len(l3) == incidents
        assert all(len(world.slack.thread(COORDINATION, m["ts"])) == 1 for m in l2)  # one reminder each
        everything = [
            m["text"] for ch in (ALERTS, COORDINATION, TECH_LEADS) for m in world.slack.messages(ch)
        ]
        assert [t for t, n in Counter(everything).items() if n > 1] == []

        with Session(world.bot.services.engine) as s:
            levels = Counter((e.incident_id, e.level) for e in s.exec(select(Escalation)))
            states = {(i.level, i.status) for i in s.exec(select(Incident))}
            outbox = s.exec(select(OutboxMessage)).all()
            timers = s.exec(select(Timer).where(Timer.status == "done")).all()
        assert set(levels.values()) == {1} and len(levels) == 2 * incidents
        assert states == {("L3", "open")}
        assert {(r.status, r.attempts) for r in outbox} == {("sent", 1)}  # each row claimed and sent once
        assert {t.attempts for t in timers} == {1}  # each timer claimed and run once
        posted = [c for c in world.slack.calls_to("chat.postMessage") if c.status == 200]
        assert len(posted) == sum(1 for r in outbox if r.kind == "post")

        # Between them, the replicas ran each Level 1 once and escalated each incident once per level.
        urls = (world.url, other_url)
        assert sum(counter(u, "escalation_l1_runs") for u in urls) == incidents
        assert sum(counter(u, "escalation_escalations") for u in urls) == 2 * incidents


def test_migrations_can_run_again_on_an_existing_postgres_schema(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        migrate(engine)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO processed_requests (key, at) VALUES ('kept', now())"))
        migrate(engine)
        migrate(engine)

        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
                newest_revision()
            ]
            assert conn.execute(text("SELECT key FROM processed_requests")).scalars().all() == ["kept"]
        tables = set(inspect(engine).get_table_names())
        assert set(SQLModel.metadata.tables) <= tables
    finally:
        engine.dispose()
