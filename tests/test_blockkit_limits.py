"""Every message kind and the Details modal keep Slack's Block Kit limits (tests/blockkit.py), down to the
longest realistic incident: 30 findings with 3,000-character summaries still make a short message, a
report and a modal Slack accepts, each saying what it left for Details."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session

from bot.core.evidence import Evidence
from bot.core.models import (
    AttemptResult,
    AttemptStatus,
    CheckResult,
    CheckStatus,
    IncidentStatus,
    L1Outcome,
    Level,
)
from bot.integrations.slack import blocks
from bot.integrations.slack.evidence_modal import About, details_modal
from bot.sandbox.world import COORDINATOR, SandboxWorld
from bot.store.tables import Incident
from tests import blockkit
from tests.blockkit import problems
from tests.gallery import Messages, escalated_world, incident_and_l2, storm_summary
from tests.shown import body, field
from tests.test_details import add_findings, click_details


@pytest.fixture(scope="module")
def gallery() -> Iterator[tuple[SandboxWorld, Messages]]:
    with escalated_world() as found:
        yield found


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(**over: Any) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": "Go"},
        "action_id": "go",
        "value": "1",
        **over,
    }


@pytest.mark.parametrize(
    ("payload", "surface", "problem"),
    [
        ({"text": "", "blocks": [section("x")]}, "message", "no text fallback"),
        ({"text": "x" * 40_001, "blocks": []}, "message", "text 40001 > 40000"),
        ({"text": "x", "blocks": [section("x")] * 51}, "message", "message blocks: 51"),
        ({"text": "x", "blocks": [section("x" * 3001)]}, "message", "section text: 3001 characters > 3000"),
        (
            {
                "text": "x",
                "blocks": [
                    {"type": "section", "text": section("x")["text"], "fields": [section("f")["text"]] * 11}
                ],
            },
            "message",
            "section fields: 11",
        ),
        (
            {"text": "x", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]},
            "message",
            "header: 151",
        ),
        (
            {"text": "x", "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]},
            "message",
            "must be plain_text",
        ),
        (
            {"text": "x", "blocks": [{"type": "context", "elements": [section("c")["text"]] * 11}]},
            "message",
            "context elements: 11",
        ),
        (
            {
                "text": "x",
                "blocks": [{"type": "actions", "elements": [button(action_id=f"a{i}") for i in range(26)]}],
            },
            "message",
            "actions elements: 26",
        ),
        (
            {
                "text": "x",
                "blocks": [
                    {"type": "actions", "elements": [button(text={"type": "plain_text", "text": "b" * 76})]}
                ],
            },
            "message",
            "button text: 76",
        ),
        (
            {"text": "x", "blocks": [{"type": "actions", "elements": [button(value="v" * 2001)]}]},
            "message",
            "button value: 2001",
        ),
        (
            {"text": "x", "blocks": [{"type": "actions", "elements": [button(style="blue")]}]},
            "message",
            "button style",
        ),
        (
            {"text": "x", "blocks": [{"type": "actions", "elements": [button(), button()]}]},
            "message",
            "used twice",
        ),
        (
            {"text": "x", "blocks": [{"type": "actions", "block_id": "b" * 256, "elements": [button()]}]},
            "message",
            "block_id: 256",
        ),
        ({"text": "x", "blocks": [section("a & b")]}, "message", "a bare &"),
        ({"text": "x", "blocks": [section("<javascript:x>")]}, "message", "neither a mention nor a link"),
        ({"text": "x", "blocks": [section("```open")]}, "message", "unclosed ``` fence"),
        ({"text": "x", "blocks": [{"type": "image"}]}, "message", "not one the bot is known to send"),
        (
            {"type": "modal", "title": {"type": "plain_text", "text": "t" * 25}, "blocks": []},
            "modal",
            "title: 25",
        ),
        (
            {"type": "modal", "title": {"type": "plain_text", "text": "t"}, "blocks": [section("x")] * 101},
            "modal",
            "modal blocks: 101",
        ),
        (
            {
                "type": "modal",
                "title": {"type": "plain_text", "text": "t"},
                "blocks": [],
                "private_metadata": "p" * 3001,
            },
            "modal",
            "private_metadata: 3001",
        ),
        (
            {
                "type": "modal",
                "title": {"type": "plain_text", "text": "t"},
                "blocks": [section("x" * 2900)] * 90,
            },
            "modal",
            "bytes > 250000",
        ),
    ],
)
def test_the_checker_finds_each_limit_broken(payload: dict[str, Any], surface: str, problem: str) -> None:
    assert any(problem in p for p in problems(payload, surface)), problems(payload, surface)


@pytest.mark.parametrize(
    "kind",
    ["alert", "l1_not_fixed", "l1_fixed", "l2", "reminder", "l2_escalated", "l3", "l4_pending", "l4_decided"],
)
def test_every_message_kind_keeps_the_limits_and_a_short_notification(
    gallery: tuple[SandboxWorld, Messages], kind: str
) -> None:
    _, found = gallery
    message = found[kind]
    assert problems(message) == []
    assert len(message["text"]) <= 400 and len(message["text"].splitlines()) <= 2
    assert len(body(message)) <= blockkit.SHORT_TEXT


def test_the_storm_summary_keeps_the_limits() -> None:
    assert problems(storm_summary()) == []


def test_context_lines_past_fifty_blocks_share_the_last_context_block() -> None:
    laid_out = blocks.message("x", [f"line {i}" for i in range(80)], [blocks.details_button(1, Level.L2)])
    assert len(laid_out) == 50 and laid_out[-1]["type"] == "actions"
    assert problems({"text": "x", "blocks": laid_out}) == []
    assert laid_out[-2]["elements"][0]["text"].endswith("line 79")


def long_outcome() -> L1Outcome:
    """Thirty checks that each found 3,000 characters' worth, and two attempts."""
    findings = [
        CheckResult(
            f"long_{i}",
            CheckStatus.FAIL if i % 3 else CheckStatus.OK,
            f"check {i} found {'x & y ' * 600}"[:3000],
        )
        for i in range(30)
    ]
    attempts = [
        AttemptResult("retry_job_with_debug", 1, AttemptStatus.FAILED, "failed again " * 250),
        AttemptResult("retry_job_with_debug", 2, AttemptStatus.REFUSED, "refused: retry cap 1 reached"),
    ]
    return L1Outcome(False, findings, attempts, "e" * 3000, "a" * 3000, "b" * 3000, "❌ " + "r" * 3000)


