"""A group escalated together at L3 that reaches Level 4 asks for one decision, not one each: the group's
message offers the options its members share and one choice decides every member; each member is in the
thread with its own options, and a member decided or split out alone is left out of the group's choice."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from bot.core.clock import FakeClock
from bot.core.models import IncidentStatus
from bot.sandbox.slack_driver import text_value
from bot.sandbox.world import COORDINATOR, DECIDER, DEMO_CONFIG, OUTSIDER, SandboxWorld, alertmanager_payload
from bot.services.group_decisions import GROUP_DECIDE
from bot.services.group_pages import GROUP_SPLIT
from bot.store.tables import Decision, Incident
from tests.shown import shown

DECISIONS = "#ml-decisions"
CONFIG = {**DEMO_CONFIG, "intake": {"storm_threshold": 3, "storm_window": "60s"}}


def failing_job(i: int) -> dict[str, Any]:
    """A Job that failed and is gone: Level 1 can neither read nor re-run it, so every one escalates."""
    return {
        "labels": {"alertname": "KubeJobFailed", "namespace": "ml-pipelines", "job_name": f"load-{i:02d}"},
        "annotations": {"summary": f"Job ml-pipelines/load-{i:02d} failed"},
        "fingerprint": f"6300{i:012d}",
    }


def state(world: SandboxWorld) -> tuple[list[Incident], list[Decision]]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return (
            list(s.exec(select(Incident).order_by(Incident.id))),  # type: ignore[arg-type]
            list(s.exec(select(Decision).order_by(Decision.id))),  # type: ignore[arg-type]
        )


def to_level_4(world: SandboxWorld, clock: FakeClock, count: int) -> None:
    """A storm of `count` failing Jobs that nobody acknowledges at L2 nor at L3."""
    world.post_alerts(alertmanager_payload([failing_job(i) for i in range(count)]))
    world.settle()
    for minutes in (31, 121):  # past the L2 deadline (30m), then past the L3 deadline (2h)
        clock.advance(minutes * 60)
        world.settle()


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def test_a_storm_reaching_level_4_asks_one_decision_and_one_choice_decides_every_member(
    clock: FakeClock,
) -> None:
    with SandboxWorld(clock=clock, config=CONFIG) as world:
        to_level_4(world, clock, 8)
        top = world.slack.messages(DECISIONS)
        [group] = top
        pages = world.slack.thread(DECISIONS, group["ts"])
        offered = [b["text"]["text"] for b in buttons(group)]
        first_page = pages[0]
        own = [b for b in buttons(first_page) if b["action_id"].startswith("decision_option_")]
        assert world.driver is not None
        # one member decided alone, from its own buttons in the thread
        world.driver.block_action(DECIDER, own[0]["action_id"], own[0]["value"], DECISIONS, first_page["ts"])
        world.settle()
        world.submit_latest_view(DECIDER, {"rationale": {"value": text_value("This one first.")}})
        world.settle()
        refused = world.click(OUTSIDER, f"{GROUP_DECIDE}_1", DECISIONS, group["ts"])
        world.settle()
        untouched = {i.status for i in state(world)[0]}
        world.click(DECIDER, f"{GROUP_DECIDE}_1", DECISIONS, group["ts"])
        world.settle()
        world.submit_latest_view(DECIDER, {"rationale": {"value": text_value("The cluster lost a node.")}})
        world.settle()
        incidents, decisions = state(world)
        group_after = world.slack.message(DECISIONS, group["ts"])
        told = [c.args["text"] for c in world.slack.calls_to("chat.postEphemeral")]
    assert len(top) == 1  # eight incidents, one decision message
    assert group["text"].startswith("<!subteam^S0DECIDE> *Decision needed · 8 incidents from one alert storm")
    assert len(offered) >= 2 and len(pages) == 1 and shown(first_page).count("INC-") == 8
    assert refused.status == 200 and any("not allowed" in t for t in told)
    assert len(untouched) == 2 and IncidentStatus.DECISION_PENDING.value in untouched
    assert IncidentStatus.DECISION_PENDING.value not in {i.status for i in incidents}
    chosen = [d.chosen_label for d in decisions]
    assert chosen[0] == own[0]["text"]["text"] and chosen[1:] == [offered[1]] * 7
    assert [d.rationale for d in decisions] == ["This one first."] + ["The cluster lost a node."] * 7
    assert {d.chosen_by for d in decisions} == {DECIDER}
    assert f"Decided: {offered[1]} by <@U0DECIDE>" in str(group_after["blocks"])
    assert "(7 incidents)" in str(group_after["blocks"])
    assert not buttons(group_after)  # nothing left to decide


def test_a_member_split_out_at_level_4_gets_its_own_decision_message_and_the_group_leaves_it(
    clock: FakeClock,
) -> None:
    with SandboxWorld(clock=clock, config=CONFIG) as world:
        to_level_4(world, clock, 4)
        [group] = world.slack.messages(DECISIONS)
        [page] = world.slack.thread(DECISIONS, group["ts"])
        split = next(b for b in buttons(page) if b["action_id"] == GROUP_SPLIT)
        world.click(COORDINATOR, GROUP_SPLIT, DECISIONS, page["ts"])  # not a decider: refused
        world.settle()
        world.click(DECIDER, GROUP_SPLIT, DECISIONS, page["ts"])
        world.settle()
        top = world.slack.messages(DECISIONS)
        world.click(DECIDER, f"{GROUP_DECIDE}_0", DECISIONS, group["ts"])
        world.settle()
        incidents, decisions = state(world)
    alone = int(split["value"].split(":")[0])
    assert len(top) == 2 and top[-1]["text"].startswith(f"<!subteam^S0DECIDE> *Decision needed · INC-{alone}")
    assert next(b["action_id"] for b in buttons(top[-1])).startswith("decision_option_")
    assert [i.status for i in incidents if i.id == alone] == [IncidentStatus.DECISION_PENDING.value]
    assert sum(d.status == "decided" for d in decisions) == 3


def test_a_groups_decision_is_reminded_once_in_its_thread(clock: FakeClock) -> None:
    with SandboxWorld(clock=clock, config=CONFIG) as world:
        to_level_4(world, clock, 4)
        clock.advance(4 * 3600 + 60)  # past l4.reminder_after (4h), before the expiry (24h)
        world.settle()
        top = world.slack.messages(DECISIONS)
        [group] = top
        reminders = [
            m["text"] for m in world.slack.thread(DECISIONS, group["ts"]) if ":alarm_clock:" in m["text"]
        ]
    assert len(top) == 1
    assert reminders == [
        "<!subteam^S0DECIDE> :alarm_clock: 4 incidents of this group have waited 4h01m for a decision."
    ]


def test_a_groups_decision_shows_an_alertmanager_group_key_as_text(clock: FakeClock) -> None:
    key = "{}:{alertname=<!channel> *bold* <https://evil|x>}"
    with SandboxWorld(clock=clock, config=DEMO_CONFIG) as world:
        jobs = [failing_job(i) for i in range(4)]
        world.post_alerts(alertmanager_payload(jobs, key))
        world.settle()
        for minutes in (31, 121):
            clock.advance(minutes * 60)
            world.settle()
        [group] = world.slack.messages(DECISIONS)
    assert (
        "from one Alertmanager group ({}:{alertname=&lt;!channel&gt; *bold* &lt;https://evil|x&gt;})"
        in (group["text"])
    )
    assert "<!channel>" not in str(group["blocks"]) and "<https://evil" not in str(group["blocks"])
