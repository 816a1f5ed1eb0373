"""Two `escalation-bot run` processes on one PostgreSQL database and one Slack workspace, with 200
incidents whose reminders and then whose deadlines fall due at the same moment: every reminder is sent
once and every escalation to Level 3 happens once; SIGTERM to one replica while both hold claims loses
nothing and doubles nothing, the other finishes the work (at once, not after the claims' lease)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.app import Bot
from bot.config import Env, load_config
from bot.core.clock import FakeClock
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.world import COORDINATOR, TECH_LEAD
from tests.processes import BOT_TOKEN, BotRun, bot_env, engine_for, write_config

pytestmark = pytest.mark.postgres

INCIDENTS = 200
COORDINATION, TECH_LEADS, REPORTS = "#data-coordinator", "#tech-leads", "#ml-reports"
# after the incidents are opened (all at one moment of the bot's clock): every reminder is due at one time,
# then every deadline
REMIND_S, DEADLINE_S = 10, 26
OVERRIDES: dict[str, Any] = {
    "levels": {"l2": {"reminder_after": f"{REMIND_S}s", "ack_deadline": f"{DEADLINE_S}s"}},
    "feature_store": {"tables": []},
    # a digest every minute, in a channel of its own: the slots that pass during the test each get one
    "reports": {"digest": {"cron": "* * * * *", "channel": REPORTS, "chart": False}},
    "intake": {
        "pollers": {
            name: {"enabled": False}
            for name in ("mlflow_failed_runs", "kubernetes_failed_jobs", "argo_failed_workflows")
        }
    },
    # a claim that ran out would be taken up only after a minute: what is taken at once was given back
    "runtime": {
        "claim_lease": "60s",
        "timer_interval": "500ms",
        "slack_rate_per_channel": 100.0,
        "slack_burst": 100,
    },
}


def open_incidents(config: Path, env: dict[str, str], at: datetime) -> None:
    """Open the incidents with the bot's own /escalate code (straight to Level 2), all within 0.2 s of `at`
    on its clock, so their timers fall due together; the replicas deliver what it queues."""
    clock = FakeClock(at)
    bot = Bot(load_config(str(config)), Env.from_environ(env), clock=clock)
    try:
        for n in range(INCIDENTS):
            fields = {"problem": f"Nightly feature build {n} fails: input partition missing"}
            bot.services.manual.open(COORDINATOR, fields)
            clock.advance(0.001)  # a hand-opened incident is told apart by its opener and its time
    finally:
        bot.stop(grace=0)


def inc_ids(messages: list[dict[str, Any]]) -> list[str]:
    return [m["text"].split("INC-")[1].split()[0].strip("*:·,") for m in messages]


def rows(url: str, query: str) -> list[Any]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(query)).all())
    finally:
        engine.dispose()


def scalar(url: str, query: str) -> Any:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(query)).scalar()
    finally:
        engine.dispose()


def wait_until(condition: Any, timeout: float, what: str, state: Any = None) -> float:
    """Poll `condition` (the bots are other processes) until it holds; the seconds it took."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            pytest.fail(
                f"timed out after {timeout:.0f} s waiting for {what}" + (f": {state()}" if state else "")
            )
        time.sleep(0.05)
    return time.monotonic() - began


