"""Work a sender waits on goes first: on SQLite its write takes the write lock before background writers
that wait too (without starving them), and the background steps aside while webhooks are being stored
(without stopping)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from bot.sandbox.world import PIPELINE_ALERT, SandboxWorld, alertmanager_payload
from bot.services.deliveries import STEP_ASIDE_S
from bot.services.foreground import QUIET_S, Foreground
from bot.store import db
from bot.store.db import first_in_line, make_engine, one_write
from bot.store.tables import Delivery, Incident


def _wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def test_a_write_someone_waits_on_takes_the_sqlite_lock_before_a_background_write_queued_earlier(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"))
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (who) VALUES ('holder')"))
            holding.set()
            release.wait(10)

    def write(who: str, urgent: bool) -> None:
        if urgent:
            with one_write(engine) as conn:
                conn.execute(text("INSERT INTO t (who) VALUES (:w)"), {"w": who})
        else:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t (who) VALUES (:w)"), {"w": who})

    lock = _turns_of(engine)
    threads = [threading.Thread(target=holder)]
    threads[0].start()
    assert holding.wait(10)
    threads.append(threading.Thread(target=write, args=("background", False)))
    threads[-1].start()
    assert _wait_until(lambda: lock.waiting == 1)
    threads.append(threading.Thread(target=write, args=("sender", True)))
    threads[-1].start()
    assert _wait_until(lambda: lock.waiting == 2)
    release.set()
    for t in threads:
        t.join(10)
    with engine.connect() as conn:
        order = [r[0] for r in conn.execute(text("SELECT who FROM t ORDER BY id"))]
    assert order == ["holder", "sender", "background"]


def test_a_background_writer_is_not_held_back_for_ever_by_a_stream_of_urgent_writes(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'aging.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"))
    lock = _turns_of(engine)
    done = threading.Event()

    def urgent_stream() -> None:  # always another urgent writer waiting when one lets go
        with first_in_line():
            while not done.is_set():
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO t (who) VALUES ('urgent')"))

    stream = [threading.Thread(target=urgent_stream) for _ in range(3)]
    for t in stream:
        t.start()
    assert _wait_until(lambda: lock.waiting >= 1)
    began = time.monotonic()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (who) VALUES ('background')"))
    waited = time.monotonic() - began
    done.set()
    for t in stream:
        t.join(10)
    assert waited < db.AGING_S + 2.0  # it went ahead once it had waited AGING_S


def test_background_work_steps_aside_while_a_sender_waits_and_goes_on_once_it_is_quiet() -> None:
    fg = Foreground()
    assert fg.step_aside(5.0)  # no one waits: at once
    with fg.serving():
        began = time.monotonic()
        assert not fg.step_aside(0.05)  # someone waits: the background waits, but only so long
        assert time.monotonic() - began >= 0.05
        result: list[bool] = []
        waiter = threading.Thread(target=lambda: result.append(fg.step_aside(10.0)))
        waiter.start()
    waiter.join(10)
    assert result == [True]
    assert time.monotonic() - began >= QUIET_S  # it waited for the quiet after the last answer


def test_a_stored_delivery_is_applied_in_the_background_even_while_senders_keep_arriving() -> None:
    with SandboxWorld() as world:
        assert world.bot is not None
        services = world.bot.services
        labels: dict[str, str] = dict(PIPELINE_ALERT["labels"])  # type: ignore[arg-type]
        alerts = [
            {
                **PIPELINE_ALERT,
                "fingerprint": f"{i:016x}",
                "labels": {**labels, "job_name": f"j{i}"},
            }
            for i in range(60)  # more than INLINE_MAX: stored, answered "queued", applied by the background
        ]
        answer = world.post_alerts(alertmanager_payload(alerts))
        assert answer.status == 202 and answer.json()["queued"] is True
        with services.foreground.serving():  # a sender that never finishes
            began = time.monotonic()
            applied = services.deliveries.drain()
            took = time.monotonic() - began
        assert applied == 1
        assert took >= 3 * STEP_ASIDE_S  # it stepped aside before each of its chunks, and still finished
        with Session(services.engine) as s:
            assert [d.status for d in s.exec(select(Delivery))] == ["done"]
            assert len(list(s.exec(select(Incident)))) == 60


def _turns_of(engine: Engine) -> Any:
    with engine.connect() as conn:
        connection: Any = conn.connection.dbapi_connection  # the engine's TurnTaking class
        return type(connection).turns


def test_a_refused_request_is_logged_once_with_its_status_and_a_good_one_is_not(
    world: SandboxWorld, caplog: pytest.LogCaptureFixture
) -> None:
    import urllib.error
    import urllib.request

    caplog.set_level(logging.INFO)
    with urllib.request.urlopen(world.url + "/healthz", timeout=10) as ok:
        assert ok.status == 200
    forged = urllib.request.Request(world.url + "/slack/events", data=b"command=/escalation", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=10)
    assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(world.url + "/nowhere%0Aforged%20line", timeout=10)
    assert missing.value.code == 404

    lines = [r.getMessage() for r in caplog.records if r.name == "bot.web"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("POST /slack/events answered 401 to 127.0.0.1 in ")
    assert lines[1].startswith("GET /nowhere\\nforged line answered 404")  # one line: the newline escaped
    assert not any("/healthz" in r.getMessage() for r in caplog.records)
