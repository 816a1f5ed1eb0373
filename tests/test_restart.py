"""A restart loses nothing: the bot stopped after posting L2 picks up where it was on the same database."""

from __future__ import annotations

from collections import Counter

from sqlmodel import Session, select

from bot.core.models import ActionId
from bot.sandbox.slack_driver import select_value, text_value
from bot.sandbox.world import COORDINATOR, PIPELINE_ALERT, SandboxWorld, alertmanager_payload
from bot.store.tables import Alert, Incident, OutboxMessage
from tests.shown import shown


def test_after_a_restart_escalate_to_tech_lead_works_and_nothing_is_posted_twice(world: SandboxWorld) -> None:
    world.post_alerts(alertmanager_payload([PIPELINE_ALERT]))
    world.settle()
    [l2] = world.slack.messages("#data-coordinator")
    posts_before = len(world.slack.calls_to("chat.postMessage"))

    world.stop_bot()
    world.start_bot()  # a new process on the same SQLite file
    world.settle()
    assert len(world.slack.calls_to("chat.postMessage")) == posts_before  # nothing re-sent on start-up

    assert world.click(COORDINATOR, ActionId.ESCALATE_L3, "#data-coordinator", l2["ts"]).status == 200
    world.settle()
    world.submit_latest_view(
        COORDINATOR,
        {
            "trigger": {"value": select_value("tool_stack")},
            "reason": {"value": text_value("Move off the legacy scheduler")},
        },
    )
    world.settle()

    [l3] = world.slack.messages("#tech-leads")
    assert "Trigger: Tool stack replacement/upgrade — Move off the legacy scheduler" in shown(l3)
    texts = Counter(
        m["text"]
        for ch in ("#ml-alerts", "#data-coordinator", "#tech-leads")
        for m in world.slack.messages(ch)
    )
    assert all(n == 1 for n in texts.values()), texts
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        assert len(s.exec(select(Alert)).all()) == 1
        [inc] = s.exec(select(Incident)).all()
        assert (inc.level, inc.status) == ("L3", "open")
        outbox = s.exec(select(OutboxMessage)).all()
    assert {row.status for row in outbox} == {"sent"}
    assert len(world.slack.calls_to("chat.postMessage")) == sum(1 for r in outbox if r.kind == "post")


def test_an_alert_accepted_before_a_crash_is_handled_after_the_restart(world: SandboxWorld) -> None:
    world.kube.hold()  # Level 1 cannot start: the cluster does not answer yet
    assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202
    world.stop_bot()  # the process dies before any timer ran (nothing was settled)
    world.kube.release()
    world.start_bot()
    world.settle()
    [l2] = world.slack.messages("#data-coordinator")
    assert "INC-1" in l2["text"]
