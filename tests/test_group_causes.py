"""Incidents that share a cause Level 1 found, or an Alertmanager group, reach people as one escalation,
not one each, even below the storm threshold; a member can be split out of its group to be handled alone.
"""

from __future__ import annotations

import copy
import json
from concurrent import futures
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from bot.core.causes import cause_of, describe
from bot.core.clock import FakeClock
from bot.core.models import CheckResult, CheckStatus, IncidentStatus
from bot.integrations.slack.outbox import enqueue
from bot.sandbox.kube_api import FIXTURES, always
from bot.sandbox.world import COORDINATOR, DEMO_CONFIG, OUTSIDER, SandboxWorld, alertmanager_payload
from bot.services import group_pages
from bot.services.group_pages import GROUP_SPLIT
from bot.services.grouping import GROUP_ACK
from bot.store.db import session_scope
from bot.store.tables import Escalation, EscalationGroup, Incident, OutboxMessage, TimelineEvent
from tests.shown import shown

COORD = "#data-coordinator"
STEP_JOB = "feature-build-daily"
NODE = "cpu-node-b1"  # where the recorded step's pod ran


def evicted_step(name: str) -> list[dict[str, Any]]:
    """The recorded failed pipeline step renamed to `name`, whose pod Kubernetes marked NodeNotReady."""
    objects: list[dict[str, Any]] = json.loads(
        (FIXTURES / "pipeline_failed.json").read_text().replace(STEP_JOB, name)
    )
    pod_event = next(o for o in objects if o["kind"] == "Event" and o["reason"] == "BackOff")
    lost = copy.deepcopy(pod_event)
    lost["metadata"]["name"] += "-nodelost"
    lost.update(reason="NodeNotReady", message=f"Node {NODE} is not ready", type="Warning")
    return [*objects, lost]


def job_alert(job: str, fingerprint: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": "KubeJobFailed", "namespace": "ml-pipelines", "job_name": job},
        "annotations": {"summary": f"Job ml-pipelines/{job} failed"},
        "fingerprint": fingerprint,
    }


def gone_job(i: int) -> dict[str, Any]:
    """A Job that failed and is gone: Level 1 can neither read nor re-run it."""
    return job_alert(f"report-{i:02d}", f"6100{i:012d}")


