"""An alert storm reaches people as one escalation: the incidents of one storm that Level 1 cannot fix
share one message in the coordinator's channel (one mention), each member's own escalation is in its
thread without a mention, and the group's buttons act on every member still waiting."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from bot.core.clock import FakeClock
from bot.core.models import ActionId, IncidentStatus, Level
from bot.sandbox.slack_driver import select_value, text_value
from bot.sandbox.world import (
    COORDINATOR,
    DEMO_CONFIG,
    OUTSIDER,
    TECH_LEAD,
    SandboxWorld,
    alertmanager_payload,
)
from bot.services.grouping import GROUP_ACK, GROUP_ESCALATE, GROUP_RESOLVE
from bot.store.tables import Escalation, Incident

COORD = "#data-coordinator"


def failing_job(i: int) -> dict[str, Any]:
    """A Job that failed and is gone: Level 1 cannot read or re-run it, so every one escalates."""
    return {
        "labels": {"alertname": "KubeJobFailed", "namespace": "ml-pipelines", "job_name": f"etl-{i:03d}"},
        "annotations": {"summary": f"Job ml-pipelines/etl-{i:03d} failed"},
        "fingerprint": f"5700{i:012d}",
    }


def incidents(world: SandboxWorld) -> list[Incident]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return list(s.exec(select(Incident)))


def test_a_storm_of_200_failing_jobs_is_one_escalation_and_one_acknowledgement_covers_them_all() -> None:
    with SandboxWorld() as world:
        for start in (0, 100):  # two deliveries of 100, as Alertmanager would send them
            world.post_alerts(alertmanager_payload([failing_job(i) for i in range(start, start + 100)]))
        world.settle(180)
        top = world.slack.messages(COORD)
        [group] = top
        pages = world.slack.thread(COORD, group["ts"])
        refused = world.click(OUTSIDER, GROUP_ACK, COORD, group["ts"])
        world.settle()
        untouched = {i.status for i in incidents(world)}
        world.click(COORDINATOR, GROUP_ACK, COORD, group["ts"])
        world.settle(120)
        after = incidents(world)
        [group_after] = world.slack.messages(COORD)
        assert world.bot is not None
        with Session(world.bot.services.engine) as s:
            grouped = {e.incident_id for e in s.exec(select(Escalation)) if e.group_id is not None}
    assert len(after) == 200 and len(grouped) == 200
    assert group["text"].startswith("<!subteam^S0COORD> *Level 2 · 200 incidents from one alert storm")
    assert "Request: Guidance on a debugging strategy" in group["text"]
    listed = [b for page in pages for b in page["blocks"] if b["type"] == "section"]
    assert len(pages) == 20 and len(listed) == 200  # ten members to a reply, each with its own buttons
    assert not any("<!subteam" in m["text"] for m in pages)  # one mention, not 200
    assert untouched == {IncidentStatus.OPEN.value}  # an outsider's click changed nothing
    assert refused.status == 200
    assert {i.status for i in after} == {IncidentStatus.ACKNOWLEDGED.value}
    assert {i.acked_by for i in after} == {COORDINATOR}
    assert "Acknowledged by <@U0COORD>" in str(group_after["blocks"]) and "(200 incidents)" in str(
        group_after["blocks"]
    )
    [buttons] = [b["elements"] for b in group_after["blocks"] if b["type"] == "actions"]
    assert [b["text"]["text"] for b in buttons] == ["Resolved", "Escalate to tech lead"]


def test_a_groups_members_are_reminded_once_together_and_escalate_to_one_tech_lead_message(
    clock: FakeClock,
) -> None:
    config = {**DEMO_CONFIG, "intake": {"storm_threshold": 3, "storm_window": "60s"}}
    with SandboxWorld(clock=clock, config=config) as world:
        world.post_alerts(alertmanager_payload([failing_job(i) for i in range(12)]))
        world.settle()
        [group] = world.slack.messages(COORD)
        clock.advance(16 * 60)  # past the L2 reminder (15 min), before the deadline (30 min)
        world.settle()
        thread = world.slack.thread(COORD, group["ts"])
        reminders = [m["text"] for m in thread if ":alarm_clock:" in m["text"]]
        clock.advance(15 * 60)  # past the L2 deadline: every member escalates to the tech lead by itself
        world.settle()
        leads = world.slack.messages("#tech-leads")
        levels = {(i.level, i.status) for i in incidents(world)}
    assert len(thread) == 2 + 1  # two pages of members, and one reminder for all of them
    assert reminders == [
        "<!subteam^S0COORD> :alarm_clock: 12 incidents of this group have waited 16m for an "
        "acknowledgement at L2. It escalates automatically after 30m."
    ]
    assert levels == {("L3", "open")}
    [l3] = leads  # together again: one message for the tech lead
    assert "*Level 3 · 12 incidents from one alert storm" in l3["text"]


def test_a_group_is_escalated_and_resolved_through_its_modals_and_a_member_can_be_handled_alone() -> None:
    config = {**DEMO_CONFIG, "intake": {"storm_threshold": 3, "storm_window": "60s"}}
    with SandboxWorld(config=config) as world:
        world.post_alerts(alertmanager_payload([failing_job(i) for i in range(8)]))
        world.settle()
        [group] = world.slack.messages(COORD)
        first = world.slack.thread(COORD, group["ts"])[0]
        world.click(COORDINATOR, ActionId.ACK.value, COORD, first["ts"])  # one member, alone
        world.settle()
        alone = {(i.id, i.status) for i in incidents(world) if i.status != IncidentStatus.OPEN.value}
        world.click(COORDINATOR, GROUP_ESCALATE, COORD, group["ts"])
        world.settle()
        title = world.slack.views[-1]["title"]["text"]
        world.submit_latest_view(
            COORDINATOR,
            {
                "trigger": {"value": select_value("scalability")},
                "reason": {"value": text_value("Eight ETL jobs failed at once: the cluster is too small.")},
            },
        )
        world.settle()
        [l3] = world.slack.messages("#tech-leads")
        world.click(TECH_LEAD, GROUP_RESOLVE, "#tech-leads", l3["ts"])
        world.settle()
        world.submit_latest_view(
            TECH_LEAD, {"note": {"value": text_value("Added two nodes; re-ran the jobs.")}}
        )
        world.settle()
        after = incidents(world)
        [l3_after] = world.slack.messages("#tech-leads")
    assert len(alone) == 1 and {s for _, s in alone} == {IncidentStatus.ACKNOWLEDGED.value}
    assert title == "Escalate 8 incidents"
    assert "*Level 3 · 8 incidents from one alert storm" in l3["text"]
    assert {(i.level, i.status) for i in after} == {("L3", "resolved")}
    assert {i.resolution_note for i in after} == {"Added two nodes; re-ran the jobs."}
    assert "Resolved by <@U0LEAD>" in str(l3_after["blocks"])
    assert not any(b["type"] == "actions" for b in l3_after["blocks"])


def test_a_storm_summary_says_one_incident_in_the_singular_and_counts_categories_as_level_1_left_them() -> (
    None
):
    config = {**DEMO_CONFIG, "intake": {"storm_threshold": 3, "storm_window": "60s", "debounce": "0s"}}
    with SandboxWorld(config=config) as world:
        world.kube.load_fixture("training_oom")
        oom = {  # a bare alert: Level 1 re-classifies it from its evidence as a training crash
            "labels": {
                "alertname": "KubeJobFailed",
                "namespace": "ml-pipelines",
                "job_name": "train-churn-model",
            },
            "fingerprint": "57000000000000aa",
        }
        world.post_alerts(alertmanager_payload([failing_job(i) for i in range(3)] + [oom]))
        world.settle()
        summary = next(m for m in world.slack.messages("#ml-alerts") if "Alert storm" in m["text"])
    assert "· 1 new incident in " in summary["text"]
    assert "By category: training crash (1)." in summary["text"]
    assert "1 alert since " in summary["text"]


def test_a_storm_incident_after_its_group_was_handled_is_escalated_anew_with_a_mention() -> None:
    config = {**DEMO_CONFIG, "intake": {"storm_threshold": 3, "storm_window": "60s"}}
    with SandboxWorld(config=config) as world:
        world.post_alerts(alertmanager_payload([failing_job(i) for i in range(6)]))
        world.settle()
        [group] = world.slack.messages(COORD)
        world.click(COORDINATOR, GROUP_ACK, COORD, group["ts"])
        world.settle()
        assert world.driver is not None  # a second click from a screen not yet refreshed: nothing to do
        again = world.driver.block_action(COORDINATOR, GROUP_ACK, "1:L2", COORD, group["ts"])
        world.settle()
        told = [c.args["text"] for c in world.slack.calls_to("chat.postEphemeral")]
        for i in range(6):
            assert world.bot is not None
            world.bot.services.incidents.resolve(i + 1, Level.L2, COORDINATOR, "rebooted the node")
        world.post_alerts(alertmanager_payload([failing_job(i) for i in range(6, 9)]))  # the storm goes on
        world.settle()
        top = world.slack.messages(COORD)
        [first] = [m for m in top if m["ts"] == group["ts"]]
    assert again.status == 200 and any("Nothing was left to do" in t for t in told)
    assert str(first["blocks"]).count("(0 incidents)") == 0
    assert len(top) == 2  # a new group message for the new members, with its own mention
    assert top[1]["text"].startswith("<!subteam^S0COORD> *Level 2 · 3 incidents from one alert storm")
