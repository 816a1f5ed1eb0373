"""The parsers on their own, fed far more inputs than the HTTP tests can afford: each either returns a
well-formed value or refuses with its documented error, and never raises anything else."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.errors import InputError
from bot.core.models import AlertIn
from bot.integrations.alerts.alertmanager import parse_alertmanager
from bot.integrations.alerts.slack_messages import parse_slack_alert
from bot.web_sources import mlflow_alert
from handlers.common import meta
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
        alerts = parse_alertmanager(body)
    except InputError as exc:
        assert exc.field, f"{body[:200]!r}: an InputError naming no field: {exc}"
        return
    assert alerts
    for alert in alerts:
        assert_well_formed(alert)


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
    alert = parse_slack_alert(event, {CHANNEL}, "U0BOT", "B0BOT")

    assert alert is not None, f"an alert post was dropped: {event!r:.400}"
    assert_well_formed(alert)
    assert alert.status == "firing"


@settings(max_examples=examples(150))
@given(event=st.one_of(json_values(), mutated(foreign_bot_posts())))
def test_parse_slack_alert_never_raises(event: Any) -> None:
    if not isinstance(event, dict):
        event = {"event": event}
    alert = parse_slack_alert(event, {CHANNEL}, "U0BOT", "B0BOT")

    if alert is not None:
        assert_well_formed(alert)


@settings(max_examples=examples(150))
@given(payload=st.one_of(mlflow_bodies(), mutated(mlflow_bodies())))
def test_mlflow_alert_returns_an_alert_or_none_for_any_registry_event(payload: Any) -> None:
    if not isinstance(payload, dict) or "entity" not in payload or "action" not in payload:
        return  # the route refuses these before they reach the parser
    alert = mlflow_alert(payload, "delivery-1")

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
def test_modal_private_metadata_is_read_as_a_dict_whatever_it_holds(private_metadata: str) -> None:
    assert isinstance(meta({"private_metadata": private_metadata}), dict)