def test_the_longest_realistic_incident_still_makes_a_short_report_a_short_l2_and_a_modal(
    world: SandboxWorld,
) -> None:
    from bot.sandbox.world import PIPELINE_ALERT, alertmanager_payload

    world.post_alerts(alertmanager_payload([PIPELINE_ALERT]))
    world.settle()
    [l2] = world.slack.messages("#data-coordinator")
    add_findings(world, 30, 3000)

    # the L2 message, re-rendered with every finding when it is acknowledged (chat.update through slack_sdk)
    world.click(COORDINATOR, "incident_ack", "#data-coordinator", l2["ts"])
    world.settle()
    l2 = world.slack.message("#data-coordinator", l2["ts"])
    assert problems(l2) == [] and len(body(l2)) <= blockkit.SHORT_TEXT
    assert field(l2, "Attempted:").endswith("… 27 more checks in Details")

    # the Level 1 report of such a run, posted through the real client
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        inc = s.get(Incident, 1)
        assert inc is not None
        report = world.bot.services.composer.l1_report(inc, long_outcome())
    assert problems(report) == [] and len(body(report)) <= blockkit.SHORT_TEXT
    posted = world.slack.client().chat_postMessage(channel="#ml-alerts", **report)
    assert posted["ok"]
    assert field(report, "Attempted:").endswith("… 20 more checks in Details")

    # and its Details modal
    click_details(world, COORDINATOR, "#data-coordinator", l2)
    assert problems(world.slack.views[-1], "modal") == []


def test_an_escalation_whose_fields_someone_wrote_at_length_is_cut_readably(
    gallery: tuple[SandboxWorld, Messages],
) -> None:
    world, _ = gallery
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        inc, esc = incident_and_l2(s)
        esc.fields = {
            k: f"{k} " + "word " * 1000
            for k in ("problem", "attempted", "impact", "infrastructure", "request")
        }
        payload = world.bot.services.composer.escalation(inc, esc, IncidentStatus.OPEN)
        written = dict(esc.fields)
        s.rollback()
    assert problems(payload) == []
    assert all(field(payload, f"{label}:").endswith("…") for label in ("Problem", "Impact", "Request"))
    assert len(body(payload)) <= blockkit.SHORT_TEXT
    # Details shows them as far as a section holds, each of them
    view = details_modal(About(1, "pipeline step failed", "t", "L2 · open", None, written), Evidence())
    assert problems(view, "modal") == []
    shown = view["blocks"][3]["text"]["text"]
    assert shown.startswith("*As escalated*\nProblem: problem word") and "\nRequest: request word" in shown
