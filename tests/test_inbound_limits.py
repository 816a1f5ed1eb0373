"""Inbound protection: a source over its rate limit gets 429 with Retry-After before anything is read
or stored; what was accepted is processed."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session, select

from bot.sandbox.slack_driver import Response
from bot.sandbox.world import DEMO_CONFIG, OOM_ALERT, PIPELINE_ALERT, SandboxWorld, alertmanager_payload, http
from bot.store.tables import Alert, Incident
from bot.web import RateLimiter

LIMITS = {
    "alertmanager": {"per_second": 0.01, "burst": 2},
    "generic": {"per_second": 0.5, "burst": 1},
}


def rejected(world: SandboxWorld, source: str) -> float:
    text = http("GET", world.url + "/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "escalation_alerts_rejected_total" and sample.labels == {
                "source": source,
                "reason": "rate_limited",
            }:
                return sample.value
    return 0.0


def stored(world: SandboxWorld) -> tuple[list[str], list[str]]:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return [a.fingerprint for a in s.exec(select(Alert))], [
            i.fingerprint for i in s.exec(select(Incident))
        ]


def header(resp: Response, name: str) -> str:
    return {k.lower(): v for k, v in resp.headers.items()}[name.lower()]


def third_alert() -> dict[str, Any]:
    return {**OOM_ALERT, "fingerprint": "d0d0d0d0d0d00003", "labels": {**OOM_ALERT["labels"], "x": "3"}}


def test_a_sender_over_its_limit_gets_429_with_retry_after_and_nothing_is_stored() -> None:
    with SandboxWorld(config={**DEMO_CONFIG, "intake": {"rate_limits": LIMITS}}) as world:
        assert world.post_alerts(alertmanager_payload([OOM_ALERT])).status == 202
        assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202

        refused = world.post_alerts(alertmanager_payload([third_alert()]))
        assert refused.status == 429
        assert header(refused, "Retry-After") == "100"  # one request per 100 s at 0.01/s
        assert "rate limited" in refused.json()["error"] and refused.json()["retry_after"] == 100
        assert rejected(world, "alertmanager") == 1

        alerts, incidents = stored(world)
        assert "am:d0d0d0d0d0d00003" not in alerts + incidents
        assert sorted(incidents) == ["am:a1b2c3d4e5f60001", "am:a1b2c3d4e5f60002"]

        world.settle()  # what was accepted is processed all the way
        assert len(world.slack.messages("#ml-alerts")) == 2
        assert len(world.slack.messages("#data-coordinator")) == 1


def test_each_source_has_its_own_bucket() -> None:
    with SandboxWorld(config={**DEMO_CONFIG, "intake": {"rate_limits": LIMITS}}) as world:
        generic = {"title": "Nightly report is late"}
        assert world.post_alerts(generic, path="/alerts/generic").status == 202
        refused = world.post_alerts(generic, path="/alerts/generic")
        assert refused.status == 429 and header(refused, "Retry-After") == "2"
        assert world.post_alerts(alertmanager_payload([OOM_ALERT])).status == 202  # its own bucket
        assert rejected(world, "generic") == 1 and rejected(world, "alertmanager") == 0


def test_the_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    config = {"alertmanager": _Limit(per_second=2.0, burst=3)}
    limiter = RateLimiter(config, monotonic=lambda: now[0])
    assert [limiter.retry_after("alertmanager") for _ in range(4)] == [None, None, None, 1]
    now[0] = 0.5  # one token back
    assert limiter.retry_after("alertmanager") is None
    assert limiter.retry_after("alertmanager") == 1
    assert limiter.retry_after("unknown-source") is None


class _Limit:
    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second, self.burst = per_second, burst