def slots_since(started: datetime) -> int:
    """How many slots of the every-minute digest have come since `started`."""
    return int(datetime.now(UTC).timestamp() // 60 - started.timestamp() // 60)


def assert_one_digest_post_per_slot(slack: SlackEmulator, started: datetime) -> None:
    """Every digest slot since `started` (at least one: it waits for the next minute) was posted once."""
    wait_until(lambda: slots_since(started) >= 1, 65, "a digest slot")
    wait_until(lambda: len(slack.messages(REPORTS)) >= slots_since(started), 30, "its digest")
    assert len(slack.messages(REPORTS)) == slots_since(started)


def test_two_replicas_remind_and_escalate_200_incidents_once_each_and_survive_a_sigterm(
    tmp_path: Path, pg_url: str
) -> None:
    with SlackEmulator(bot_token=BOT_TOKEN) as slack:
        slack.add_user(COORDINATOR, "alice")
        slack.add_user(TECH_LEAD, "bob")
        slack.add_usergroup("S0COORD", "data-coordinator", [COORDINATOR])
        slack.add_usergroup("S0LEAD", "tech-lead-orchestrator", [TECH_LEAD])
        slack.add_channel(REPORTS.lstrip("#"))
        slack.latency("chat.postMessage", 0.02)  # Slack's own pace: a replica holds its batch a while
        config = write_config(tmp_path, OVERRIDES)
        env = bot_env(slack.api_url, pg_url)
        replicas = [BotRun(tmp_path, config, env, f"replica-{n}") for n in (1, 2)]
        try:
            started = datetime.now(UTC)
            for replica in replicas:
                replica.start()
            began = time.monotonic()
            open_incidents(config, env, datetime.now(UTC))
            print(f"\n{INCIDENTS} incidents opened in {time.monotonic() - began:.1f} s")
            wait_until(lambda: len(slack.messages(COORDINATION)) == INCIDENTS, 30, "every Level 2 post")

            # the reminders, all due at once
            # (on a slow machine the replicas start reminding the first incidents while the last are opened)
            reminded = "SELECT count(*) FROM timeline WHERE kind = 'reminded'"
            wait_until(lambda: scalar(pg_url, reminded) == INCIDENTS, 30, "every reminder")
            wait_until(lambda: len(slack.calls_to("chat.postMessage")) == 2 * INCIDENTS, 30, "their posts")
            after = time.monotonic() - began - REMIND_S
            print(f"{INCIDENTS} reminders due at once, all in Slack {after:.1f} s after")

            # the deadlines, all due at once: SIGTERM to one replica while both hold claims on them
            holding = (  # holders of deadline timers, or of outbox rows (each kind has its own ids)
                "SELECT greatest("
                " (SELECT count(DISTINCT claimed_by) FROM timers"
                "  WHERE kind = 'ack_deadline' AND status = 'running'),"
                " (SELECT count(DISTINCT claimed_by) FROM outbox WHERE status = 'sending'))"
            )
            wait_until(lambda: (scalar(pg_url, holding) or 0) >= 2, 40, "both replicas holding claims")
            in_hand = scalar(pg_url, "SELECT count(*) FROM timers WHERE status = 'running'")
            signalled = replicas[0].terminate()
            code, seconds = replicas[0].exited(signalled)
            assert code == 0, replicas[0].output()
            assert seconds < 10
            print(
                f"SIGTERM to one replica holding claims ({in_hand} timers claimed): exited in {seconds:.2f} s"
            )

            escalated = "SELECT count(*) FROM escalations WHERE level = 'L3'"
            took = wait_until(lambda: scalar(pg_url, escalated) == INCIDENTS, 30, "every escalation to L3")
            print(
                f"all {INCIDENTS} escalated {time.monotonic() - began - DEADLINE_S:.1f} s after the deadline"
            )
            # well before the claims' lease (60 s) would have freed what the stopped replica held
            assert took < 30
            # Level 3 posts wait behind the update of their Level 2 message (one incident's messages go in
            # order), and chat.update is paced to Slack's Tier 3 (50 a minute per process): some go now
            wait_until(lambda: len(slack.messages(TECH_LEADS)) >= 20, 30, "the first Level 3 posts")
            assert_one_digest_post_per_slot(slack, started)
            code, seconds = replicas[1].exited(replicas[1].terminate())
            assert code == 0, replicas[1].output()
            print(f"SIGTERM to the other replica, paced Slack updates waiting: exited in {seconds:.2f} s")
        finally:
            for replica in replicas:
                replica.kill()

        l2, l3 = slack.messages(COORDINATION), slack.messages(TECH_LEADS)
        assert len(set(inc_ids(l2))) == INCIDENTS and len(set(inc_ids(l3))) == len(l3)  # each once
        assert all(len(slack.thread(COORDINATION, m["ts"])) == 1 for m in l2)  # one reminder each
        texts = [m["text"] for channel in (COORDINATION, TECH_LEADS) for m in slack.messages(channel)]
        assert [t for t, n in Counter(texts).items() if n > 1] == []
        timeline = rows(
            pg_url,
            "SELECT incident_id, kind, count(*) FROM timeline"
            " WHERE kind IN ('reminded', 'auto_escalated') GROUP BY incident_id, kind",
        )
        assert len(timeline) == 2 * INCIDENTS and {n for *_, n in timeline} == {1}
        levels = rows(
            pg_url, "SELECT level, count(*), count(DISTINCT incident_id) FROM escalations GROUP BY level"
        )
        assert sorted(levels) == [("L2", INCIDENTS, INCIDENTS), ("L3", INCIDENTS, INCIDENTS)]
        timers = rows(pg_url, "SELECT kind, status, count(*) FROM timers GROUP BY kind, status")
        done = {(kind, n) for kind, status, n in timers if status == "done" and kind.startswith("ack_")}
        assert done == {("ack_reminder", INCIDENTS), ("ack_deadline", INCIDENTS)}
        digests = sum(n for kind, status, n in timers if (kind, status) == ("digest", "done"))
        assert digests == len(slack.messages(REPORTS))  # one digest timer run per slot, one post each
        assert {status for _, status, _ in timers} == {"done", "pending"}  # Level 3's own, not due yet
        # nothing lost: one Level 3 post per incident, sent or waiting its turn, none held by a stopped one
        posts = rows(
            pg_url,
            "SELECT incident_id, status, claimed_by FROM outbox"
            " WHERE kind = 'post' AND channel = '#tech-leads'",
        )
        assert len(posts) == INCIDENTS and len({incident for incident, *_ in posts}) == INCIDENTS
        assert {(status, holder) for _, status, holder in posts} <= {("sent", None), ("pending", None)}
        assert sum(status == "sent" for _, status, _ in posts) == len(l3)
        outbox = dict(rows(pg_url, "SELECT status, count(*) FROM outbox GROUP BY status"))
        assert set(outbox) <= {"sent", "pending"}  # none given up
        sent = [c for c in slack.calls_to("chat.postMessage") if c.status == 200]
        assert (
            len(sent)
            == rows(pg_url, "SELECT count(*) FROM outbox WHERE kind = 'post' AND status = 'sent'")[0][0]
        )
