"""What the demo's scenarios run against: the cluster's objects (renamed copies for the second incident of a
category), a SQLite feature store with two stale tables, the job rule that decides how each re-run
ends, and the bot's configuration for all of it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Column, DateTime, Float, Integer, MetaData, Table, create_engine, insert

from bot.sandbox.kube_api import (
    FIXTURES,
    JobRule,
    Outcome,
    OutcomeKind,
    SandboxKubeAPI,
    succeed_if_memory_at_least,
    workflow_succeeds_if_memory_at_least,
)
from bot.sandbox.mlflow_api import SandboxMlflowAPI

NS = "ml-pipelines"
MLFLOW_FIXTURES = Path(__file__).parent / "fixtures" / "mlflow"


@dataclass
class FeatureTables:
    """A SQLite feature store with two stale tables; a materialization run refreshes one."""

    url: str
    tables: dict[str, Table] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.engine = create_engine(self.url)
        meta = MetaData()
        for name in ("user_features", "item_features"):
            self.tables[name] = Table(
                name, meta, Column("entity_id", Integer), Column("score", Float), Column("event_ts", DateTime)
            )
        meta.create_all(self.engine)
        stale = (datetime.now(UTC) - timedelta(hours=9)).replace(tzinfo=None)
        for table in self.tables.values():
            self.add(table.name, stale)

    def add(self, name: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(self.tables[name]), [{"entity_id": 1, "score": 0.5, "event_ts": at}])

    def config(self) -> list[dict[str, Any]]:
        def entry(name: str, job: str) -> dict[str, Any]:
            return {
                "name": name,
                "url": self.url,
                "table": name,
                "timestamp_column": "event_ts",
                "warn_after": "1h",
                "error_after": "6h",
                "materialization_job": f"{NS}/{job}",
                "expected_columns": {"entity_id": "integer", "score": "float", "event_ts": "timestamp"},
            }

        return [
            entry("user_features", "user-features-materialize"),
            entry("item_features", "item-features-materialize"),
        ]


def demo_config(features: FeatureTables) -> dict[str, Any]:
    return {
        "slack": {"channels": {"admin": "#escalation-admin"}},
        "levels": {"l1": {"verify_poll_interval": "1s"}},
        "kubernetes": {"namespaces": [NS, "ml-platform"]},
        "mlflow": {
            "max_retries": 0,
            "request_timeout": "5s",
            "server_deployment": "ml-platform/mlflow-server",
        },
        "feature_store": {"tables": features.config()},
        "versions": {
            "matrix": [
                {"package": "numpy", "allowed": ">=1.26,<3", "reason": "images are built against NumPy 2"}
            ],
            "known_good_images": {"registry.local/ml/train": "1.4.1"},
        },
        "remediation": {
            "dry_run": False,
            "allowlist": {
                "rerun_job_with_more_memory": {"memory_step_factor": 2.0, "max_memory": "16Gi"},
                "retry_job_with_debug": {"max_retries": 1},
                "trigger_materialization": {},
                "rerun_from_checkpoint": {},
                "rerun_with_known_good_image": {},
                "reregister_model_version": {},
                "recheck_tracking": {"max_checks": 1},
                "restart_tracking_server": {"max_restarts": 1},
                "retry_workflow": {"max_retries": 1, "memory_step_factor": 2.0, "max_memory": "16Gi"},
            },
        },
    }


def job_rule(features: FeatureTables | None) -> JobRule:
    """How every Job the bot creates in the sandbox ends, by the name it was created from."""
    memory = succeed_if_memory_at_least("4Gi")
    missing = "FileNotFoundError: s3://ml-data/features/2026-11-26/part-0.parquet\n"

    def rule(job: dict[str, Any]) -> Outcome | OutcomeKind:
        meta = job.get("metadata", {})
        name = str(meta.get("generateName") or meta.get("name", ""))
        if name.startswith(("train-churn-model", "train-churn-weekly")):
            return memory(job)
        if name.startswith("train-fraud-model"):
            return succeed_if_memory_at_least("64Gi")(job)
        if name.startswith("user-features-materialize") and features is not None:
            features.add("user_features", datetime.now(UTC).replace(tzinfo=None))
            return Outcome("succeeded")
        if name.startswith(("feature-build-hourly", "nightly-training-dag")):
            return Outcome("succeeded")
        if name.startswith("train-ranker-model"):
            images = [c.get("image", "") for c in job["spec"]["template"]["spec"]["containers"]]
            return Outcome("succeeded" if all(i.endswith(":1.4.1") for i in images) else "failed")
        return Outcome("failed", missing)

    return rule


def _renamed(
    fixture: str, old: str, new: str, edit: Callable[[dict[str, Any]], None] | None = None
) -> list[Any]:
    objects: list[dict[str, Any]] = json.loads(
        json.dumps(json.loads((Path(FIXTURES) / f"{fixture}.json").read_text())).replace(old, new)
    )
    for obj in objects:
        if edit is not None:
            edit(obj)
    return objects


def _score_image(obj: dict[str, Any]) -> None:
    """A second training image, with no known-good tag to go back to."""
    for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        container["image"] = container.get("image", "").replace("ml/train:1.4.2", "ml/score:2.0.0")


def _drop_checkpoint(obj: dict[str, Any]) -> None:
    if obj.get("kind") == "Job":
        obj.get("metadata", {}).get("annotations", {}).pop("escalation-bot/checkpoint", None)


def load_cluster(kube: SandboxKubeAPI, mlflow: SandboxMlflowAPI) -> None:
    """Every object the scenarios need, including renamed copies for the second incident of a category;
    restarting the tracking server's Deployment brings the sandbox MLflow back up."""
    fixtures = ("training_oom", "pipeline_failed", "materialize", "orchestration_timeout", "workflow_oom")
    for fixture in fixtures:
        kube.load_fixture(fixture)
    kube.on_workflow_run = workflow_succeeds_if_memory_at_least("4Gi", "train-model")
    for obj in json.loads((MLFLOW_FIXTURES / "tracking_server_deployment.json").read_text()):
        kube.load(obj)
    mlflow.recover_on_restart(kube, "ml-platform/mlflow-server")
    extra = [
        *_renamed("training_oom", "train-churn-model", "train-fraud-model"),
        *_renamed("training_oom", "train-churn-model", "train-churn-weekly"),
        *_renamed("pipeline_failed", "feature-build-daily", "feature-build-hourly"),
        *_renamed("orchestration_timeout", "nightly-training-dag", "nightly-eval-dag", _drop_checkpoint),
        *_renamed("version_conflict", "train-fraud-model", "train-ranker-model"),
        *_renamed("version_conflict", "train-fraud-model", "score-ranker-model", _score_image),
    ]
    for obj in extra:  # objects whose names did not change are loaded again, identical
        kube.load(obj)
