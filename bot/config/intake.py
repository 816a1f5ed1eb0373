"""app.yaml's `intake` section: how alerts are taken in (debounce, flapping, storms, same-target joins,
inbound rate limits) and the pollers that look for failures nobody alerted on."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from bot.config.durations import Duration, PositiveDuration
from bot.config.section import Section
from bot.config.values import Count, int_range, not_bool


class PollerSettings(Section):
    enabled: bool = True
    interval: PositiveDuration = timedelta(minutes=1)


class PollersSettings(Section):
    mlflow_failed_runs: PollerSettings = Field(
        default_factory=lambda: PollerSettings(interval=timedelta(minutes=2))
    )  # runs FAILED/KILLED since the last poll (needs MLFLOW_TRACKING_URI)
    kubernetes_failed_jobs: PollerSettings = Field(default_factory=PollerSettings)  # in kubernetes.namespaces
    # Argo Workflows that ended Failed or Error in kubernetes.namespaces (a cluster without the CRD: none)
    argo_failed_workflows: PollerSettings = Field(default_factory=PollerSettings)
    mlflow_experiments: list[str] = Field(default_factory=list)  # experiment names to watch; empty: all


class RateLimit(Section):
    per_second: Annotated[float, BeforeValidator(not_bool), Field(gt=0, le=100000)] = 50.0
    burst: Annotated[Count, int_range(1, 1000000)] = 100


AlertSource = Literal["alertmanager", "generic", "mlflow"]


def _default_rate_limits() -> dict[AlertSource, RateLimit]:
    return {
        "alertmanager": RateLimit(),
        "generic": RateLimit(per_second=20, burst=40),
        "mlflow": RateLimit(per_second=20, burst=40),
    }


class IntakeSettings(Section):
    debounce: Duration = timedelta(minutes=1)  # a repeating alert updates its message at most this often
    flap_window: Duration = timedelta(minutes=10)  # a resolved alert firing again within this reopens
    storm_threshold: Annotated[Count, int_range(1, 10000)] = 10  # new incidents per storm_window per channel
    storm_window: PositiveDuration = timedelta(seconds=60)
    # incidents sharing a cause Level 1 found, or sent in one Alertmanager notification, escalate as one
    # once group_at of them escalated within group_window and still wait at the level
    group_at: Annotated[Count, int_range(2, 10000)] = 3
    group_window: PositiveDuration = timedelta(minutes=30)
    # a delivery with more alerts is refused with 413 (one accepted delivery must answer well inside the
    # sender's timeout: Alertmanager gives up after 10 s and sends everything again)
    max_alerts_per_request: Annotated[Count, int_range(1, 100000)] = 500
    # a second source reporting the same target (cluster/namespace/Job, MLflow run, model version,
    # feature table, workflow) within this joins the incident instead of opening another
    same_target_window: Duration = timedelta(minutes=30)
    rate_limits: dict[AlertSource, RateLimit] = Field(default_factory=_default_rate_limits)
    pollers: PollersSettings = Field(default_factory=PollersSettings)
