"""What the security suite shares: sending any request over loopback, the properties every answer must
have, and reading back everything the bot holds (database rows, Slack emulator, logs)."""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import inspect, text
from sqlmodel import Session

from bot.core.models import ActionId
from bot.sandbox.slack_driver import Response, select_value, text_value
from bot.sandbox.slack_emulator import BOT_ID
from bot.sandbox.slack_socket import APP_TOKEN, SocketModeServer
from bot.sandbox.world import COORDINATOR, PIPELINE_ALERT, TECH_LEAD, SandboxWorld, alertmanager_payload
from bot.store.tables import Incident
from tests.test_socket_mode import SocketWorld

JSON = dict[str, Any]
# A Python traceback, or the frame lines one is made of, anywhere in a response body.
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")
# The catch-all reply a listener gives for an exception it did not expect (handlers/common.py `tell`).
GENERIC_FAILURE = "Something went wrong on our side"
# Enough for any fuzzing world: the rate limiter and the storm summary are tested elsewhere.
FUZZ_CONFIG: dict[str, Any] = {
    "slack": {"channels": {"admin": "#escalation-admin"}},
    "levels": {"l1": {"verify_poll_interval": "1s"}},
    "intake": {
        "storm_threshold": 10000,
        # no background poller may open an incident while a test compares row counts
        "pollers": {"kubernetes_failed_jobs": {"enabled": False}, "mlflow_failed_runs": {"enabled": False}},
        "rate_limits": {
            source: {"per_second": 100000, "burst": 100000}
            for source in ("alertmanager", "generic", "mlflow")
        },
    },
}


_SCALE = 5.0 if os.environ.get("HYPOTHESIS_PROFILE") == "security-explore" else 1.0


def examples(n: int) -> int:
    """`n` Hypothesis examples in the default profile, five times as many when exploring."""
    return max(1, int(n * _SCALE))


# ---- the wire ---------------------------------------------------------------------------------------