def group_message(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The group's message among the channel's (its own escalations may be posted before or after it)."""
    [found] = [m for m in messages if " incidents " in m["text"].split("\n")[0]]
    return found


def rows(world: SandboxWorld) -> tuple[list[Incident], list[Escalation], list[TimelineEvent]]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return (
            list(s.exec(select(Incident).order_by(Incident.id))),  # type: ignore[arg-type]
            list(s.exec(select(Escalation).order_by(Escalation.id))),  # type: ignore[arg-type]
            list(s.exec(select(TimelineEvent))),
        )


def test_cause_of_reads_the_tracking_server_a_lost_node_or_a_failed_upstream_job() -> None:
    tracking = CheckResult(
        "tracking_health", CheckStatus.FAIL, "down", facts={"tracking_address": "http://mlflow:5000"}
    )
    node = CheckResult("warning_events", CheckStatus.WARN, "evicted", facts={"lost_nodes": ["gpu-7"]})
    two_nodes = CheckResult("warning_events", CheckStatus.WARN, "x", facts={"lost_nodes": ["a", "b"]})
    upstream = CheckResult(
        "upstream_jobs", CheckStatus.FAIL, "x", facts={"failed_upstream": ["ml/validate", "ml/extract"]}
    )
    healthy = CheckResult("tracking_health", CheckStatus.OK, "up", facts={"tracking_address": "http://m"})
    assert cause_of([node, tracking]) == "tracking:http://mlflow:5000"  # the tracking server first
    assert cause_of([upstream, node]) == "node:gpu-7"
    assert cause_of([two_nodes, upstream]) == "upstream:ml/extract"
    assert cause_of([healthy, two_nodes]) is None
    assert describe("node:gpu-7") == "node gpu-7 went away under their pods (evicted or not ready)"


def test_jobs_whose_node_went_away_escalate_as_one_group_naming_the_node_and_one_can_be_split_out() -> None:
    jobs = ["features-a", "features-b", "features-c", "features-d", "features-e"]
    with SandboxWorld(config=DEMO_CONFIG, job_rule=always("failed")) as world:
        for job in jobs:
            for obj in evicted_step(job):
                world.kube.load(obj)
        for i, job in enumerate(jobs[:4]):  # deliveries of their own: no storm, no shared notification
            payload = alertmanager_payload([job_alert(job, f"62000000000000a{i}")], f"{{}}:{{job={job}}}")
            world.post_alerts(payload)
            world.settle()
        top = world.slack.messages(COORD)
        incidents, escalations, _ = rows(world)
        group = group_message(top)
        [page] = world.slack.thread(COORD, group["ts"])
        fourth = incidents[3].id
        assert world.driver is not None
        refused = world.driver.block_action(OUTSIDER, GROUP_SPLIT, f"{fourth}:L2", COORD, page["ts"])
        world.settle()
        world.driver.block_action(COORDINATOR, GROUP_SPLIT, f"{fourth}:L2", COORD, page["ts"])
        world.settle()
        again = world.driver.block_action(COORDINATOR, GROUP_SPLIT, f"{fourth}:L2", COORD, page["ts"])
        world.settle()
        after_split = world.slack.messages(COORD)
        [page_after] = world.slack.thread(COORD, group["ts"])
        world.post_alerts(alertmanager_payload([job_alert(jobs[4], "62000000000000a9")], "{}:{job=e}"))
        world.settle()  # a fifth Job on the same node joins the open group
        world.click(COORDINATOR, GROUP_ACK, COORD, group["ts"])
        world.settle()
        incidents_after, escalations_after, events = rows(world)
        told = [c.args["text"] for c in world.slack.calls_to("chat.postEphemeral")]
        group_after = world.slack.message(COORD, group["ts"])
    assert {i.cause_key for i in incidents} == {f"node:{NODE}"}
    # the first two escalated alone; the third made the group (adopting both); the fourth joined it
    assert len(top) == 3 and sum("*Level 2 · INC-" in m["text"] for m in top) == 2
    assert group["text"].startswith("<!subteam^S0COORD> *Level 2 · 4 incidents with one cause")
    assert f"their common cause: node {NODE} went away under their pods" in group["text"]
    assert {e.group_id for e in escalations} == {escalations[2].group_id}
    assert [e.on_page for e in escalations] == [False, False, True, True]
    assert "INC-3" in shown(page) and "INC-4" in shown(page) and "INC-1" not in shown(page)
    assert refused.status == 200 and any("not allowed" in t for t in told)
    # split out: a message of its own, gone from the page, and the group's buttons leave it alone
    assert len(after_split) == 4 and after_split[-1]["text"].startswith("<!subteam^S0COORD> *Level 2 · INC-4")
    assert "INC-4" not in shown(page_after) and "INC-3" in shown(page_after)
    assert again.status == 200 and any("is not escalated with a group at L2" in t for t in told)
    assert [e.kind for e in events if e.kind == "split_out"] == ["split_out"]
    assert escalations_after[3].split_by == COORDINATOR and escalations_after[3].group_id is None
    assert escalations_after[4].group_id == escalations[2].group_id  # the fifth joined, not alone
    assert [i.status for i in incidents_after] == ["acknowledged"] * 3 + ["open", "acknowledged"]
    assert "split out by <@U0COORD>" in str(group_after["blocks"])
    assert "(4 incidents)" in str(group_after["blocks"])


def test_alerts_sent_in_one_notification_escalate_together_from_the_third_but_not_across_notifications() -> (
    None
):
    key = '{}/{severity="warning"}:{alertname="KubeJobFailed"}'
    with SandboxWorld(config=DEMO_CONFIG) as world:
        world.post_alerts(alertmanager_payload([gone_job(i) for i in range(4)], key))
        world.settle()
        top = world.slack.messages(COORD)
        group = group_message(top)
        world.click(COORDINATOR, GROUP_ACK, COORD, group["ts"])
        world.settle()
        incidents, _, _ = rows(world)
        for i in range(4, 7):  # the same Alertmanager group, one notification each: each is news
            world.post_alerts(alertmanager_payload([gone_job(i)], key))
        world.settle()
        later = world.slack.messages(COORD)[len(top) :]
    assert len(top) == 3  # two escalated alone before the third; then the group adopted them
    assert group["text"].startswith("<!subteam^S0COORD> *Level 2 · 4 incidents from one Alertmanager group")
    assert f"Problem: 4 incidents from one Alertmanager group ({key})" in group["text"]
    assert {i.status for i in incidents} == {IncidentStatus.ACKNOWLEDGED.value}
    assert [m["text"].split(" · ")[1] for m in later] == ["INC-5", "INC-6", "INC-7"]


def test_two_incidents_of_one_notification_are_escalated_each_on_its_own() -> None:
    with SandboxWorld(config=DEMO_CONFIG) as world:
        world.post_alerts(alertmanager_payload([gone_job(i) for i in range(2)], "{}:{alertname=x}"))
        world.settle()
        top = world.slack.messages(COORD)
        _, escalations, _ = rows(world)
    assert sorted(m["text"].split(" · ")[1] for m in top) == ["INC-1", "INC-2"]
    assert {e.group_id for e in escalations} == {None}


def test_intake_group_at_sets_from_how_many_incidents_they_escalate_as_one() -> None:
    config = {**DEMO_CONFIG, "intake": {"group_at": 2, "group_window": "30m"}}
    with SandboxWorld(config=config) as world:
        world.post_alerts(alertmanager_payload([gone_job(i) for i in range(2)], "{}:{alertname=x}"))
        world.settle()
        group = group_message(world.slack.messages(COORD))
    assert group["text"].startswith("<!subteam^S0COORD> *Level 2 · 2 incidents from one Alertmanager group")


def test_a_group_of_one_notification_escalates_to_the_tech_lead_as_one(clock: FakeClock) -> None:
    with SandboxWorld(clock=clock, config=DEMO_CONFIG) as world:
        world.post_alerts(alertmanager_payload([gone_job(i) for i in range(4)], "{}:{alertname=x}"))
        world.settle()
        clock.advance(31 * 60)  # past the L2 deadline: every member escalates by itself
        world.settle()
        leads = world.slack.messages("#tech-leads")
    assert len(leads) == 1  # together again at L3, not two alone and then a group
    assert leads[0]["text"].startswith("<!subteam^S0LEAD> *Level 3 · 4 incidents from one Alertmanager group")


def test_on_postgres_escalations_racing_in_parallel_still_form_one_group_after_two(pg_url: str) -> None:
    with SandboxWorld(config=DEMO_CONFIG, database_url=pg_url) as world:  # Level 1 runs in parallel
        world.post_alerts(alertmanager_payload([gone_job(i) for i in range(8)], "{}:{alertname=x}"))
        assert world.bot is not None
        services = world.bot.services
        services.deliveries.drain()
        services.timers.run_due()  # the eight Level 1 runs on the worker pool, at once, as in production
        futures.wait(list(services.timers._running))
        world.settle()
        top = world.slack.messages(COORD)
        _, escalations, _ = rows(world)
    alone = [m for m in top if " incidents " not in m["text"].split("\n")[0]]
    assert len(alone) == 2 and len(top) == 3  # each escalation saw the ones before it
    # the group's message is still the group's (a page's update never lands on it)
    assert group_message(top)["text"].startswith("<!subteam^S0COORD> *Level 2 · 8 incidents from one")
    assert all(m["text"].startswith("<!subteam^S0COORD> *Level 2 · INC-") for m in alone)
    assert len({e.group_id for e in escalations}) == 1 and None not in {e.group_id for e in escalations}


def test_a_page_posted_but_not_yet_answered_never_takes_the_group_messages_pending_update() -> None:
    config = {**DEMO_CONFIG, "intake": {"storm_threshold": 3, "storm_window": "60s"}}
    with SandboxWorld(config=config) as world:
        world.post_alerts(alertmanager_payload([gone_job(i) for i in range(4)]))
        world.settle()
        assert world.bot is not None
        services = world.bot.services
        now = datetime.now(UTC)
        with session_scope(services.engine) as s:
            group = s.exec(select(EscalationGroup)).one()
            page_id = next(e.outbox_id for e in s.exec(select(Escalation)) if e.on_page)
            assert page_id is not None and group.outbox_id is not None
            page = s.get(OutboxMessage, page_id)
            assert page is not None  # as while its post is in flight: no ts yet
            page.status, page.result_ts, page.result_channel = "sending", None, None
            held = enqueue(s, now, "update", target_of=group.outbox_id, text="the group's own update")
            held.next_attempt_at = now + timedelta(days=1)  # not delivered while this test looks
            held_id = held.id
            group_pages.show_page(s, services.escalation_groups.composer, group, page_id, now)
        with Session(services.engine) as s:
            kept = s.get(OutboxMessage, held_id)
            queued = s.exec(select(OutboxMessage).where(OutboxMessage.target_of == page_id)).all()
    assert kept is not None and kept.payload["text"] == "the group's own update"
    assert len(queued) == 1 and "INC-" in queued[0].payload["text"]
