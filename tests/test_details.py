"""The Details button: every finding and remediation attempt behind a message, one click away, in a modal
opened with the click's trigger id; for the incident's actors and the people in its channels only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlmodel import Session, col, select

from bot.core.models import ActionId
from bot.diagnostics.names import check_name
from bot.sandbox.world import COORDINATOR, OUTSIDER, PIPELINE_ALERT, SandboxWorld, alertmanager_payload
from bot.store.tables import Finding, Incident, RemediationAttempt, SlackView
from tests.blockkit import problems
from tests.shown import field

COORDINATION, ALERTS = "#data-coordinator", "#ml-alerts"


@pytest.fixture
def escalated(world: SandboxWorld) -> Iterator[tuple[SandboxWorld, dict[str, Any]]]:
    world.post_alerts(alertmanager_payload([PIPELINE_ALERT]))
    world.settle()
    [l2] = world.slack.messages(COORDINATION)
    yield world, l2


def click_details(world: SandboxWorld, user: str, channel: str, message: dict[str, Any]) -> str:
    """Click Details on `message` as `user` in `channel` with a fresh trigger id; that trigger id."""
    assert world.driver is not None
    trigger = world.slack.mint_trigger_id(user)
    [button] = [
        e
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["text"]["text"] == "Details"
    ]
    response = world.driver.block_action(
        user, ActionId.DETAILS, button["value"], channel, message["ts"], message=message, trigger_id=trigger
    )
    assert response.status == 200
    world.settle()
    return trigger


def modal_text(view: dict[str, Any]) -> str:
    return "\n".join(
        str((b.get("text") or {}).get("text", "")) + "".join(e.get("text", "") for e in b.get("elements", []))
        for b in view["blocks"]
    )


def records(world: SandboxWorld) -> tuple[Incident, list[Finding], list[RemediationAttempt]]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        inc = s.get(Incident, 1)
        assert inc is not None
        findings = list(s.exec(select(Finding).order_by(col(Finding.id))))
        return inc, findings, list(s.exec(select(RemediationAttempt).order_by(col(RemediationAttempt.id))))


def test_details_on_an_l2_message_shows_every_finding_and_attempt_with_its_call_and_answer(
    escalated: tuple[SandboxWorld, dict[str, Any]],
) -> None:
    world, l2 = escalated
    trigger = click_details(world, COORDINATOR, COORDINATION, l2)

    [opened] = world.slack.calls_to("views.open")
    assert opened.args["trigger_id"] == trigger and opened.status == 200
    view = world.slack.views[-1]
    assert view["callback_id"] == ActionId.DETAILS_VIEW and not view.get("submit")  # read-only
    assert view["title"]["text"] == "INC-1 details"
    assert problems(view, "modal") == []
    text = modal_text(view)
    _, findings, attempts = records(world)
    for f in findings:
        assert f"*{check_name(f.check)}* · {f.status}" in text
        assert f"*Call* `{f.evidence['call']}`".replace("&", "&amp;") in text
    assert "❌ *Retry with debug logging* · failed · attempt 1" in text
    assert "⏭️ *Retry with debug logging* · refused · attempt 2" in text
    assert len(attempts) == 2 and "Plan: re-run job ml-pipelines/feature-build-daily" in text
    assert "Parquet magic bytes not found in footer" in text  # the log tail, as read
    assert " ms" in text  # how long each check took
    assert "<http://prometheus.local/graph|Alert source>" in text


def test_details_on_the_level_1_report_opens_for_someone_in_the_alert_channel(
    escalated: tuple[SandboxWorld, dict[str, Any]],
) -> None:
    world, _ = escalated
    [root] = world.slack.messages(ALERTS)
    [report] = world.slack.thread(ALERTS, root["ts"])
    click_details(world, OUTSIDER, ALERTS, report)  # not an actor, but in the channel the report is in
    assert world.slack.views[-1]["callback_id"] == ActionId.DETAILS_VIEW
    assert world.slack.ephemerals(user=OUTSIDER) == []


def test_someone_who_is_neither_an_actor_nor_in_the_incidents_channels_is_told_why_and_sees_nothing(
    escalated: tuple[SandboxWorld, dict[str, Any]],
) -> None:
    world, l2 = escalated
    world.slack.add_channel("random")
    click_details(world, OUTSIDER, "#random", l2)
    assert world.slack.calls_to("views.open") == []
    [told] = world.slack.ephemerals(user=OUTSIDER)
    assert told["text"].startswith("The details of INC-1 are for @data-coordinator, @tech-lead-orchestrator")
    assert "#data-coordinator" in told["text"] and "so they were not opened" in told["text"]

    click_details(world, COORDINATOR, "#random", l2)  # an actor may read them from anywhere
    assert world.slack.views[-1]["callback_id"] == ActionId.DETAILS_VIEW
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        [row] = s.exec(select(SlackView)).all()
    assert (row.user_id, row.callback_id, row.meta["incident_id"]) == (COORDINATOR, ActionId.DETAILS_VIEW, 1)


def test_a_refused_details_click_on_app_home_shows_the_refusal_in_a_modal_and_no_evidence(
    escalated: tuple[SandboxWorld, dict[str, Any]],
) -> None:
    world, _ = escalated
    assert world.driver is not None
    assert world.driver.app_home_opened(OUTSIDER).status == 200
    world.settle()
    home = world.slack.home(OUTSIDER)
    told: dict[str, dict[str, Any]] = {}
    for value in ("1:L2", " 1:L2"):  # a Details button of INC-1 (a Home published earlier), a forged one
        trigger = world.slack.mint_trigger_id(OUTSIDER, home["id"])
        clicked = world.driver.view_action(OUTSIDER, home, ActionId.DETAILS, value, trigger_id=trigger)
        world.settle()
        assert clicked.status == 200
        [opened] = [c for c in world.slack.calls_to("views.open") if c.args["trigger_id"] == trigger]
        assert opened.status == 200 and opened.error is None
        told[value] = opened.args["view"]

    for view in told.values():
        assert view["title"]["text"] == "Details not shown" and not view.get("submit")
        assert view.get("callback_id") != ActionId.DETAILS_VIEW
    refusal, forged = (modal_text(told[v]) for v in ("1:L2", " 1:L2"))
    assert refusal.startswith("The details of INC-1 are for @data-coordinator, @tech-lead-orchestrator")
    assert "so they were not opened" in refusal
    assert forged == "value: this button's value is not one the bot made; nothing was changed"
    _, findings, _ = records(world)
    assert findings and not any(f.summary[:40] in refusal for f in findings)  # no evidence
    assert "feature-build-daily" not in refusal
    assert world.slack.ephemerals(user=OUTSIDER) == []
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        assert s.exec(select(SlackView)).all() == []  # no Details modal was opened for anyone


def add_findings(world: SandboxWorld, count: int, chars: int) -> None:
    """`count` more recorded checks, each with a `chars`-character summary and a long answer."""
    inc, _, _ = records(world)
    assert world.bot is not None
    at: datetime = inc.opened_at
    with Session(world.bot.services.engine) as s:
        for i in range(count):
            summary = (f"check {i} read & found <this> " * 200)[:chars]
            evidence = {
                "call": f"GET /api/v1/things/{i}",
                "response": {"lines": [f"line {n} " * 8 for n in range(80)]},
            }
            s.add(
                Finding(
                    incident_id=1, check=f"long_{i}", status="fail", summary=summary, evidence=evidence, at=at
                )
            )
        s.commit()


def details_with(world: SandboxWorld, l2: dict[str, Any], count: int, chars: int) -> dict[str, Any]:
    """The Details modal of INC-1 once `count` more checks with `chars`-character summaries are recorded."""
    add_findings(world, count, chars)
    click_details(world, COORDINATOR, COORDINATION, l2)
    view = world.slack.views[-1]
    assert problems(view, "modal") == []
    return view


def test_the_longest_realistic_incident_fits_the_modal(
    escalated: tuple[SandboxWorld, dict[str, Any]],
) -> None:
    text = modal_text(details_with(*escalated, 30, 3000))
    assert all(f"*Long {i}* · fail" in text for i in range(30))  # every one of them, cut to fit
    assert "*Remediation attempts* (2)" in text and "more in the incident's thread" not in text


def test_what_does_not_fit_the_modal_is_counted_and_pointed_to(
    escalated: tuple[SandboxWorld, dict[str, Any]],
) -> None:
    world, l2 = escalated
    view = details_with(world, l2, 60, 500)
    assert len(view["blocks"]) <= 100
    last = view["blocks"][-1]
    assert last["type"] == "context"
    marks = ("✅", "⚠️", "❌", "⏭️")
    steps = [b for b in view["blocks"] if b["type"] == "section" and b["text"]["text"].startswith(marks)]
    _, findings, attempts = records(world)
    left = len(findings) + len(attempts) - len(steps)
    assert left > 0 and last["elements"][0]["text"] == f"… {left} more in the incident's thread"


def test_what_someone_wrote_at_length_is_cut_in_the_message_and_whole_in_details(world: SandboxWorld) -> None:
    assert world.driver is not None
    problem = "The registry rejects every new version " + "because the artifact store is read-only " * 20
    world.driver.slash_command("/escalate", problem, COORDINATOR, ALERTS)
    world.settle()
    [l2] = world.slack.messages(COORDINATION)
    shown_problem = field(l2, "Problem:")
    assert shown_problem.endswith("…") and len(shown_problem) <= 320
    click_details(world, COORDINATOR, COORDINATION, l2)
    view = world.slack.views[-1]
    assert problems(view, "modal") == []
    text = modal_text(view)
    assert f"*As escalated*\nProblem: {problem.strip()}" in text
    assert "Level 1 recorded no checks or remediation attempts for this incident." in text