def send(
    world: SandboxWorld,
    path: str,
    body: bytes = b"",
    headers: list[tuple[str, str | bytes]] | None = None,
    method: str = "POST",
    timeout: float = 30.0,
) -> Response:
    """One raw HTTP request: headers may repeat, carry any bytes, and the body is sent as it is."""
    parts = urlsplit(world.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        given = headers or []
        for name, value in given:
            conn.putheader(name, value)
        if not any(name.lower() in ("content-length", "transfer-encoding") for name, _ in given):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        reply = conn.getresponse()
        return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
    finally:
        conn.close()


def note_status(response: Response) -> None:
    """Count answers by status in Hypothesis' statistics (--hypothesis-show-statistics)."""
    from hypothesis import event
    from hypothesis.control import currently_in_test_context

    if currently_in_test_context():
        event(f"answered {response.status}")


def ack_text(response: Response) -> str:
    """The text a Slack ack carried (bolt answers `ack("…")` as text/plain, a dict as JSON)."""
    if not response.body:
        return ""
    if "json" in {k.lower(): v for k, v in response.headers.items()}.get("content-type", ""):
        answer = response.json()
        return str(answer.get("text", "")) if isinstance(answer, dict) else ""
    return response.text


def describe(response: Response) -> str:
    return f"{response.status} {response.headers} {response.body[:600]!r}"


def assert_no_server_error(response: Response, what: str = "") -> None:
    """Never a 5xx (except 503 with Retry-After, for a database outage) and never a traceback."""
    headers = {k.lower(): v for k, v in response.headers.items()}
    if response.status >= 500:
        assert response.status == 503 and "retry-after" in headers, f"{what}: {describe(response)}"
    assert not TRACEBACK.search(response.text), f"{what}: a traceback in the answer: {describe(response)}"


def assert_still_serving(world: SandboxWorld) -> None:
    """The bot answers its health and readiness checks (the database is still usable)."""
    health = send(world, "/healthz", method="GET")
    assert (health.status, health.body) == (200, b"ok"), describe(health)
    ready = send(world, "/readyz", method="GET")
    assert ready.status == 200, describe(ready)


# uvicorn's own answer to a request that is not valid HTTP (e.g. a NUL byte in a header): it never
# reaches the application, so it cannot be a JSON refusal.
MALFORMED_HTTP = b"Invalid HTTP request received."


def assert_refusal_names_the_problem(response: Response, what: str = "") -> dict[str, Any]:
    """A 4xx whose JSON body says what is wrong (`error`, and `field` where one is to blame)."""
    assert 400 <= response.status < 500, f"{what}: {describe(response)}"
    if response.status == 400 and response.body == MALFORMED_HTTP:
        return {"error": MALFORMED_HTTP.decode()}
    try:
        answer = response.json()
    except ValueError:
        raise AssertionError(f"{what}: a refusal that is not JSON: {describe(response)}") from None
    assert isinstance(answer, dict) and isinstance(answer.get("error"), str), f"{what}: {describe(response)}"
    assert answer["error"].strip(), f"{what}: an empty error: {describe(response)}"
    return answer


# ---- the database -----------------------------------------------------------------------------------


def tables(world: SandboxWorld) -> list[str]:
    assert world.bot is not None
    return sorted(t for t in inspect(world.bot.services.engine).get_table_names() if t != "alembic_version")


def row_counts(world: SandboxWorld) -> dict[str, int]:
    """Rows in every table of the bot's database."""
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return {
            t: int(s.connection().execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one())
            for t in tables(world)
        }


def without_outbox(counts: dict[str, int]) -> dict[str, int]:
    """Row counts apart from the outbox (where an answer to the person who acted is queued) and the inbox
    (where every signed Slack request is stored before it is acknowledged)."""
    return {t: n for t, n in counts.items() if t not in ("outbox", "inbox")}


def dump_database(world: SandboxWorld) -> dict[str, str]:
    """Every row of every table, as the text of each column ("table.column" → all its values, one a
    line; JSON columns as stored)."""
    assert world.bot is not None
    out: dict[str, str] = {}
    with Session(world.bot.services.engine) as s:
        for t in tables(world):
            result = s.connection().execute(text(f'SELECT * FROM "{t}"'))
            columns, rows = list(result.keys()), result.all()
            for i, column in enumerate(columns):
                out[f"{t}.{column}"] = "\n".join(_as_text(row[i]) for row in rows)
    return out


def _as_text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# ---- the Slack emulator -----------------------------------------------------------------------------


def everything_slack_got(world: SandboxWorld) -> str:
    """Everything the bot sent Slack: every Web API call's arguments, and every message, thread reply,
    ephemeral, view and response_url payload it left there (messages others posted are left out)."""
    s = world.slack
    parts = [json.dumps(c.args, ensure_ascii=False) for c in s.calls]
    for channel in ("#ml-alerts", "#data-coordinator", "#tech-leads", "#ml-decisions", "#escalation-admin"):
        for message in s.messages(channel):
            replies = [message, *s.thread(channel, message["ts"])]
            parts.extend(json.dumps(m, ensure_ascii=False) for m in replies if m.get("bot_id") == BOT_ID)
    parts.extend(json.dumps(e, ensure_ascii=False) for e in s.ephemerals())
    parts.extend(json.dumps(v, ensure_ascii=False) for v in s.views)
    parts.extend(json.dumps(r, ensure_ascii=False) for r in s.responses)
    return "\n".join(parts)


def ephemerals_for(world: SandboxWorld, user: str) -> list[str]:
    return [str(e.get("text", "")) for e in world.slack.ephemerals(user=user)]


# ---- logs -------------------------------------------------------------------------------------------


class Crashes(logging.Handler):
    """Collects every ERROR record that carries a traceback, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self._lock2 = threading.Lock()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            with self._lock2:
                self.records.append(record)

    def since(self, mark: int) -> list[str]:
        """What crashed after `mark`: logger, message, and the exception with the frame that raised it.
        (Tracebacks are not formatted: Python 3.11 parses source lines to draw carets under them, and
        that parser is what a RecursionError from json's C decoder leaves broken.)"""
        with self._lock2:
            found = self.records[mark:]
        return [_describe_crash(r) for r in found]

    def __len__(self) -> int:
        with self._lock2:
            return len(self.records)


def _describe_crash(record: logging.LogRecord) -> str:
    text = f"{record.name}: {record.getMessage()}"
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
        text += f"\n{type(exc).__name__}: {str(exc)[:500]}{where}"
    return text


@contextmanager
def crash_log() -> Iterator[Crashes]:
    handler = Crashes()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


# ---- getting incidents to a level (in the sandbox's channels, as people would) ------------------------

COORD_CHANNEL, LEAD_CHANNEL, DECISION_CHANNEL, ALERT_CHANNEL = (
    "#data-coordinator",
    "#tech-leads",
    "#ml-decisions",
    "#ml-alerts",
)


def pipeline_alert(n: int) -> dict[str, Any]:
    """A failing pipeline step Level 1 cannot fix; `n` makes it a distinct incident (another Job: alerts
    about the same Job are one incident, whatever their fingerprints)."""
    if n == 1:
        return {**PIPELINE_ALERT, "fingerprint": f"a1b2c3d4e5f6{n:04d}"}
    labels = {**PIPELINE_ALERT["labels"], "job_name": f"{PIPELINE_ALERT['labels']['job_name']}-{n}"}
    return {**PIPELINE_ALERT, "labels": labels, "fingerprint": f"a1b2c3d4e5f6{n:04d}"}


def settle_until(world: SandboxWorld, done: Callable[[], bool], what: str) -> None:
    """Let the bot finish its work, until `done()` holds. (With Socket Mode the background scheduler may
    hold a timer that settle() cannot see, so this also waits on the emulator for the outcome.)"""
    world.settle()
    assert world.slack.wait_for(done, timeout=30), what
    world.settle()


def open_l2(world: SandboxWorld, n: int = 1) -> dict[str, Any]:
    """Post alert `n`, let Level 1 fail, and return its Level 2 message in #data-coordinator."""
    before = len(world.slack.messages(COORD_CHANNEL))
    answer = world.post_alerts(alertmanager_payload([pipeline_alert(n)]))
    assert answer.status == 202, answer.text
    settle_until(
        world,
        lambda: len(world.slack.messages(COORD_CHANNEL)) == before + 1,
        "Level 1 did not hand the incident to Level 2",
    )
    return world.slack.messages(COORD_CHANNEL)[-1]


def open_modal(world: SandboxWorld, user: str, action_id: str, channel: str, message: dict[str, Any]) -> JSON:
    """Click `action_id` on `message` as `user` and return the modal the bot opened."""
    views = len(world.slack.views)
    world.click(user, action_id, channel, message["ts"])
    settle_until(world, lambda: len(world.slack.views) == views + 1, f"{action_id} opened no modal")
    return world.slack.views[-1]


def escalate_to_l3(world: SandboxWorld, l2: dict[str, Any]) -> dict[str, Any]:
    open_modal(world, COORDINATOR, ActionId.ESCALATE_L3, COORD_CHANNEL, l2)
    before = len(world.slack.messages(LEAD_CHANNEL))
    world.submit_latest_view(
        COORDINATOR,
        {
            "trigger": {"value": select_value("architecture_redesign")},
            "reason": {"value": text_value("The upstream partition layout changed.")},
        },
    )
    settle_until(world, lambda: len(world.slack.messages(LEAD_CHANNEL)) == before + 1, "no Level 3 message")
    return world.slack.messages(LEAD_CHANNEL)[-1]


def ask_for_decision(world: SandboxWorld, l3: dict[str, Any]) -> dict[str, Any]:
    open_modal(world, TECH_LEAD, ActionId.ASK_DECISION, LEAD_CHANNEL, l3)
    before = len(world.slack.messages(DECISION_CHANNEL))
    world.submit_latest_view(TECH_LEAD, {"question": {"value": text_value("How do we proceed tonight?")}})
    settle_until(
        world, lambda: len(world.slack.messages(DECISION_CHANNEL)) == before + 1, "no Level 4 message"
    )
    return world.slack.messages(DECISION_CHANNEL)[-1]


def incident_row(world: SandboxWorld, incident_id: int) -> Any:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None, f"INC-{incident_id} does not exist"
        return inc


def incident_state(world: SandboxWorld, incident_id: int) -> tuple[Any, ...]:
    inc = incident_row(world, incident_id)
    return inc.level, inc.status, inc.version, inc.acked_by, inc.resolved_by, inc.resolution_note


class SocketSandbox(SocketWorld):
    """A sandbox whose bot reaches Slack over Socket Mode (tests/test_socket_mode.py), started at once."""

    def __init__(self, **kwargs: Any) -> None:
        SandboxWorld.__init__(self, **kwargs)
        self.socket = SocketModeServer(self.slack, APP_TOKEN, ping_interval=0.2)

    def start(self) -> SocketSandbox:
        super().start()
        assert self.bot is not None
        self.bot.start_background()
        assert self.socket.connected.wait(10), "the bot did not complete the Socket Mode handshake"
        return self

    def __enter__(self) -> SocketSandbox:
        return self.start()
