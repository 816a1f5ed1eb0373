"""One alert end to end over real HTTP: Alertmanager webhook → L1 → L2 → L3 → L4 decision."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from bot.core.models import ActionId
from bot.sandbox.slack_driver import select_value, text_value
from bot.sandbox.world import (
    COORDINATOR,
    DECIDER,
    OOM_ALERT,
    PIPELINE_ALERT,
    TECH_LEAD,
    SandboxWorld,
    alertmanager_payload,
)
from bot.store.tables import Decision, Incident, TimelineEvent
from tests.shown import shown

L2_FIELDS = ["Problem:", "Attempted:", "Impact:", "Infrastructure:", "Request:"]


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message.get("blocks", []) if b.get("type") == "actions" for e in b["elements"]]


def labels(message: dict[str, Any]) -> list[str]:
    return [e["text"]["text"] for e in buttons(message)]


def field_lines(text: str) -> list[str]:
    return [
        line.split(" ", 1)[0]
        for line in text.splitlines()
        if line.split(" ", 1)[0] in {*L2_FIELDS, "Trigger:", "Error:", "Action:", "Result:"}
    ]


def context_text(message: dict[str, Any]) -> str:
    return "\n".join(
        e["text"] for b in message.get("blocks", []) if b["type"] == "context" for e in b["elements"]
    )


def incident(world: SandboxWorld, incident_id: int) -> Incident:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        return inc


def test_an_oom_killed_training_job_is_rerun_with_more_memory_and_the_thread_says_so(
    world: SandboxWorld,
) -> None:
    resp = world.post_alerts(alertmanager_payload([OOM_ALERT]))
    assert resp.status == 202, resp.text
    assert resp.json()["opened"] == [1]
    world.settle()

    [root] = world.slack.messages("#ml-alerts")
    assert "INC-1" in root["text"] and "training crash" in root["text"]
    [report] = world.slack.thread("#ml-alerts", root["ts"])
    assert field_lines(shown(report)) == ["Error:", "Attempted:", "Action:", "Result:"]
    assert "OOMKilled" in shown(report) and "✅ fixed at Level 1" in report["text"]

    [job] = [r for r in world.kube.writes() if r.method == "POST"]
    limits = job.body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["memory"] == "4Gi"
    assert incident(world, 1).status == "resolved" and incident(world, 1).level == "L1"
    assert world.slack.messages("#data-coordinator") == []


def test_a_failing_step_goes_from_l2_to_a_recorded_l4_decision(world: SandboxWorld) -> None:
    assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202
    world.settle()

    # L1 tried, failed, and reported in the alert's thread
    [root] = world.slack.messages("#ml-alerts")
    [report] = world.slack.thread("#ml-alerts", root["ts"])
    assert "❌" in report["text"] and "Retry with debug logging" in shown(report)

    # L2: the five fields, verbatim and in order, mentioning the coordinator group, with three buttons
    [l2] = world.slack.messages("#data-coordinator")
    assert field_lines(shown(l2)) == L2_FIELDS
    assert "<!subteam^S0COORD>" in l2["text"]
    assert "Request: Guidance on a debugging strategy" in l2["text"]
    assert "Retry with debug logging" in shown(l2)  # Attempted says what L1 did
    assert labels(l2) == ["Acknowledge", "Resolved", "Escalate to tech lead", "Snooze", "Details"]

    # the coordinator acknowledges, then escalates to the tech lead through the modal
    assert world.click(COORDINATOR, ActionId.ACK, "#data-coordinator", l2["ts"]).status == 200
    world.settle()
    l2 = world.slack.message("#data-coordinator", l2["ts"])
    assert labels(l2) == ["Resolved", "Escalate to tech lead", "Details"]
    assert "Acknowledged by <@U0COORD>" in context_text(l2)

    world.click(COORDINATOR, ActionId.ESCALATE_L3, "#data-coordinator", l2["ts"])
    world.settle()
    assert world.slack.views[-1]["callback_id"] == ActionId.ESCALATE_L3_VIEW
    world.submit_latest_view(
        COORDINATOR,
        {
            "trigger": {"value": select_value("scalability")},
            "reason": {"value": text_value("Needs a bigger cluster")},
        },
    )
    world.settle()
    l2 = world.slack.message("#data-coordinator", l2["ts"])
    assert labels(l2) == ["Details"]
    assert "Escalated to the tech lead by <@U0COORD>" in context_text(l2)

    # L3: same five fields plus the trigger, mentioning the tech lead
    [l3] = world.slack.messages("#tech-leads")
    assert field_lines(shown(l3)) == [*L2_FIELDS, "Trigger:"]
    assert "<!subteam^S0LEAD>" in l3["text"]
    assert "Trigger: Scalability beyond current infrastructure — Needs a bigger cluster" in shown(l3)
    assert labels(l3) == ["Acknowledge", "Resolved", "Ask for a decision", "Snooze", "Details"]

    world.click(TECH_LEAD, ActionId.ASK_DECISION, "#tech-leads", l3["ts"])
    world.settle()
    world.submit_latest_view(
        TECH_LEAD, {"question": {"value": text_value("Which way?")}, "context": {"value": text_value("")}}
    )
    world.settle()

    # a decision waits: resolving by command says where, not who "decided" (nobody has)
    assert world.driver is not None
    world.driver.slash_command("/escalation", "resolve 1 handled by hand", DECIDER, "#ml-decisions")
    world.settle()
    said = str(world.slack.ephemerals(user=DECIDER))
    assert "INC-1 waits for a decision in #ml-decisions" in said and "Already decided" not in said

    # L4: the question and 2–4 option buttons, each with a confirm dialog carrying its trade-off
    [l4] = world.slack.messages("#ml-decisions")
    assert "Which way?" in l4["text"]
    options = buttons(l4)
    assert 2 <= len(options) <= 4
    for option in options:
        # the confirm dialog says what the click does, then the trade-off; the message says both too
        does, _, trade_off = option["confirm"]["text"]["text"].partition(". ")
        assert trade_off and trade_off in shown(l4)
        assert does.lower() in shown(l4).lower() and does.startswith(("Runs ", "Closes the incident"))

    assert world.click(DECIDER, f"{ActionId.DECISION_OPTION}_1", "#ml-decisions", l4["ts"]).status == 200
    world.settle()
    l4 = world.slack.message("#ml-decisions", l4["ts"])
    assert buttons(l4) == []
    chosen = options[1]["text"]["text"]
    assert f"Decided: {chosen} by <@U0DECIDE>" in context_text(l4)

    # the decider is asked why; the answer lands on the decision row and the message
    assert world.slack.views[-1]["callback_id"] == ActionId.RATIONALE_VIEW
    world.submit_latest_view(DECIDER, {"rationale": {"value": text_value("Retrain tonight matters most")}})
    world.settle()
    assert "why: Retrain tonight matters most" in context_text(world.slack.message("#ml-decisions", l4["ts"]))

    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        [decision] = s.exec(select(Decision)).all()
        kinds = [e.kind for e in s.exec(select(TimelineEvent).order_by(TimelineEvent.id))]  # type: ignore[arg-type]
    assert (decision.chosen_label, decision.chosen_by, decision.rationale) == (
        chosen,
        DECIDER,
        "Retrain tonight matters most",
    )
    assert decision.chosen_at is not None
    assert kinds == [
        "opened",
        "escalated",
        "acknowledged",
        "escalated",
        "decision_requested",
        "decided",
        "resolved",
        "rationale",
    ]
    assert incident(world, 1).status == "resolved" and incident(world, 1).level == "L4"


def test_an_unclassified_alert_goes_to_l2_at_once_asking_for_triage(world: SandboxWorld) -> None:
    alert = {
        "labels": {"alertname": "DiskAlmostFull", "namespace": "ml-pipelines"},
        "annotations": {"summary": "disk of node ml-7 is 97% full"},
    }
    world.post_alerts(alertmanager_payload([alert]))
    world.settle()
    [l2] = world.slack.messages("#data-coordinator")
    assert "no automatic diagnostics exist for unclassified yet" in shown(l2)
    assert "Request: Triage: which failure category is this, and who should own it?" in l2["text"]
    assert world.kube.requests == []


def test_a_slash_command_opens_an_incident_by_hand_straight_at_l2(world: SandboxWorld) -> None:
    assert world.driver is not None
    resp = world.driver.slash_command(
        "/escalate", "Model registry rejects every new version", COORDINATOR, "#ml-alerts"
    )
    assert resp.status == 200 and "Opening an incident" in resp.text
    world.settle()
    [told] = world.slack.ephemerals(user=COORDINATOR)
    assert "INC-1 is open and posted to #data-coordinator" in told["text"]
    [l2] = world.slack.messages("#data-coordinator")
    assert "Problem: Model registry rejects every new version" in shown(l2)
    assert "Request: Guidance on a model registry pattern" in l2["text"]


def test_the_escalate_command_without_text_opens_the_five_field_modal(world: SandboxWorld) -> None:
    assert world.driver is not None
    assert world.driver.slash_command("/escalate", "", COORDINATOR, "#ml-alerts").status == 200
    world.settle()
    view = world.slack.views[-1]
    assert [b["block_id"] for b in view["blocks"]] == [
        "problem",
        "attempted",
        "impact",
        "infrastructure",
        "request",
    ]
    world.submit_latest_view(
        COORDINATOR,
        {
            "problem": {"value": text_value("Nightly DAG stuck")},
            "impact": {"value": text_value("No fresh model tomorrow")},
        },
    )
    world.settle()
    [l2] = world.slack.messages("#data-coordinator")
    assert "Problem: Nightly DAG stuck" in shown(l2) and "Impact: No fresh model tomorrow" in shown(l2)


def test_escalation_command_lists_shows_and_resolves(world: SandboxWorld) -> None:
    world.post_alerts(alertmanager_payload([PIPELINE_ALERT]))
    world.settle()
    assert world.driver is not None
    listing = world.driver.slash_command("/escalation", "list", COORDINATOR, "#ml-alerts")
    assert "INC-1" in listing.text and "L2" in listing.text
    show = world.driver.slash_command("/escalation", "show INC-1", COORDINATOR, "#ml-alerts")
    assert "*Job status*" in show.text and "Problem:" in show.text
    assert "Drafts: rule-based · 0 tokens used on this incident" in show.text  # no ANTHROPIC_API_KEY
    world.driver.slash_command(
        "/escalation", "resolve 1 upstream partition restored", COORDINATOR, "#ml-alerts"
    )
    world.settle()
    inc = incident(world, 1)
    assert (inc.status, inc.resolution_note, inc.resolved_by) == (
        "resolved",
        "upstream partition restored",
        COORDINATOR,
    )
    l2 = world.slack.messages("#data-coordinator")[0]
    assert labels(l2) == ["Details"] and "Resolved by <@U0COORD>" in context_text(l2)
    usage = world.driver.slash_command("/escalation", "ack", COORDINATOR, "#ml-alerts")
    assert "Usage:" in usage.text


def test_a_chosen_option_with_an_action_is_carried_out_before_the_incident_closes() -> None:
    from bot.sandbox.kube_api import succeed_if_memory_at_least

    with SandboxWorld(job_rule=succeed_if_memory_at_least("64Gi")) as world:
        world.post_alerts(alertmanager_payload([OOM_ALERT]))
        world.settle()
        [l2] = world.slack.messages("#data-coordinator")
        assert (
            "❌" in world.slack.thread("#ml-alerts", world.slack.messages("#ml-alerts")[0]["ts"])[0]["text"]
        )
        world.click(COORDINATOR, ActionId.ESCALATE_L3, "#data-coordinator", l2["ts"])
        world.settle()
        world.submit_latest_view(
            COORDINATOR,
            {
                "trigger": {"value": select_value("scalability")},
                "reason": {"value": text_value("8Gi is not enough")},
            },
        )
        world.settle()
        world.click(
            TECH_LEAD, ActionId.ASK_DECISION, "#tech-leads", world.slack.messages("#tech-leads")[0]["ts"]
        )
        world.settle()
        world.submit_latest_view(TECH_LEAD, {"question": {"value": text_value("How do we train it?")}})
        world.settle()
        [l4] = world.slack.messages("#ml-decisions")
        assert labels(l4)[0] == "Re-run with more memory"

        world.kube.on_job_created = succeed_if_memory_at_least("4Gi")  # the node pool was grown meanwhile
        jobs_before = len([r for r in world.kube.writes() if r.method == "POST"])
        world.click(DECIDER, f"{ActionId.DECISION_OPTION}_0", "#ml-decisions", l4["ts"])
        world.settle()
        posts = [r for r in world.kube.writes() if r.method == "POST"]
        assert len(posts) == jobs_before + 1
        inc = incident(world, 1)
        assert inc.status == "resolved"
        assert inc.resolution_note and inc.resolution_note.startswith(
            "Decision: Re-run with more memory; job"
        )


def test_the_list_counts_every_open_incident_and_says_how_many_it_shows(world: SandboxWorld) -> None:
    labels: dict[str, str] = dict(PIPELINE_ALERT["labels"])  # type: ignore[arg-type]
    alerts = [
        {**PIPELINE_ALERT, "fingerprint": f"{i:016x}", "labels": {**labels, "job_name": f"job-{i}"}}
        for i in range(23)
    ]
    world.post_alerts(alertmanager_payload(alerts))
    world.settle()
    assert world.driver is not None
    listing = world.driver.slash_command("/escalation", "list", COORDINATOR, "#ml-alerts").text
    assert "*Open incidents (23)* · the newest 20 shown" in listing
    assert listing.count("• *INC-") == 20 and "INC-23" in listing and "INC-3 " not in listing
