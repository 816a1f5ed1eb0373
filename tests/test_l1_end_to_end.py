"""Through the whole bot: Level 1 fixes a pipeline step, and escalates a training crash it cannot fix."""

from __future__ import annotations

from bot.core.models import Category
from bot.sandbox.kube_api import always, succeed_if_memory_at_least
from bot.sandbox.world import OOM_ALERT, PIPELINE_ALERT, SandboxWorld, alertmanager_payload
from tests.shown import field, step


def test_a_failed_pipeline_step_that_passes_on_retry_is_fixed_and_verified() -> None:
    with SandboxWorld(job_rule=always("succeeded")) as world:
        world.post_alerts(alertmanager_payload([PIPELINE_ALERT]))
        world.settle()
        [root] = world.slack.messages("#ml-alerts")
        [report] = world.slack.thread("#ml-alerts", root["ts"])
        [retry] = [w for w in world.kube.writes() if w.method == "POST"]
        reads_after = [r for r in world.kube.requests if r.method == "GET" and "-l1-" in r.path]
        assert world.slack.messages("#data-coordinator") == []
    assert "✅ fixed at Level 1" in report["text"]
    assert step(report, "Retry with debug logging").startswith("• ✅ ")
    env = retry.body["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "LOG_LEVEL", "value": "DEBUG"} in env
    assert reads_after, "the re-run was verified by reading it back"


def test_a_training_crash_beyond_the_memory_cap_escalates_asking_for_resource_tuning() -> None:
    with SandboxWorld(job_rule=succeed_if_memory_at_least("64Gi")) as world:
        world.post_alerts(alertmanager_payload([OOM_ALERT]))
        world.settle()
        [l2] = world.slack.messages("#data-coordinator")
        limits = [
            w.body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
            for w in world.kube.writes()
            if w.method == "POST"
        ]
    assert limits == ["4Gi", "8Gi"]  # two attempts, never a third
    assert f"Request: {Category.TRAINING_CRASH.request_text}" in l2["text"]
    assert "Request: Guidance on a resource tuning strategy" in l2["text"]
    lines = field(l2, "Attempted:")
    oom = "• ❌ *Memory and restarts*: container trainer of pod train-churn-model-x7k2p was OOMKilled"
    assert oom in lines
    assert step(l2, "Re-run with 4Gi").startswith("• ❌ ") and step(l2, "Re-run with 8Gi").startswith("• ❌ ")
