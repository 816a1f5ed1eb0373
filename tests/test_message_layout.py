"""What each message looks like, from real runs through the Slack emulator: a header line saying level,
incident, category and urgency; the protocol's labels in order; one Attempted line per recorded check and
remediation, with its mark and human name; links; the Details button; a notification text of the header
and the Request (or the Result)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, col, select

from bot.core.models import ActionId, IncidentStatus
from bot.diagnostics.names import CHECKS, check_name
from bot.sandbox.world import SandboxWorld
from bot.services.messages import Composer
from bot.store.tables import Finding, RemediationAttempt
from tests.gallery import Messages, escalated_world, incident_and_l2, storm_summary
from tests.shown import L1_LABELS, LABELS, field, shown

L2_LABELS = list(LABELS[:5])
BULLET = re.compile(r"^• (✅|⚠️|❌|⏭️|⬆️) \*([^*]+)\*(?:: .+)?$")


@pytest.fixture(scope="module")
def gallery() -> Iterator[tuple[SandboxWorld, Messages]]:
    with escalated_world() as found:
        yield found


def labels_of(message: dict[str, Any]) -> list[str]:
    lines = shown(message).splitlines()
    return [line.split(" ", 1)[0] for line in lines if line.split(" ", 1)[0] in (*LABELS, *L1_LABELS)]


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message.get("blocks", []) if b["type"] == "actions" for e in b["elements"]]


def bullets(text: str) -> list[tuple[str, str]]:
    """(mark, human name) of each bullet line."""
    found = [BULLET.match(line) for line in text.splitlines() if line.startswith("• ")]
    assert all(found), text
    return [(m.group(1), m.group(2)) for m in found if m]


def recorded(world: SandboxWorld, incident_id: int) -> tuple[list[Finding], list[RemediationAttempt]]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        findings = s.exec(select(Finding).where(Finding.incident_id == incident_id).order_by(col(Finding.id)))
        tried = select(RemediationAttempt).where(RemediationAttempt.incident_id == incident_id)
        return list(findings), list(s.exec(tried.order_by(col(RemediationAttempt.id))))


def test_the_root_alert_message_leads_with_the_incident_its_category_and_what_happens_next(
    gallery: tuple[SandboxWorld, Messages],
) -> None:
    _, found = gallery
    alert = found["alert"]
    assert alert["text"].startswith(":red_circle: *INC-1* · pipeline step failed · KubeJobFailed")
    assert "its report follows in this thread" in alert["text"]
    assert shown(alert).splitlines()[0] == alert["text"].splitlines()[0]


def test_an_l1_report_that_did_not_fix_it_has_a_header_the_four_labels_and_a_line_per_check_and_attempt(
    gallery: tuple[SandboxWorld, Messages],
) -> None:
    world, found = gallery
    report = found["l1_not_fixed"]
    header = "*Level 1 report · INC-1 · pipeline step failed* · :rotating_light: urgent (severity critical)"
    assert shown(report).splitlines()[0] == header
    assert labels_of(report) == list(L1_LABELS)
    findings, attempts = recorded(world, 1)
    checks = bullets(field(report, "Attempted:"))
    assert [name for _, name in checks] == [check_name(f.check) for f in findings]
    assert all(f.check in CHECKS for f in findings)  # every check has its human name
    assert [mark for mark, _ in checks] == ["✅", "❌", "❌", "✅", "⚠️"]  # triage ok … warning events warn
    assert bullets(field(report, "Action:")) == [
        ("❌", "Retry with debug logging"),
        ("⏭️", "Retry with debug logging"),
    ]
    assert len(attempts) == 2
    assert field(report, "Result:") == "Result: ❌ not fixed after 1 of 2 attempts; escalating to Level 2"
    assert report["text"] == f"{header}\nResult: ❌ not fixed after 1 of 2 attempts; escalating to Level 2"
    assert [(b["text"]["text"], b["value"]) for b in buttons(report)] == [("Details", "1:L1")]
    assert "<http://prometheus.local/graph|Alert source> · `Job ml-pipelines/feature-build-daily`" in (
        shown(report)
    )


def test_an_l1_report_that_fixed_it_says_so_in_its_notification(
    gallery: tuple[SandboxWorld, Messages],
) -> None:
    world, found = gallery
    report = found["l1_fixed"]
    assert report["text"].startswith(
        "*Level 1 report · INC-2 · training crash* · not urgent (severity warning)"
    )
    assert "\nResult: ✅ fixed at Level 1: job train-churn-model-l1-" in report["text"]
    findings, _ = recorded(world, 2)
    assert [n for _, n in bullets(field(report, "Attempted:"))] == [check_name(f.check) for f in findings]
    assert bullets(field(report, "Action:")) == [("✅", "Re-run with 4Gi")]
    assert [b["action_id"] for b in buttons(report)] == [ActionId.DETAILS]


def test_an_l2_message_has_its_five_fields_in_order_each_short_and_attempted_as_one_line_per_step(
    gallery: tuple[SandboxWorld, Messages],
) -> None:
    world, found = gallery
    l2 = found["l2"]
    lines = shown(l2).splitlines()
    header = (
        "<!subteam^S0COORD> *Level 2 · INC-1 · pipeline step failed* · "
        ":rotating_light: urgent (severity critical)"
    )
    assert lines[0] == header
    assert labels_of(l2) == L2_LABELS
    problem = "Problem: KubeJobFailed: Job ml-pipelines/feature-build-daily failed: BackoffLimitExceeded"
    assert field(l2, "Problem:") == problem  # the title: what Level 1 found is in Attempted
    findings, attempts = recorded(world, 1)
    steps = bullets(field(l2, "Attempted:"))
    assert len(steps) == len(findings) + len(attempts)  # one line each, nothing left for Details
    assert [name for _, name in steps][-2:] == ["Retry with debug logging"] * 2
    for label in ("Impact:", "Infrastructure:", "Request:"):
        assert "\n" not in field(l2, label) and len(field(l2, label)) <= 320
    assert "Infrastructure: cluster sandbox (127.0.0.1:" in shown(l2)  # no scheme: it is a host, not a page
    assert all(len(line) <= 200 for line in lines if line.startswith("• "))
    assert l2["text"] == f"{header}\nRequest: Guidance on a debugging strategy"
    labels = [b["text"]["text"] for b in buttons(l2)]
    assert labels == ["Acknowledge", "Resolved", "Escalate to tech lead", "Snooze", "Details"]
    assert {b["value"] for b in buttons(l2)} == {"1:L2"}
    links = ":link: <http://prometheus.local/graph|Alert source> · `Job ml-pipelines/feature-build-daily`"
    assert links in shown(l2)


def test_an_escalated_l2_message_keeps_its_details_and_the_l3_adds_the_level_2_move_and_the_trigger(
    gallery: tuple[SandboxWorld, Messages],
) -> None:
    _, found = gallery
    assert [b["text"]["text"] for b in buttons(found["l2_escalated"])] == ["Details"]
    l3 = found["l3"]
    assert shown(l3).startswith("<!subteam^S0LEAD> *Level 3 · INC-1 · pipeline step failed* · :rotating")
    assert labels_of(l3) == [*L2_LABELS, "Trigger:"]
    steps = bullets(field(l3, "Attempted:"))
    assert steps[-1] == ("⬆️", "Level 2")
    why = "Upstream stopped writing the daily partition"
    assert f"the data coordinator escalated: {why}" in field(l3, "Attempted:")
    assert f"Trigger: MLOps pipeline architecture redesign — {why}" in shown(l3)
    labels = [b["text"]["text"] for b in buttons(l3)]
    assert labels == ["Acknowledge", "Resolved", "Ask for a decision", "Snooze", "Details"]
    assert l3["text"].endswith("\nRequest: Guidance on a debugging strategy")


def test_a_decision_request_and_its_decided_message(gallery: tuple[SandboxWorld, Messages]) -> None:
    _, found = gallery
    pending, decided = found["l4_pending"], found["l4_decided"]
    header = "<!subteam^S0DECIDE> *Decision needed · INC-1 · pipeline step failed* · :rotating_light: urgent"
    assert pending["text"].startswith(header) and pending["text"].endswith("\nWhich way now?")
    options = buttons(pending)
    said = [o["confirm"]["text"]["text"].partition(". ") for o in options]  # what it does. trade-off
    assert 2 <= len(options) <= 4 and all(t in shown(pending) for _, _, t in said)
    assert all(does.lower() in shown(pending).lower() for does, _, _ in said)
    assert buttons(decided) == []
    assert f"Decided: {options[1]['text']['text']} by <@U0DECIDE>" in shown(decided)


def test_a_reminder_is_one_line_and_a_storm_summary_counts_incidents_and_pipelines(
    gallery: tuple[SandboxWorld, Messages],
) -> None:
    _, found = gallery
    reminder = found["reminder"]
    assert reminder["text"].startswith(":alarm_clock: <!subteam^S0COORD> INC-1 (pipeline step failed) has")
    assert "\n" not in reminder["text"] and shown(reminder) == reminder["text"]
    summary = storm_summary()
    first, categories, last = summary["text"].splitlines()
    assert re.fullmatch(
        r":rotating_light: \*Alert storm\* · 3 new incidents in \d+ s across 2 pipelines: .+", first
    )
    assert re.fullmatch(r"By category: .+ \(\d+\)\.", categories)  # what its incidents are now
    assert last.startswith("3 alerts since ") and shown(summary) == summary["text"]


def test_more_checks_than_a_message_shows_are_counted_and_left_for_details(
    gallery: tuple[SandboxWorld, Messages],
) -> None:
    world, _ = gallery
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        inc, esc = incident_and_l2(s)
        for i in range(14):  # fourteen more checks, two of them failures
            status = "fail" if i in (3, 9) else "ok"
            s.add(Finding(incident_id=1, check=f"extra_{i}", status=status, summary=f"read {i}", at=esc.at))
        s.flush()
        payload = Composer(lambda entry: entry).escalation(inc, esc, IncidentStatus.OPEN)
        s.rollback()
    steps = bullets(field(payload, "Attempted:"))
    assert len(steps) == 10
    assert ("❌", "Extra 3") in steps and ("❌", "Extra 9") in steps  # failures stay, ok checks go first
    assert field(payload, "Attempted:").endswith("\n… 11 more checks in Details")


def test_a_run_a_check_read_links_to_its_mlflow_page(gallery: tuple[SandboxWorld, Messages]) -> None:
    world, _ = gallery
    assert world.bot is not None
    run = "5e0c7d2a9b8f4e61a3c2d1b0f9e8d7c6"
    with Session(world.bot.services.engine) as s:
        inc, esc = incident_and_l2(s)
        evidence = {"call": "GET run", "response": {"run_id": run, "experiment_id": "7", "status": "FAILED"}}
        read = Finding(
            incident_id=1, check="mlflow_run", status="fail", summary="failed", evidence=evidence, at=esc.at
        )
        s.add(read)
        s.flush()

        def page(experiment: str, run_id: str) -> str:
            return f"http://mlflow.local/#/experiments/{experiment}/runs/{run_id}"

        payload = Composer(lambda entry: entry, run_url=page).escalation(inc, esc, IncidentStatus.OPEN)
        s.rollback()
    assert f"<http://mlflow.local/#/experiments/7/runs/{run}|MLflow run 5e0c7d2a>" in shown(payload)
