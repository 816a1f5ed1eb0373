"""What a person reads instead of internal ids and raw error text: a human name for every check and
remediation, short lines without doubled codes, full URLs or 32-digit ids, and an urgency in plain words."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core.evidence import Step, StepKind
from bot.diagnostics.names import CHECKS, REMEDIATIONS, check_name, remediation_name, strip_own_name
from bot.diagnostics.registry import default_registry
from bot.diagnostics.triage import TriageCheck
from bot.diagnostics.workflow_retry import RetryWorkflow
from bot.diagnostics.workflows import WorkflowCheck
from bot.render import link, shorten, tidy
from bot.sandbox.world import COORDINATOR, PIPELINE_ALERT, SandboxWorld, alertmanager_payload
from bot.services.readable import lines, urgency
from bot.store.tables import Incident
from tests.shown import field
from tests.world_views import only_incident


def test_every_check_and_remediation_level_1_can_run_has_a_human_name() -> None:
    registry = default_registry().values()
    checks = {c.name for d in registry for c in d.checks} | {TriageCheck.name, WorkflowCheck.name}
    remediations = {r.name for d in registry for r in d.remediations} | {RetryWorkflow.name}
    assert checks <= CHECKS.keys(), checks - CHECKS.keys()
    assert remediations <= REMEDIATIONS.keys(), remediations - REMEDIATIONS.keys()
    assert len(set(CHECKS.values())) == len(CHECKS)  # no two checks read alike


@pytest.mark.parametrize(
    ("name", "plan", "shown"),
    [
        ("pod_logs_tail", None, "Pod logs"),
        ("job_failed", None, "Job status"),
        ("some_new_check", None, "Some new check"),
        (
            "rerun_job_with_more_memory",
            "re-run job ns/x as a new job with memory limit 4Gi (was 2Gi, cap 16Gi)",
            "Re-run with 4Gi",
        ),
        ("rerun_job_with_more_memory", "re-run job ns/x with more memory", "Re-run with more memory"),
        (
            "retry_workflow",
            "retry workflow ns/w from its failed node n with memory limit 8Gi on template t",
            "Retry workflow with 8Gi",
        ),
        ("retry_workflow", "submit a new run of workflow ns/w from the same spec (…)", "Resubmit workflow"),
        ("retry_job_with_debug", "", "Retry with debug logging"),
    ],
)
def test_names_a_person_reads(name: str, plan: str | None, shown: str) -> None:
    assert (check_name(name) if plan is None else remediation_name(name, plan)) == shown


def test_a_summary_loses_its_own_check_id_in_front() -> None:
    assert (
        strip_own_name("tracking_api", "tracking_api did not answer within 20s")
        == "did not answer within 20s"
    )
    assert strip_own_name("mlflow_run", "the alert names no run") == "the alert names no run"


@pytest.mark.parametrize(
    ("raw", "limit", "shown"),
    [
        (
            "mlflow: GET run 5e0c7d2a9b8f4e61a3c2d1b0f9e8d7c6: "
            "RESOURCE_DOES_NOT_EXIST RESOURCE_DOES_NOT_EXIST: not found",
            200,
            "mlflow: GET run 5e0c7d2a…: RESOURCE_DOES_NOT_EXIST: not found",
        ),
        (
            "MLflow tracking server server error (HTTP 503): "
            "GET http://127.0.0.1:42927/health → HTTP 503 Service Unavailable",
            200,
            "MLflow tracking server error: GET 127.0.0.1:42927/health → HTTP 503 Service Unavailable",
        ),
        (
            "cannot write to postgresql://etl:[REDACTED]@db.internal:5432/features",
            200,
            "cannot write to postgresql://db.internal:5432/features",
        ),
        (
            "request to http://mlflow.ml-platform:5000/api/2.0/mlflow/runs/log-batch?x=1 failed",
            200,
            "request to mlflow.ml-platform:5000/…/log-batch failed",
        ),
        (
            "missing s3://ml-data/features/2026-11-26/part-0.parquet",
            200,
            "missing s3://ml-data/features/2026-11-26/part-0.parquet",
        ),
        (
            "401 body: '<html><head><title>401 Unauthorized</title></head></html>'",
            200,
            "401 body: ' 401 Unauthorized '",
        ),
        ('File "/app/build.py", line 212, in <module>', 200, 'File "/app/build.py", line 212, in <module>'),
        ("first line\nResult: fixed\n", 200, "first line · Result: fixed"),
        (
            "job x hit its deadline: it ran 2h5s (Job was active longer than specified deadline); "
            "no checkpoint",
            80,
            "job x hit its deadline: it ran 2h5s; no checkpoint",
        ),
        ("one two three four five six seven eight nine ten", 24, "one two three four five…"),
        ("word word word word", 200, "word word word word"),
    ],
)
def test_tidy_makes_one_short_readable_line(raw: str, limit: int, shown: str) -> None:
    assert tidy(raw, limit) == shown
    assert len(tidy(raw, limit)) <= limit


def test_shorten_marks_the_cut() -> None:
    assert shorten("short", 10) == "short"
    assert shorten("a" * 50, 10) == "a" * 9 + "…"


def test_only_a_web_page_becomes_a_link_and_it_cannot_break_out_of_it() -> None:
    assert link("https://am.local/graph?g0.expr=up&x=1", "Alert source") == (
        "<https://am.local/graph?g0.expr=up&amp;x=1|Alert source>"
    )
    assert link("http://evil/x|<!channel>", "a|b") == "<http://evil/x%7C%3C!channel%3E|a¦b>"
    for bad in ("javascript:alert(1)", "ftp://x/y", "", None, "http://" + "x" * 2000):
        assert link(bad, "x") is None


def incident(**labels: Any) -> Incident:
    return Incident.model_validate(
        {
            "fingerprint": "f",
            "source": "test",
            "title": "t",
            "category": "unclassified",
            "status": "open",
            "labels": labels,
            "opened_at": "2026-01-01T00:00:00",
            "updated_at": "2026-01-01T00:00:00",
        }
    )


@pytest.mark.parametrize(
    ("labels", "shown"),
    [
        ({"severity": "warning"}, "not urgent (severity warning)"),
        ({}, "not urgent"),
        ({"severity": "critical"}, ":rotating_light: urgent (severity critical)"),
        (
            {"severity": "info", "deployment_at_risk": "true"},
            ":rotating_light: urgent: a model deployment is at risk",
        ),
    ],
)
def test_urgency_in_plain_words(labels: dict[str, str], shown: str) -> None:
    assert urgency(incident(**labels)) == shown


def steps(*statuses: str) -> list[Step]:
    kinds = {"fixed": StepKind.REMEDIATION, "failed": StepKind.REMEDIATION}
    return [
        Step(kinds.get(s, StepKind.CHECK), f"Step {i}", s, f"summary {i}") for i, s in enumerate(statuses)
    ]


def test_a_message_keeps_failures_and_attempts_and_leaves_what_was_fine_for_details() -> None:
    shown, more = lines(steps("ok", "fail", "skipped", "warn", "ok", "fail", "failed"), limit=4)
    assert [(line.mark, line.name) for line in shown] == [
        ("❌", "Step 1"),
        ("⚠️", "Step 3"),
        ("❌", "Step 5"),
        ("❌", "Step 6"),
    ]
    assert more == "… 3 more checks in Details"
    assert lines(steps("ok", "ok"), limit=1)[1] == "… 1 more check in Details"
    assert lines(steps("ok", "fixed"), limit=5) == (lines(steps("ok", "fixed"), limit=5)[0], None)


def test_escalation_show_names_checks_and_remediations_as_the_messages_do(world: SandboxWorld) -> None:
    assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202
    world.settle()
    assert world.driver is not None

    shown = world.driver.slash_command("/escalation", "show 1", COORDINATOR, "#ml-alerts").text

    _, findings, _ = only_incident(world)
    internal = {f.check for f in findings} | {"retry_job_with_debug"}
    assert {"job_failed", "pod_logs_tail", "warning_events"} <= internal
    assert not [name for name in internal if "_" in name and name in shown]
    assert "• ❌ *Job status*: job feature-build-daily failed: BackoffLimitExceeded" in shown
    assert "• ⏭️ *Retry with debug logging*: refused: retry cap 1 reached" in shown
    assert "Level L2 · open · pipeline step failed (failed job or step" in shown
    # Attempted reads line for line as it does on the Level 2 message
    [l2] = world.slack.messages("#data-coordinator")
    as_message = {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": shown}}]}
    assert field(as_message, "Attempted:") == field(l2, "Attempted:")
