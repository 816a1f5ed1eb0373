"""A graceful stop: on SIGTERM `escalation-bot run` takes no new work (/readyz answers 503 at once), gives
back what it still holds and exits 0 within 10 s, even with Level 1 runs waiting on the cluster and a
Slack post in flight; the next process takes the work up at once (not after the claim's lease) and
nothing is lost or sent twice."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from bot.core.clock import FakeClock
from bot.integrations.slack.outbox import enqueue
from bot.sandbox.kube_api import SandboxKubeAPI
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.slack_socket import APP_TOKEN, SocketModeServer
from bot.sandbox.world import PIPELINE_ALERT, SandboxWorld, alertmanager_payload, http
from bot.services.draining import CUT_OFF_SETTLE
from bot.services.inbox import Inbox
from bot.services.timers import TimerService
from bot.store.db import make_engine, migrate, session_scope
from bot.store.tables import Timer
from tests.processes import BOT_TOKEN, WEBHOOK_TOKEN, BotRun, Relay, bot_env, engine_for, merged, write_config

INCIDENTS = 6  # four Level 1 runs at a time (runtime.l1_workers): four start, two wait their turn
OVERRIDES: dict[str, Any] = {
    "levels": {"l1": {"check_timeout": "60s"}},  # a check waiting on the cluster outlasts the grace
    "kubernetes": {"request_timeout": "60s"},
    "feature_store": {"tables": []},
    "intake": {
        "pollers": {
            name: {"enabled": False}
            for name in ("mlflow_failed_runs", "kubernetes_failed_jobs", "argo_failed_workflows")
        }
    },
    # a claim that ran out would be taken up only after a minute: what is taken at once was given back
    "runtime": {"claim_lease": "60s", "slack_rate_per_channel": 50.0, "slack_burst": 50},
}


def alert(n: int) -> dict[str, Any]:
    labels = {**PIPELINE_ALERT["labels"], "job_name": f"feature-build-{n}"}  # type: ignore[dict-item]
    return {**PIPELINE_ALERT, "labels": labels, "fingerprint": f"5107d0e00000000{n}"}


def post_alert(url: str, n: int) -> int:
    body = json.dumps(alertmanager_payload([alert(n)], group_key=f"{{}}:{{job=feature-build-{n}}}")).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    return http("POST", url + "/alerts/alertmanager", body, headers).status


def kubeconfig(folder: Path, server: str) -> Path:
    path = folder / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "sandbox", "cluster": {"server": server}}],
                "users": [{"name": "bot", "user": {"token": "sandbox-token"}}],
                "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "bot"}}],
                "current-context": "sandbox",
            }
        )
    )
    return path


def rows(url: str, query: str) -> list[dict[str, Any]]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(query))]
    finally:
        engine.dispose()


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # the bot runs in another process: poll what it wrote, with a deadline
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Outside:
    """Slack, the cluster, and how a bot process is started against them (on a SQLite file)."""

    slack: SlackEmulator
    kube: SandboxKubeAPI
    folder: Path

    @property
    def database(self) -> str:
        return f"sqlite:///{self.folder / 'bot.db'}"

    def bot(self, name: str) -> BotRun:
        config = write_config(self.folder, OVERRIDES)
        kube = str(kubeconfig(self.folder, self.kube.url))
        return BotRun(self.folder, config, bot_env(self.slack.api_url, self.database, KUBECONFIG=kube), name)


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Outside]:
    with SlackEmulator(bot_token=BOT_TOKEN) as slack, SandboxKubeAPI(seed=7) as kube:
        slack.add_usergroup("S0COORD", "data-coordinator", [])
        yield Outside(slack, kube, tmp_path)


def test_sigterm_with_level1_runs_and_a_post_in_flight_exits_0_within_10s_and_gives_everything_back(
    outside: Outside,
) -> None:
    slack, kube, database = outside.slack, outside.kube, outside.database
    first = outside.bot("first").start()
    try:
        kube.hold()  # every Level 1 check waits on the cluster
        slack.hold("chat.postMessage")  # the first post is in flight, the rest of its batch waits
        for n in range(INCIDENTS):  # one notification each: incidents from one are escalated together
            assert post_alert(first.url, n) in (200, 202)
        query = "SELECT * FROM timers WHERE kind = 'run_l1'"
        wait_until(
            lambda: len([t for t in rows(database, query) if t["status"] == "running"]) == INCIDENTS,
            30,
            "every Level 1 run claimed",
        )
        wait_until(lambda: len(kube.requests) >= 4, 30, "four Level 1 runs waiting on the cluster")
        wait_until(lambda: slack.calls_to("chat.postMessage"), 30, "a post in flight")

        signalled = first.terminate()
        # it takes no new work at once: a Service stops routing to it; it still answers while it stops
        answers: list[int] = []
        wait_until(
            lambda: answers.append(http("GET", first.url + "/readyz").status) or answers[-1] == 503,
            5,
            "/readyz to answer 503",
        )
        assert http("GET", first.url + "/healthz").status == 200
        code, seconds = first.exited(signalled)
        assert code == 0, first.output()
        assert seconds < 10, f"exited {seconds:.1f} s after SIGTERM"
        print(f"\nSIGTERM to exit: {seconds:.2f} s with {INCIDENTS} Level 1 runs and a post in flight")
        assert "gave back" in first.output()

        timers = rows(database, query)
        assert {(t["status"], t["claimed_by"], t["claimed_until"]) for t in timers} == {
            ("pending", None, None)
        }
        # the four runs cut off count as an attempt; the two never started do not
        assert sorted(t["attempts"] for t in timers) == [0, 0, 1, 1, 1, 1]
        outbox = rows(database, "SELECT * FROM outbox")
        assert outbox and all(r["claimed_by"] is None for r in outbox)
        assert [r["status"] for r in outbox if r["status"] != "pending"] == ["sending"]  # the one cut off
    finally:
        first.kill()

    kube.release()
    slack.release("chat.postMessage")  # the cut-off post reaches Slack after all
    began = time.monotonic()
    second = outside.bot("second").start()
    try:
        wait_until(
            lambda: len(slack.messages("#data-coordinator")) == INCIDENTS,
            45,
            f"every Level 2 post; the process said:\n{second.output()[-3000:]}",
        )
        taken_up = time.monotonic() - began
        assert taken_up < 60, "the work waited for the claims' lease: they were not given back"
        print(f"the next process finished the given-back work {taken_up:.1f} s after it started")
        roots = slack.messages("#ml-alerts")
        assert len(roots) == INCIDENTS  # the post cut off mid-send was found in Slack, not posted again
        assert all(len(slack.thread("#ml-alerts", m["ts"])) == 1 for m in roots)  # one Level 1 report each
        l2 = sorted(m["text"].split("INC-")[1].split()[0] for m in slack.messages("#data-coordinator"))
        assert len(set(l2)) == INCIDENTS
        code, seconds = second.exited(second.terminate())
        assert code == 0, second.output()
        print(f"SIGTERM to exit, idle: {seconds:.2f} s")
    finally:
        second.kill()


def test_slack_requests_given_back_at_shutdown_are_handled_by_another_process_at_once(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'inbox.db'}")
    migrate(engine)
    clock = FakeClock()
    lease = timedelta(seconds=60)
    dying, other = Inbox(engine, clock, lease), Inbox(engine, clock, lease)
    taken = dying.accept("block_actions", "trigger:1", {"type": "block_actions"})
    handled = dying.accept("block_actions", "trigger:2", {"type": "block_actions"})
    dying.done(handled)
    assert other.unfinished(lease) == []  # in hand in the other process: not taken yet

    assert dying.release() == 1
    clock.advance(0.001)
    assert [r.id for r in other.unfinished(lease)] == [taken]
    assert other.unfinished(lease) == []  # claimed now by the other process
    engine.dispose()


def test_sigterm_while_socket_mode_connects_at_start_up_gives_back_what_the_heartbeat_claimed(
    outside: Outside,
) -> None:
    slack, database = outside.slack, outside.database
    engine = make_engine(database)
    migrate(engine)
    with session_scope(engine) as s:  # a post left queued by the process before this one
        enqueue(s, FakeClock().now(), "post", channel="#ml-alerts", text="queued before the restart")
    engine.dispose()
    slack.hold("apps.connections.open")  # Slack is slow to open the Socket Mode connection
    slack.hold("chat.postMessage")  # and the heartbeat's first post is in flight meanwhile
    config = write_config(outside.folder, merged(OVERRIDES, {"runtime": {"shutdown_grace": "2s"}}))
    env = bot_env(slack.api_url, database, SLACK_APP_TOKEN=APP_TOKEN)
    starting = BotRun(outside.folder, config, env, "starting")
    with SocketModeServer(slack, APP_TOKEN, ping_interval=0.2):
        try:
            starting.launch()
            wait_until(lambda: slack.calls_to("apps.connections.open"), 60, "Socket Mode connecting")
            wait_until(lambda: slack.calls_to("chat.postMessage"), 30, "the queued post in flight")

            signalled = starting.terminate()  # start-up has not finished: the connection is still opening
            slack.release("apps.connections.open")
            code, seconds = starting.exited(signalled)
            assert code == 0, starting.output()
            assert seconds < 10, f"exited {seconds:.1f} s after SIGTERM"
            assert "SIGTERM: shutting down" in starting.output()
            outbox = rows(database, "SELECT * FROM outbox")
            assert [(r["status"], r["claimed_by"]) for r in outbox] == [("sending", None)]  # given back
        finally:
            slack.release("chat.postMessage")
            starting.kill()


def test_a_timer_cut_off_mid_run_is_taken_up_after_its_call_in_flight_has_settled(
    timed_world: SandboxWorld, clock: FakeClock
) -> None:
    assert timed_world.bot is not None
    timers = timed_world.bot.services.timers
    now = clock.now()
    with session_scope(timers.engine) as s:
        s.add(Timer(kind="digest_chart", due_at=now, payload={}, created_at=now))
    [cut_off] = timers.claim()  # started, then the grace ran out while it uploaded a chart to Slack
    t = timers  # another process's timer service on the same database
    other = TimerService(
        t.engine, clock, t.incidents, t.level1, t.composer, t.metrics, t.foreground, 1, t.lease
    )

    assert timers.release() == 1
    assert other.claim() == []  # the upload may still land: the next process looks a moment later
    clock.advance(CUT_OFF_SETTLE.total_seconds())
    assert [(t.id, t.kind, t.attempts) for t in other.claim()] == [(cut_off.id, "digest_chart", 2)]


def test_sigterm_with_the_database_gone_still_exits_0_within_10s_saying_what_was_not_given_back(
    outside: Outside, pg_url: str
) -> None:
    server = urlsplit(pg_url)
    relay = Relay(server.hostname or "127.0.0.1", server.port or 5432)
    user = server.netloc.rpartition("@")[0]
    through_relay = pg_url.replace(server.netloc, f"{user}@127.0.0.1:{relay.port}", 1)
    config = write_config(outside.folder, OVERRIDES)
    bot = BotRun(outside.folder, config, bot_env(outside.slack.api_url, through_relay), "database-gone")
    try:
        bot.start()
        relay.cut()  # the database fails over, say, while the pods are being replaced
        code, seconds = bot.exited(bot.terminate())
        assert code == 0, bot.output()
        assert seconds < 10, f"exited {seconds:.1f} s after SIGTERM"
        assert "could not give back the timers it holds, left to their lease" in bot.output()
        assert "s after the signal" in bot.output()  # it stopped as it should, not on a traceback
    finally:
        relay.cut()
        bot.kill()


def test_a_port_already_taken_ends_the_process_with_1_at_once_with_its_post_in_flight_given_back(
    outside: Outside,
) -> None:
    engine = make_engine(outside.database)
    migrate(engine)
    with session_scope(engine) as s:  # a post left queued by the process before this one
        enqueue(s, FakeClock().now(), "post", channel="#ml-alerts", text="queued before the restart")
    engine.dispose()
    outside.slack.hold("chat.postMessage")  # the heartbeat's first post hangs in flight
    run = outside.bot("port-taken")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", run.port))
        taken.listen(1)
        try:
            run.launch()
            wait_until(lambda: outside.slack.calls_to("chat.postMessage"), 60, "the queued post in flight")
            code, seconds = run.exited(time.monotonic(), timeout=60)
            assert code == 1, run.output()
            # it did not wait for the post still hanging in its thread (it would until Slack answers)
            assert seconds < 8, f"ended {seconds:.1f} s after its post was sent"
            assert "address already in use" in run.output().lower(), run.output()
            outbox = rows(outside.database, "SELECT status, claimed_by FROM outbox")
            assert all(row["claimed_by"] is None for row in outbox), outbox
        finally:
            outside.slack.release("chat.postMessage")
            run.kill()
