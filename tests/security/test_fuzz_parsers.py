"""The parsers on their own, fed far more inputs than the HTTP tests can afford: each either returns a
well-formed value or refuses with its documented error, and never raises anything else."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.core.errors import InputError
from bot.core.models import AlertIn
from bot.integrations.alerts.alertmanager import parse_alertmanager
from bot.integrations.alerts.slack_messages import parse_slack_alert
from bot.services.views import handle_of
from bot.web import mlflow_alert
from tests.security.helpers import examples
from tests.security.strategies import (
    alertmanager_bodies,
    json_values,
    mlflow_bodies,
    mutated,
    nasty_text,
    odd_bodies,
    to_json,
)

CHANNEL = "C0ALERTS01"
T = TypeVar("T")


def isolated(fn: Callable[..., T], *args: Any) -> T:
    """Call a parser in a thread of its own, with a fresh stack: a RecursionError (json's C decoder on
    deep nesting) becomes a plain failure naming the parser instead of a traceback thousands deep."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(fn, *args)
        try:
            return future.result()
        except RecursionError:
            raise AssertionError(f"{fn.__name__} recursed too deep on {args!r:.120}") from None


def assert_well_formed(alert: AlertIn) -> None:
    assert isinstance(alert, AlertIn)
    assert alert.status in ("firing", "resolved")
    assert isinstance(alert.title, str) and isinstance(alert.fingerprint, str)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.labels.items())
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.annotations.items())
    json.dumps(alert.raw)  # storable as JSON


@settings(max_examples=examples(150))
@given(
    body=st.one_of(odd_bodies, st.one_of(alertmanager_bodies(), mutated(alertmanager_bodies())).map(to_json))
)
def test_parse_alertmanager_returns_alerts_or_raises_input_error_naming_a_field(body: bytes) -> None:
    try:
        parsed = isolated(parse_alertmanager, body, 100_000)
    except InputError as exc:
        assert exc.field, f"{body[:200]!r}: an InputError naming no field: {exc}"
        return
    assert parsed.alerts
    for alert in parsed.alerts:
        assert_well_formed(alert)
    for refused in parsed.refused:
        assert refused.field.startswith("alerts["), refused


@st.composite
def foreign_bot_posts(draw: st.DrawFn) -> dict[str, Any]:
    """A post another bot made in the alert channel, titled as Alertmanager titles its Slack posts."""
    attachment: dict[str, Any] = {"title": "[FIRING:1] " + draw(nasty_text())}
    for key in ("text", "pretext", "fallback", "color"):
        if draw(st.booleans()):
            attachment[key] = draw(nasty_text())
    if draw(st.booleans()):
        attachment["fields"] = draw(
            st.lists(st.fixed_dictionaries({"title": nasty_text(2), "value": nasty_text()}), max_size=3)
        )
    return {
        "type": "message",
        "channel": CHANNEL,
        "ts": f"{draw(st.integers(1_600_000_000, 1_900_000_000))}.{draw(st.integers(0, 999_999)):06d}",
        "bot_id": "B0OTHERBOT",
        "text": draw(nasty_text()),
        "attachments": [attachment],
        "blocks": draw(st.one_of(st.just([]), json_values(6))),
    }


@settings(max_examples=examples(150))
@given(event=foreign_bot_posts())
def test_an_alert_another_bot_posts_is_never_lost_to_a_parser_error(event: dict[str, Any]) -> None:
    alert = isolated(parse_slack_alert, event, {CHANNEL}, "U0BOT", "B0BOT")

    assert alert is not None, f"an alert post was dropped: {event!r:.400}"
    assert_well_formed(alert)
    assert alert.status == "firing"


@settings(max_examples=examples(150))
@given(event=st.one_of(json_values(), mutated(foreign_bot_posts())))
def test_parse_slack_alert_never_raises(event: Any) -> None:
    if not isinstance(event, dict):
        event = {"event": event}
    alert = isolated(parse_slack_alert, event, {CHANNEL}, "U0BOT", "B0BOT")

    if alert is not None:
        assert_well_formed(alert)


@settings(max_examples=examples(150))
@given(payload=st.one_of(mlflow_bodies(), mutated(mlflow_bodies())))
@example(payload={"entity": "model_version", "action": "updated", "data": True})
@example(payload={"entity": "model_version", "action": "updated", "data": ["FAILED_REGISTRATION"]})
def test_mlflow_alert_returns_an_alert_or_none_for_any_registry_event(payload: Any) -> None:
    if not isinstance(payload, dict) or "entity" not in payload or "action" not in payload:
        return  # the route refuses these before they reach the parser
    alert = isolated(mlflow_alert, payload, "delivery-1")

    if alert is not None:
        assert_well_formed(alert)


@settings(max_examples=examples(200))
@given(
    private_metadata=st.one_of(
        nasty_text(),
        json_values().map(json.dumps),
        st.integers(1, 200_000).map(lambda n: "[" * n + "]" * n),
    )
)
def test_a_modals_handle_is_read_as_text_whatever_its_private_metadata_holds(private_metadata: str) -> None:
    assert isinstance(isolated(handle_of, {"private_metadata": private_metadata}), str)


LARGEST_BODY = 1_000_000  # bot.web.MAX_BODY: anything up to this size is read, parsed and redacted


SHAPES = {"word characters": "x", "scheme-like": "a+", "key-like": "token_", "spaces and colons": "a: "}


def test_redacting_the_largest_text_the_bot_accepts_finishes() -> None:
    """Redaction runs on every alert text the bot accepts. Patterns that backtrack take time growing with
    the square of the text: a 1 MB description would hold a worker for hours. The work runs in a child
    process that is killed at the timeout, so a slow pattern cannot outlive this test."""
    code = "\n".join(
        [
            "from bot.core.redact import redact",
            f"for name, unit in {SHAPES!r}.items():",
            f"    redact(unit * ({LARGEST_BODY} // len(unit)))",
            "    print(name, flush=True)",
        ]
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as child:
        try:
            out, _ = child.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            out, _ = child.communicate()
    done = out.splitlines()
    slow = next((name for name in SHAPES if name not in done), None)
    assert slow is None, (
        f"redact() did not finish on {LARGEST_BODY} bytes of {SHAPES[slow]!r} within 20 s (it takes well "
        "under a second when its patterns do not backtrack)"
    )
