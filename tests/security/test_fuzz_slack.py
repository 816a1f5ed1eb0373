"""Everything Slack can deliver (slash commands, button clicks, modal submissions, messages in the alert
channel), signed as Slack signs it but with anything inside: the bot acks with a 200, never a 5xx or a
traceback, never crashes a listener, tells the person what was wrong, and keeps serving.

The clicks and submissions come from someone who may not act on anything (an outsider) or name views
the bot never opened, so none of them may change anything either."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.core.models import ActionId, Level, StrategicTrigger
from bot.sandbox.slack_driver import Response, SlackDriver, select_value, text_value
from bot.sandbox.slack_emulator import BOT_USER_ID
from bot.sandbox.world import OUTSIDER, SandboxWorld
from tests.security.helpers import (
    ALERT_CHANNEL,
    COORD_CHANNEL,
    DECISION_CHANNEL,
    FUZZ_CONFIG,
    GENERIC_FAILURE,
    Crashes,
    ack_text,
    ask_for_decision,
    assert_no_server_error,
    assert_still_serving,
    crash_log,
    ephemerals_for,
    escalate_to_l3,
    examples,
    note_status,
    open_l2,
    row_counts,
    without_outbox,
)
from tests.security.strategies import json_values, nasty_text, numbers

VIEW_CALLBACKS = [
    ActionId.RESOLVE_VIEW,
    ActionId.ESCALATE_L3_VIEW,
    ActionId.ASK_DECISION_VIEW,
    ActionId.RATIONALE_VIEW,
    ActionId.ESCALATE_VIEW,
]
BUTTONS = [ActionId.ACK, ActionId.RESOLVE, ActionId.ESCALATE_L3, ActionId.ASK_DECISION]
INPUT_BLOCKS = [
    "note",
    "trigger",
    "reason",
    "question",
    "context",
    "rationale",
    "problem",
    "attempted",
    "impact",
    "infrastructure",
    "request",
]


class SlackFuzzWorld:
    """One sandbox for the module: INC-1 waits at Level 2, INC-2 for a decision at Level 4."""

    def __init__(self, world: SandboxWorld, crashes: Crashes) -> None:
        self.world = world
        self.crashes = crashes
        self.l2 = open_l2(world, 1)
        self.l4 = ask_for_decision(world, escalate_to_l3(world, open_l2(world, 2)))

    @property
    def driver(self) -> SlackDriver:
        assert self.world.driver is not None
        return self.world.driver


@pytest.fixture(scope="module")
def slack_world() -> Iterator[SlackFuzzWorld]:
    with SandboxWorld(config=FUZZ_CONFIG) as world, crash_log() as crashes:
        yield SlackFuzzWorld(world, crashes)


class Outcome:
    """What one request did: read after the bot has settled."""

    def __init__(self, sw: SlackFuzzWorld, user: str) -> None:
        self.sw, self.user = sw, user
        w = sw.world
        self.rows = row_counts(w)
        self.crash_mark = len(sw.crashes)
        self.told_mark = len(ephemerals_for(w, user))
        self.calls_mark = len(w.slack.calls)
        self.l2, self.l4 = self._messages()

    def _messages(self) -> tuple[dict[str, Any], dict[str, Any]]:
        s = self.sw.world.slack
        return s.message(COORD_CHANNEL, self.sw.l2["ts"]), s.message(DECISION_CHANNEL, self.sw.l4["ts"])

    def check(self, response: Response, sent: Any, *, may_change: bool = False) -> list[str]:
        """The common properties; returns what the user was told (ephemerally) by this request."""
        w = self.sw.world
        what = f"{sent!r:.400}"
        note_status(response)
        assert_no_server_error(response, what)
        w.settle()
        crashed = self.sw.crashes.since(self.crash_mark)
        assert not crashed, f"{what}: a listener crashed: {crashed[-1]}"
        assert_still_serving(w)
        told = ephemerals_for(w, self.user)[self.told_mark :]
        generic = [t for t in told if GENERIC_FAILURE in t]
        assert not generic, f"{what}: answered with the catch-all error, not what was wrong: {generic}"
        if not may_change:
            assert without_outbox(row_counts(w)) == without_outbox(self.rows), f"{what}: something changed"
            assert self._messages() == (self.l2, self.l4), f"{what}: a message was changed"
            opened = [c for c in w.slack.calls[self.calls_mark :] if c.method == "views.open"]
            assert not opened, f"{what}: opened a modal"
        return told


# ---- slash commands -----------------------------------------------------------------------------------

# Slack sends slash command text as UTF-8 form fields: no lone surrogates (they cannot be encoded).
form_text = nasty_text().map(lambda s: s.encode("utf-8", "replace").decode("utf-8"))
ids = st.one_of(
    st.integers(-5, 5).map(str),
    st.sampled_from(["99999999999999999999999", "9" * 400, "²", "١٢", "INC-1", "inc-2", "0x1", "1e3", "+1"]),
    form_text,
)
escalation_text = st.one_of(
    st.tuples(
        st.sampled_from(["list", "stats", "show", "ack", "resolve", "help", "LIST", "Show", "ACK", ""]),
        ids,
        form_text,
    ).map(" ".join),
    st.sampled_from(["stats 7d", "stats 30d", "stats 90d", "stats 1000000000000000d", "stats -7d"]),
    form_text,
)


@settings(max_examples=examples(100))
@given(text=escalation_text)
def test_any_escalation_subcommand_is_answered_in_the_ack_and_changes_nothing_for_an_outsider(
    slack_world: SlackFuzzWorld, text: str
) -> None:
    outcome = Outcome(slack_world, OUTSIDER)

    response = slack_world.driver.slash_command("/escalation", text, OUTSIDER, ALERT_CHANNEL)

    outcome.check(response, ("/escalation", text))
    assert response.status == 200, f"/escalation {text!r}: {response.status} {response.text}"
    assert ack_text(response).strip(), f"/escalation {text!r}: an empty answer"


@settings(max_examples=examples(60))
@given(text=form_text)
def test_any_escalate_text_is_acked_and_the_person_is_told_what_happened(
    slack_world: SlackFuzzWorld, text: str
) -> None:
    outcome = Outcome(slack_world, OUTSIDER)
    views = len(slack_world.world.slack.views)

    response = slack_world.driver.slash_command("/escalate", text, OUTSIDER, ALERT_CHANNEL)

    told = outcome.check(response, ("/escalate", text), may_change=True)
    assert response.status == 200, f"/escalate {text!r}: {response.status} {response.text}"
    acked = ack_text(response)
    opened_modal = len(slack_world.world.slack.views) > views
    assert told or acked or opened_modal, f"/escalate {text!r}: the person was told nothing"


# ---- buttons ------------------------------------------------------------------------------------------

incident_ids = st.one_of(st.sampled_from([1, 2, 0, -1, 3, 2**63, 10**20]), numbers)
levels = st.one_of(st.sampled_from([lv.value for lv in Level] + ["L0", "l2", ""]), nasty_text(1))
button_values = st.one_of(
    st.tuples(incident_ids, levels).map(lambda t: f"{t[0]}:{t[1]}"),
    st.tuples(incident_ids, st.integers(-2, 5)).map(lambda t: f"{t[0]}:{t[1]}"),
    nasty_text(),
)
action_ids = st.one_of(
    st.sampled_from(BUTTONS),
    st.one_of(st.integers(0, 4), st.sampled_from([10**20, 2**63])).map(
        lambda n: f"{ActionId.DECISION_OPTION}_{n}"
    ),
)


@settings(max_examples=examples(100))
@given(action_id=action_ids, value=button_values)
@example(action_id=ActionId.ACK, value="")
def test_an_outsiders_click_with_any_value_is_answered_and_changes_nothing(
    slack_world: SlackFuzzWorld, action_id: str, value: str
) -> None:
    on_l4 = action_id.startswith(ActionId.DECISION_OPTION)
    channel, message = (DECISION_CHANNEL, slack_world.l4) if on_l4 else (COORD_CHANNEL, slack_world.l2)
    outcome = Outcome(slack_world, OUTSIDER)

    response = slack_world.driver.block_action(
        OUTSIDER, action_id, value, channel, message["ts"], message=message
    )

    told = outcome.check(response, (action_id, value))
    assert response.status == 200, f"{action_id} {value!r}: {response.status} {response.text}"
    assert told, f"click {action_id} with value {value!r}: the person was told nothing"


# ---- modal submissions --------------------------------------------------------------------------------

input_values = st.one_of(
    nasty_text().map(lambda s: {"value": text_value(s)}),
    st.one_of(st.sampled_from([t.value for t in StrategicTrigger]), nasty_text(1)).map(
        lambda v: {"value": select_value(v)}
    ),
    json_values(4),
)
state_values = st.one_of(
    st.dictionaries(st.sampled_from(INPUT_BLOCKS), input_values, max_size=5),
    json_values(),
)
metadata = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "incident_id": st.one_of(incident_ids, nasty_text(1)),
            "decision_id": st.one_of(incident_ids, nasty_text(1)),
            "level": levels,
            "channel": st.sampled_from(["C0000000001", "", "nope"]),
            "ts": nasty_text(1),
        },
    ).map(json.dumps),
    nasty_text(),
    json_values().map(json.dumps),
)


@settings(max_examples=examples(100))
@given(
    callback_id=st.sampled_from(VIEW_CALLBACKS),
    values=state_values,
    private_metadata=metadata,
)
def test_a_submission_of_a_view_the_bot_never_opened_is_refused_and_changes_nothing(
    slack_world: SlackFuzzWorld, callback_id: str, values: Any, private_metadata: str
) -> None:
    outcome = Outcome(slack_world, OUTSIDER)

    response = slack_world.driver.view_submission(
        OUTSIDER, callback_id, values, private_metadata=private_metadata
    )

    sent = (callback_id, values, private_metadata)
    told = outcome.check(response, sent)
    assert response.status == 200, f"{sent!r:.300}: {response.status} {response.text}"
    if response.body:
        answer = response.json()
        if answer.get("response_action") == "update":  # the form is replaced by a notice saying why
            assert "cannot be accepted" in json.dumps(answer.get("view")), answer
            return
        assert answer.get("response_action") == "errors", f"{sent!r:.300}: {answer}"
        assert answer.get("errors") and all(str(m).strip() for m in answer["errors"].values()), answer
    else:
        assert told, f"{sent!r:.300}: acked, and the person was told nothing"


# ---- messages in the alert channel --------------------------------------------------------------------

attachments = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "title": nasty_text(),
            "text": nasty_text(),
            "pretext": nasty_text(),
            "fallback": nasty_text(),
            "color": st.one_of(st.sampled_from(["danger", "good", "#2eb886"]), nasty_text(1)),
            "fields": st.lists(
                st.fixed_dictionaries(
                    {"title": nasty_text(2), "value": nasty_text(), "short": st.booleans()}
                ),
                max_size=3,
            ),
        },
    ),
    max_size=2,
)
blocks = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["section", "header", "context", "rich_text", "divider"]),
                "text": st.fixed_dictionaries({"type": st.just("mrkdwn"), "text": nasty_text()}),
            }
        ),
        json_values(6),
    ),
    max_size=3,
)


@st.composite
def alert_channel_messages(draw: st.DrawFn) -> dict[str, Any]:
    """A message another bot (or a person, or nobody) posts in the subscribed alert channel."""
    message: dict[str, Any] = {
        "type": "message",
        "ts": f"{time.time():.6f}",
        "text": draw(nasty_text()),
    }
    optional = {
        "bot_id": st.one_of(st.just("B0OTHERBOT"), nasty_text(1)),
        "user": st.sampled_from([OUTSIDER, BOT_USER_ID, "U0OTHERBOT"]),
        "subtype": st.one_of(
            st.sampled_from(["bot_message", "message_changed", "channel_join"]), nasty_text(1)
        ),
        "attachments": st.one_of(attachments, json_values(4)),
        "blocks": st.one_of(blocks, json_values(4)),
        "thread_ts": st.one_of(st.just(message["ts"]), nasty_text(1)),
        "message": json_values(6),
        "bot_profile": json_values(4),
    }
    for key, strategy in optional.items():
        if draw(st.integers(0, 2)) > (0 if key in ("bot_id", "attachments") else 1):
            message[key] = draw(strategy)
    return message


@settings(max_examples=examples(80))
@given(message=alert_channel_messages())
@example(message={"type": "message", "ts": "1796326122.042161", "text": "\ud800", "bot_id": "B0OTHERBOT"})
def test_any_message_in_the_alert_channel_is_acked_and_never_crashes_the_listener(
    slack_world: SlackFuzzWorld, message: dict[str, Any]
) -> None:
    world = slack_world.world
    event = {**message, "channel": world.slack.channel_id(ALERT_CHANNEL)}
    outcome = Outcome(slack_world, OUTSIDER)

    response = slack_world.driver.event(event)

    outcome.check(response, event, may_change=True)
    assert response.status == 200, f"{event!r:.300}: {response.status} {response.text}"
