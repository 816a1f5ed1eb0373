"""Level 1 for a disconnected tracking server: a real mlflow server, the sandbox MLflow and the sandbox
cluster on loopback, through the real clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bot.config import RecheckTrackingCaps, RestartTrackingServerCaps, parse_config
from bot.core.clock import FakeClock
from bot.core.models import AttemptStatus, Category, CheckStatus, Target
from bot.diagnostics.base import Context, Deps, RemediationPolicy
from bot.diagnostics.registry import CategoryDiagnostics
from bot.diagnostics.runner import Limits, Runner
from bot.diagnostics.tracking import (
    CHECKS,
    REMEDIATIONS,
    RESTARTED_AT,
    RecheckTracking,
    RestartTrackingServer,
    TrackingApiCheck,
    TrackingHealthCheck,
    TrackingServerPodsCheck,
    classify,
)
from bot.integrations.kubernetes import KubeGateway
from bot.integrations.mlflow import MlflowGateway
from bot.sandbox.kube_api import SandboxKubeAPI
from bot.sandbox.mlflow_api import FIXTURES, SandboxMlflowAPI
from bot.sandbox.world import SandboxWorld, alertmanager_payload
from tests.kube_fixtures import recorded_clock
from tests.mlflow_server import MlflowServer, _free_port
from tests.shown import field, step

DEPLOYMENT = "ml-platform/mlflow-server"
PATCH_PATH = "/apis/apps/v1/namespaces/ml-platform/deployments/mlflow-server"
ALLOWED = {RecheckTracking.name: {}, RestartTrackingServer.name: {"max_restarts": 1}}


def deployment() -> dict[str, Any]:
    return dict(json.loads((FIXTURES / "tracking_server_deployment.json").read_text())[0])


def settings(**mlflow: Any) -> dict[str, Any]:
    return {
        "kubernetes": {"namespaces": ["ml-pipelines", "ml-platform"]},
        "mlflow": {"server_deployment": DEPLOYMENT, "max_retries": 0, "request_timeout": "5s", **mlflow},
    }


def context(
    mlflow: MlflowGateway | None,
    kube: KubeGateway | None = None,
    clock: FakeClock | None = None,
    **mlflow_settings: Any,
) -> Context:
    clock = clock or recorded_clock()
    return Context(
        incident_id=7,
        category=Category.TRACKING_DISCONNECTED,
        target=Target(namespace="ml-platform"),
        labels={},
        annotations={},
        deps=Deps(kube=kube, mlflow=mlflow),
        policy=RemediationPolicy(allowed=dict(ALLOWED), namespaces=("ml-pipelines", "ml-platform")),
        now=clock.now,
        sleep=clock.sleep,
        verify_poll_seconds=5.0,
        config=parse_config(settings(**mlflow_settings)),
    )


@contextmanager
def sandboxes(with_deployment: bool = True) -> Iterator[tuple[SandboxMlflowAPI, SandboxKubeAPI, Context]]:
    """A sandbox MLflow and cluster (holding the tracking server Deployment) and a context for both."""
    with SandboxMlflowAPI() as mlflow, SandboxKubeAPI([deployment()] if with_deployment else []) as kube:
        gateway = KubeGateway.for_url(kube.url, request_timeout=5.0)
        try:
            yield mlflow, kube, context(MlflowGateway(mlflow.url, timeout_s=5, max_retries=0), gateway)
        finally:
            gateway.close()


# -- the checks ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_healthy_real_server_is_ok_and_its_api_answers(mlflow_server: MlflowServer) -> None:
    ctx = context(MlflowGateway(mlflow_server.url, timeout_s=5, max_retries=0))

    health = TrackingHealthCheck().run(ctx)
    api = TrackingApiCheck().run(ctx)

    assert health.status is CheckStatus.OK
    assert health.summary.startswith(f"MLflow 3.17.2 at {mlflow_server.url} is healthy: GET /health → 200 OK")
    assert health.evidence["call"] == f"GET {mlflow_server.url}/health"
    assert [p["call"] for p in health.evidence["probes"]] == [
        f"GET {mlflow_server.url}/health",
        f"GET {mlflow_server.url}/version",
    ]
    assert health.facts["tracking_ok"] is True and health.facts["tracking_version"] == "3.17.2"
    assert api.status is CheckStatus.OK and api.facts == {"api_ok": True, "api_failure": None}
    assert api.evidence["call"] == "POST /api/2.0/mlflow/experiments/search {max_results: 1}"


def test_a_dead_port_fails_at_once_as_connection_refused() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    ctx = context(MlflowGateway(url, timeout_s=5, max_retries=0))

    health = TrackingHealthCheck().run(ctx)
    api = TrackingApiCheck().run(ctx)

    assert health.status is CheckStatus.FAIL
    assert health.summary.startswith(f"MLflow tracking server connection refused: GET {url}/health → ")
    assert "Connection refused" in health.summary
    assert health.evidence["status"] is None and "Connection refused" in health.evidence["error"]
    assert health.facts["tracking_failure"] == "connection"
    assert api.status is CheckStatus.FAIL and api.facts["api_failure"] == "connection"
    assert api.summary.startswith("MLflow API call failed, connection refused: ")


@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [(503, "server_error", "server error (HTTP 503)"), (401, "auth", "authentication failed (HTTP 401)")],
)
def test_an_error_answer_is_classified(status: int, kind: str, words: str) -> None:
    with sandboxes() as (mlflow, _, ctx):
        mlflow.down(status)
        health = TrackingHealthCheck().run(ctx)
        api = TrackingApiCheck().run(ctx)
        url = mlflow.url

    assert health.status is CheckStatus.FAIL
    assert health.summary.startswith(f"MLflow tracking server {words}: GET {url}/health → HTTP {status}")
    assert health.evidence["status"] == status and f"{status}" in health.evidence["response"]
    assert health.facts["tracking_failure"] == kind
    assert api.status is CheckStatus.FAIL and api.facts["api_failure"] == kind


def test_credentials_the_health_probe_does_not_need_are_caught_by_the_api_check() -> None:
    with sandboxes() as (mlflow, _, ctx):
        mlflow.down(403, requests=1)
        api = TrackingApiCheck().run(ctx)
        health = TrackingHealthCheck().run(ctx)

    assert health.status is CheckStatus.OK
    assert api.status is CheckStatus.FAIL
    assert api.summary.startswith("MLflow API call failed, authentication failed (HTTP 403): ")
    assert "PERMISSION_DENIED" in api.evidence["error"]


def test_a_server_slower_than_the_timeout_is_reported_as_timed_out() -> None:
    with SandboxMlflowAPI() as mlflow:
        mlflow.latency(5.0)
        ctx = context(MlflowGateway(mlflow.url, timeout_s=0.3, max_retries=0))
        health = TrackingHealthCheck().run(ctx)

    assert health.status is CheckStatus.FAIL
    assert health.summary.startswith("MLflow tracking server timed out: ")
    assert health.facts["tracking_failure"] == "timeout"


def test_a_slow_but_healthy_server_is_a_warning() -> None:
    with SandboxMlflowAPI() as mlflow:
        mlflow.latency(0.3)
        ctx = context(MlflowGateway(mlflow.url, timeout_s=5, max_retries=0), latency_warn="100ms")
        health = TrackingHealthCheck().run(ctx)

    assert health.status is CheckStatus.WARN
    assert "is slow: GET /health took" in health.summary and "(warning above 100 ms)" in health.summary
    assert health.facts["latency_ms"] >= 300


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        (None, "gaierror: [Errno -2] Name or service not known", "dns"),
        (500, "INTERNAL_ERROR … NameResolutionError(…Failed to resolve 'mlflow.internal'…)", "dns"),
        (None, "ConnectionRefusedError: [Errno 111] Connection refused", "connection"),
        (None, "TimeoutError: timed out", "timeout"),
        (None, "SSLError: [SSL: CERTIFICATE_VERIFY_FAILED]", "tls"),
        (403, "HTTP 403 Forbidden", "auth"),
        (502, "HTTP 502 Bad Gateway", "server_error"),
        (404, "HTTP 404 Not Found", "http_error"),
    ],
)
def test_failures_are_classified_for_the_reader(status: int | None, text: str, kind: str) -> None:
    assert classify(status, text) == kind


def test_the_deployment_with_no_ready_replica_is_found() -> None:
    with sandboxes() as (_, _kube, ctx):
        result = TrackingServerPodsCheck().run(ctx)

    assert result.status is CheckStatus.FAIL
    assert result.summary == (
        f"tracking server Deployment {DEPLOYMENT} has 0 of 1 replicas ready "
        "(MinimumReplicasUnavailable: Deployment does not have minimum availability.)"
    )
    assert result.evidence["call"] == f"GET {PATCH_PATH}"
    assert result.facts == {"server_replicas": 1, "server_ready_replicas": 0}


def test_without_a_configured_deployment_the_pods_check_says_so() -> None:
    with SandboxKubeAPI() as kube:
        ctx = context(None, KubeGateway.for_url(kube.url), server_deployment=None)
        result = TrackingServerPodsCheck().run(ctx)

    assert result.status is CheckStatus.SKIPPED
    assert "mlflow.server_deployment is not set" in result.summary


# -- the remediations, through the runner -----------------------------------------------------------
def run_level1(ctx: Context, clock: FakeClock) -> list[Any]:
    limits = Limits(max_attempts=2, budget_s=300, check_timeout_s=20)
    return Runner(clock.now).run(CategoryDiagnostics(CHECKS, REMEDIATIONS), ctx, limits, started=clock.now())


def test_a_transient_outage_is_fixed_by_the_re_check_with_backoff() -> None:
    clock = recorded_clock()
    with sandboxes() as (mlflow, kube, ctx):
        ctx = context(ctx.deps.mlflow, ctx.deps.kube, clock)
        mlflow.down(503, requests=2)  # the two checks' calls see the outage; it is over after that
        attempts = run_level1(ctx, clock)
        writes = kube.writes()

    assert [(a.name, a.status) for a in attempts] == [("recheck_tracking", AttemptStatus.FIXED)]
    assert attempts[0].summary.startswith("tracking server answers again on re-check: GET ")
    assert clock.slept == [5.0]
    assert writes == []


def test_a_down_server_is_restarted_and_verified() -> None:
    clock = recorded_clock()
    with sandboxes() as (mlflow, kube, ctx):
        ctx = context(ctx.deps.mlflow, ctx.deps.kube, clock)
        mlflow.down(503)
        mlflow.recover_on_restart(kube, DEPLOYMENT)
        attempts = run_level1(ctx, clock)
        [patch] = kube.writes()

    assert [(a.name, a.status) for a in attempts] == [
        ("recheck_tracking", AttemptStatus.FAILED),
        ("restart_tracking_server", AttemptStatus.FIXED),
    ]
    assert (
        "still failing on re-check after 3 probe(s) over 35s: server error (HTTP 503)" in attempts[0].summary
    )
    assert attempts[1].summary.startswith(
        f"tracking server answers again after restarting Deployment {DEPLOYMENT}"
    )
    assert (patch.method, patch.path) == ("PATCH", PATCH_PATH)
    assert patch.content_type == "application/strategic-merge-patch+json"
    stamp = patch.body["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    assert stamp == "2026-11-26T05:00:35Z"  # planned after the re-check's 5 + 10 + 20 s of backoff
    assert attempts[1].evidence["request"] == patch.body


def test_a_server_that_stays_down_is_not_fixed_and_the_cap_refuses_a_second_restart() -> None:
    clock = recorded_clock()
    with sandboxes() as (mlflow, _kube, ctx):
        ctx = context(ctx.deps.mlflow, ctx.deps.kube, clock)
        mlflow.down(503)
        attempts = run_level1(ctx, clock)
        again = RestartTrackingServer().plan(ctx, RestartTrackingServerCaps(max_restarts=1))

    assert [(a.name, a.status) for a in attempts] == [
        ("recheck_tracking", AttemptStatus.FAILED),
        ("restart_tracking_server", AttemptStatus.FAILED),
    ]
    assert "still failing after restarting Deployment" in attempts[1].summary
    assert again is not None and again.refused == "restart cap 1 reached"


def test_an_auth_failure_is_neither_re_checked_nor_restarted() -> None:
    with sandboxes() as (mlflow, _, ctx):
        mlflow.down(401)
        ctx.findings.extend(check().run(ctx) for check in CHECKS)

        assert RecheckTracking().plan(ctx, RecheckTrackingCaps()) is None
        assert RestartTrackingServer().plan(ctx, RestartTrackingServerCaps(max_restarts=1)) is None


def test_a_restart_is_refused_without_a_deployment_or_outside_the_allowed_namespaces() -> None:
    with sandboxes() as (mlflow, _, ctx):
        mlflow.down(503)
        ctx.findings.append(TrackingHealthCheck().run(ctx))
        unset = context(ctx.deps.mlflow, ctx.deps.kube, server_deployment=None)
        unset.findings.extend(ctx.findings)
        elsewhere = context(ctx.deps.mlflow, ctx.deps.kube, server_deployment="mlflow/mlflow-server")
        elsewhere.findings.extend(ctx.findings)

        no_ref = RestartTrackingServer().plan(unset, RestartTrackingServerCaps())
        outside = RestartTrackingServer().plan(elsewhere, RestartTrackingServerCaps())

    assert no_ref is not None and no_ref.refused is not None
    assert no_ref.refused.startswith("mlflow.server_deployment is not set in app.yaml")
    assert outside is not None and outside.refused == "namespace mlflow is not in the allowed namespaces"


def test_the_module_lists_its_checks_and_remediations() -> None:
    assert [c.name for c in CHECKS] == ["tracking_health", "tracking_api", "tracking_server_pods"]
    assert [r.name for r in REMEDIATIONS] == ["recheck_tracking", "restart_tracking_server"]


# -- end to end: an Alertmanager alert through the bot --------------------------------------------
TRACKING_ALERT = {
    "labels": {"alertname": "MLflowTrackingDown", "namespace": "ml-platform", "severity": "critical"},
    "annotations": {"summary": "MLflow tracking server unreachable: /health answers 503"},
    "fingerprint": "a1b2c3d4e5f60103",
}


@pytest.fixture
def tracking_config() -> dict[str, Any]:
    return {
        **settings(),
        "levels": {"l1": {"verify_poll_interval": "1s"}},
        "remediation": {
            "allowlist": {"recheck_tracking": {}, "restart_tracking_server": {"max_restarts": 1}}
        },
    }


def test_a_tracking_server_restart_is_reported_fixed_at_level_1(tracking_config: dict[str, Any]) -> None:
    with SandboxMlflowAPI() as mlflow:
        mlflow.down(503)
        with SandboxWorld(config=tracking_config, mlflow_url=mlflow.url, clock=FakeClock()) as world:
            world.kube.load(deployment())
            mlflow.recover_on_restart(world.kube, DEPLOYMENT)
            assert world.post_alerts(alertmanager_payload([TRACKING_ALERT])).status == 202
            world.settle()

            [root] = world.slack.messages("#ml-alerts")
            [report] = world.slack.thread("#ml-alerts", root["ts"])
            [patch] = [w for w in world.kube.writes() if w.path == PATCH_PATH]
            coordinator = world.slack.messages("#data-coordinator")

    assert "tracking disconnected" in root["text"]
    assert "✅ fixed at Level 1" in report["text"]
    assert step(report, "Restart tracking server").startswith("• ✅ ")
    assert RESTARTED_AT in patch.body["spec"]["template"]["metadata"]["annotations"]
    assert coordinator == []


def test_a_tracking_server_that_stays_down_goes_to_level_2(tracking_config: dict[str, Any]) -> None:
    with SandboxMlflowAPI() as mlflow:
        mlflow.down(503)
        with SandboxWorld(config=tracking_config, mlflow_url=mlflow.url, clock=FakeClock()) as world:
            world.kube.load(deployment())
            assert world.post_alerts(alertmanager_payload([TRACKING_ALERT])).status == 202
            world.settle()
            [l2] = world.slack.messages("#data-coordinator")
        url = mlflow.url

    assert "Request: Guidance on an experiment tracking pattern" in l2["text"]
    attempted = field(l2, "Attempted:")
    host = url.removeprefix("http://")  # the URL is shortened to what a reader needs, the code not doubled
    assert f"• ❌ *Tracking server health*: MLflow tracking server error: GET {host}/health → HTTP 503" in (
        attempted
    )
    assert "• ❌ *Tracking server pods*" in attempted
