"""The PostgreSQL engine gives up on a server that accepts a connection and then says nothing (a
failover, a dropped route) after its connect timeout, not the operating system's."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bot.store.db import CONNECT_TIMEOUT_S, make_engine


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def _connect_once(url: str) -> tuple[float, BaseException | None]:
    """Try one connection in a thread; how long it took and what it raised. A connection still waiting
    after 20 s fails the test instead of hanging it."""
    engine = make_engine(url)
    outcome: list[tuple[float, BaseException | None]] = []

    def attempt() -> None:
        started = time.monotonic()
        try:
            with engine.connect() as conn:
                conn.execute(text("select 1"))
        except BaseException as exc:
            outcome.append((time.monotonic() - started, exc))
        else:
            outcome.append((time.monotonic() - started, None))

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(20)
    assert outcome, "the connection was still waiting after 20 s: no connect timeout"
    engine.dispose()
    return outcome[0]


def test_a_silent_postgresql_server_fails_the_connection_after_its_connect_timeout(
    silent_server: int,
) -> None:
    waited, error = _connect_once(f"postgresql://bot:pw@127.0.0.1:{silent_server}/bot")
    assert isinstance(error, OperationalError) and "timeout" in str(error).lower(), error
    assert CONNECT_TIMEOUT_S - 1 <= waited < CONNECT_TIMEOUT_S * 2 + 1, waited


def test_a_connect_timeout_in_the_url_wins(silent_server: int) -> None:
    waited, error = _connect_once(f"postgresql://bot:pw@127.0.0.1:{silent_server}/bot?connect_timeout=2")
    assert isinstance(error, OperationalError), error
    assert waited < CONNECT_TIMEOUT_S - 1, waited
