"""Stopping a bot process without losing or doubling work; `serve`: `escalation-bot run` until SIGTERM or
SIGINT, then stopped within runtime.shutdown_grace (at most 9 s, so within Kubernetes' default 30 s and
the 10 s the bot promises).

On the signal the process takes no new work: /readyz answers 503 (a Service stops routing to it), the
Socket Mode connection closes (Slack sends to the other replicas' connections), and the heartbeat claims
no more timers, outbox rows or stored Slack requests (a batch in hand puts back what it has not started).
The work in hand (timers, Level 1 runs, Slack listeners, requests being answered) gets the grace to
finish, while the HTTP server still answers; then the server stops, every claim still held is given back
(bot.services.draining) and the process exits 0. Work that did not finish is abandoned, not waited for:
its claims are back, so another replica redoes it at once, and the process exits straight away so that
nothing it abandoned can commit afterwards."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import SQLAlchemyError

from bot.config import AppConfig
from bot.core.redact import redact
from bot.services.container import Services

log = logging.getLogger(__name__)

SERVER_STOP_S = 0.5  # of the grace, kept for the HTTP server to answer the requests still in flight


class Listeners(Protocol):
    def wait_idle(self, timeout: float) -> bool: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...


class Stoppable(Protocol):
    """What stopping needs of a bot process (bot.app.Bot)."""

    scheduler: BackgroundScheduler | None
    socket: Any

    @property
    def config(self) -> AppConfig: ...

    @property
    def services(self) -> Services: ...

    @property
    def listeners(self) -> Listeners: ...


def drain(bot: Stoppable) -> None:
    """Take no new work: /readyz answers 503, Socket Mode disconnects, the heartbeat claims nothing more."""
    bot.services.timers.draining.set()
    bot.services.outbox.stop_claiming()
    if bot.socket is not None:
        bot.socket.close()
        bot.socket = None
    if bot.scheduler is not None and bot.scheduler.running:
        bot.scheduler.pause()


def wait_idle(bot: Stoppable, timeout: float) -> bool:
    """Wait up to `timeout` seconds for the work in hand: the heartbeat's jobs, the worker pool (Level 1
    runs, drafts), Slack listeners; whether it all finished."""
    deadline = time.monotonic() + timeout
    timers = bot.services.timers
    waits = (timers.draining.wait_idle, timers.wait_idle, bot.listeners.wait_idle)
    return all(wait(deadline - time.monotonic()) for wait in waits)


def stop(bot: Stoppable, grace: float | None = None) -> bool:
    """Drain, wait up to `grace` seconds (runtime.shutdown_grace) for the work in hand, then give back every
    claim still held and close the database; whether the work in hand all finished."""
    drain(bot)
    limit = bot.config.runtime.shutdown_grace.total_seconds() if grace is None else grace
    finished = wait_idle(bot, limit)
    if bot.scheduler is not None:
        bot.scheduler.shutdown(wait=False)
    bot.scheduler = None
    bot.listeners.shutdown(wait=False, cancel_futures=True)
    s = bot.services
    s.timers.shutdown()
    timers, outbox, requests = (
        _give_back(what, release)
        for what, release in (
            ("timers", s.timers.release),
            ("Slack messages", s.outbox.release),
            ("Slack requests", s.inbox.release),
        )
    )
    if timers or outbox or requests:
        log.info(
            "gave back %d timer(s), %d Slack message(s) and %d Slack request(s) for another replica",
            timers,
            outbox,
            requests,
        )
    if s.level1.deps.sql is not None:
        s.level1.deps.sql.close()
    s.engine.dispose()
    return finished


def _give_back(what: str, release: Callable[[], int]) -> int:
    """`release()`; 0 when the database cannot take it (down, say): the process stops all the same, and
    what it held goes to the other replicas when the claims' lease runs out."""
    try:
        return release()
    except SQLAlchemyError as exc:
        first_line = str(getattr(exc, "orig", None) or exc).strip().split("\n")[0]  # the driver's own words
        log.warning("could not give back the %s it holds, left to their lease: %s", what, redact(first_line))
        return 0


class _Server(Protocol):
    should_exit: bool
    config: Any

    def run(self) -> None: ...


def catch_signals() -> threading.Event:
    """From now on SIGTERM and SIGINT set the event returned instead of ending the process. Called before
    the heartbeat starts: from then on the process holds claims, and a signal during the rest of start-up
    (Socket Mode connecting, say) must stop it as `serve` does, not kill it with its claims held."""
    signalled = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not signalled.is_set():
            log.info("%s: shutting down", signal.Signals(signum).name)
        signalled.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    return signalled


def serve(bot: Stoppable, server: _Server, signalled: threading.Event) -> int:
    """Serve HTTP (uvicorn, in a thread) until SIGTERM or SIGINT (`signalled`, from `catch_signals`), then
    stop as the module says and end the process with 0; 1 when the server could not start."""
    web = threading.Thread(target=server.run, name="web", daemon=True)
    web.start()
    while not signalled.wait(0.2):
        if not web.is_alive():  # the server could not start (the port is taken, say): it said why
            stop(bot, 0)
            _end(1)  # a Level 1 run still going must not write after its claim was given back
    began = time.monotonic()
    grace = bot.config.runtime.shutdown_grace.total_seconds()
    drain(bot)
    finished = wait_idle(bot, grace - SERVER_STOP_S)
    server.config.timeout_graceful_shutdown = max(0.1, began + grace - time.monotonic())
    server.should_exit = True
    web.join(began + grace + SERVER_STOP_S - time.monotonic())
    finished = stop(bot, 0) and finished and not web.is_alive()
    log.info("stopped %.1f s after the signal", time.monotonic() - began)
    if not finished:  # a Level 1 run waiting on the cluster, say: its claim is back, it is not waited for
        log.warning("work that did not finish in time is left to the other replicas")
    _end(0)
    return 0  # not reached


def _end(status: int) -> None:
    """End the process now, logs flushed: not in the interpreter's teardown, which takes seconds with this
    many modules loaded and would wait for any thread still running (and let it write after its claim was
    given back)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
