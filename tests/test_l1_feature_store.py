"""Level 1 for a feature store issue, against real SQL tables (SQLite, and PostgreSQL when
TEST_DATABASE_URL is set) and the sandbox Kubernetes API through the real clients."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
)

from bot.config import AppConfig, NoCaps, parse_config
from bot.core.clock import FakeClock
from bot.core.errors import IntegrationError
from bot.core.models import AttemptStatus, Category, CheckStatus
from bot.core.redact import MASK
from bot.diagnostics.base import Context
from bot.diagnostics.feature_store import (
    CHECKS,
    REMEDIATIONS,
    FreshnessCheck,
    SchemaCheck,
    TriggerMaterialization,
)
from bot.diagnostics.registry import CategoryDiagnostics
from bot.diagnostics.runner import Limits, Runner
from bot.integrations.feature_store import FeatureStoreGateway, to_utc
from bot.integrations.kubernetes import KubeGateway
from bot.sandbox.kube_api import JobRule, Outcome, OutcomeKind
from bot.sandbox.world import SandboxWorld, alertmanager_payload
from tests.kube_fixtures import NS, make_context, recorded_clock, running_sandbox
from tests.shown import field, shown, step

NOW = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)  # tests.kube_fixtures.FakeClock starts here
CRON = "user-features-materialize"
EXPECTED = {"user_id": "integer", "score": "float", "segment": "string", "is_active": "boolean"}


def _driver_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database to hold feature tables: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'features.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'features.db'}"


class FeatureDB:
    """A feature table `user_features` the tests fill with rows of chosen ages."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(_driver_url(url))
        self.table = Table(
            "user_features",
            MetaData(),
            Column("user_id", Integer),
            Column("score", Float),
            Column("segment", String(32)),
            Column("is_active", Boolean),
            Column("event_ts", DateTime),
        )
        self.table.create(self.engine)

    def add(self, *ages: timedelta, now: datetime = NOW, segment: str = "eu") -> None:
        """Insert one row per age, stamped (naive UTC) that long before `now`."""
        rows = [
            {
                "user_id": i,
                "score": 0.5,
                "segment": segment,
                "is_active": True,
                "event_ts": (now - age).replace(tzinfo=None),
            }
            for i, age in enumerate(ages)
        ]
        with self.engine.begin() as conn:
            conn.execute(insert(self.table), rows)

    def add_null_stamp(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(self.table), [{"user_id": 99, "event_ts": None}])


@pytest.fixture
def db(db_url: str) -> Iterator[FeatureDB]:
    feature_db = FeatureDB(db_url)
    yield feature_db
    feature_db.engine.dispose()


def _config(url: str, **table: Any) -> AppConfig:
    entry = {
        "name": "user_features",
        "url": url,
        "table": "user_features",
        "timestamp_column": "event_ts",
        "warn_after": "1h",
        "error_after": "6h",
        **table,
    }
    return parse_config(
        {
            "feature_store": {"tables": [entry]},
            "remediation": {"allowlist": {"trigger_materialization": {}}},
        }
    )


def _context(
    config: AppConfig,
    gateway: KubeGateway | None = None,
    clock: FakeClock | None = None,
    labels: dict[str, str] | None = None,
    namespaces: tuple[str, ...] = (NS,),
) -> Context:
    ctx = make_context(
        gateway,
        Category.FEATURE_STORE_ISSUE,
        None,
        clock or recorded_clock(),
        allowed={"trigger_materialization": {}},
        namespaces=namespaces,
    )
    ctx.config = config
    ctx.deps.sql = FeatureStoreGateway(config.feature_store.tables)
    ctx.labels.update(labels or {})
    return ctx


# -- freshness -----------------------------------------------------------------------------------------
def test_a_fresh_table_passes_with_dbt_freshness_fields(db: FeatureDB) -> None:
    db.add(timedelta(minutes=12), timedelta(hours=3))
    result = FreshnessCheck().run(_context(_config(db.url)))

    assert result.status is CheckStatus.OK
    assert result.summary == (
        "user_features is fresh: newest event_ts 2026-11-26T04:48:00Z is 12m old (warn_after 1h) (2 rows)"
    )
    assert result.evidence["call"] == "select max(event_ts), count(*) from user_features"
    response = result.evidence["response"]
    assert response["max_loaded_at"] == "2026-11-26T04:48:00Z"
    assert response["snapshotted_at"] == "2026-11-26T05:00:00Z"
    assert response["max_loaded_at_time_ago_in_s"] == 720.0
    assert response["status"] == "pass" and response["row_count"] == 2
    assert result.facts == {"stale_tables": [], "freshness": {"user_features": "pass"}}


def test_a_table_past_warn_after_warns_and_past_error_after_fails(db: FeatureDB) -> None:
    db.add(timedelta(hours=2))
    warned = FreshnessCheck().run(_context(_config(db.url)))
    failed = FreshnessCheck().run(_context(_config(db.url, warn_after="30m", error_after="90m")))

    assert warned.status is CheckStatus.WARN
    assert warned.summary.startswith("user_features is getting stale: newest event_ts 2026-11-26T03:00:00Z")
    assert failed.status is CheckStatus.FAIL
    assert failed.summary == (
        "user_features is stale: newest event_ts 2026-11-26T03:00:00Z is 2h old, "
        "past error_after 1h30m (1 rows)"
    )
    assert failed.evidence["response"]["status"] == "error"
    assert failed.facts["stale_tables"] == ["user_features"]


def test_an_empty_table_or_a_null_max_fails(db: FeatureDB) -> None:
    empty = FreshnessCheck().run(_context(_config(db.url)))
    db.add_null_stamp()
    null = FreshnessCheck().run(_context(_config(db.url)))

    assert empty.status is CheckStatus.FAIL
    assert empty.summary == (
        "user_features is empty: select max(event_ts), count(*) from user_features counted 0 rows"
    )
    assert null.status is CheckStatus.FAIL
    assert null.summary == "user_features has no event_ts value: max(event_ts) is NULL over 1 rows"
    assert null.evidence["response"]["max_loaded_at"] is None


def test_the_filter_is_part_of_the_query(db: FeatureDB) -> None:
    db.add(timedelta(minutes=5), segment="us")
    db.add(timedelta(hours=8), segment="eu")
    result = FreshnessCheck().run(_context(_config(db.url, filter="segment = 'eu'")))

    assert result.evidence["call"] == "select max(event_ts), count(*) from user_features where segment = 'eu'"
    assert result.status is CheckStatus.FAIL
    assert result.evidence["response"]["row_count"] == 1


def test_the_alert_label_picks_the_table(sqlite_url: str) -> None:
    db = FeatureDB(sqlite_url)
    db.add(timedelta(hours=8))
    config = parse_config(
        {
            "feature_store": {
                "tables": [
                    {
                        "name": "user_features",
                        "url": sqlite_url,
                        "table": "user_features",
                        "timestamp_column": "event_ts",
                    },
                    {"name": "missing_view", "url": sqlite_url, "table": "nowhere", "timestamp_column": "ts"},
                ]
            }
        }
    )
    both = FreshnessCheck().run(_context(config))
    one = FreshnessCheck().run(_context(config, labels={"feature_view": "user_features"}))
    unknown = FreshnessCheck().run(_context(config, labels={"feature_table": "orders"}))
    none = FreshnessCheck().run(_context(parse_config({})))

    assert both.status is CheckStatus.FAIL
    assert [t["source"] for t in both.evidence["tables"]] == ["user_features", "missing_view"]
    assert both.evidence["tables"][1]["status"] == "runtime error"
    assert "missing_view could not be checked: feature store: freshness query on nowhere" in both.summary
    assert one.status is CheckStatus.FAIL and "tables" not in one.evidence
    assert unknown.status is CheckStatus.SKIPPED
    assert unknown.summary == "the alert names feature table orders, which is not in feature_store.tables"
    assert none.status is CheckStatus.SKIPPED
    assert none.summary == "no feature tables are configured (feature_store.tables in app.yaml)"


def test_an_unreachable_database_is_an_error_with_the_password_redacted() -> None:
    url = "postgresql://features:S3cretPass@127.0.0.1:9/features"
    ctx = _context(_config(url, expected_columns=EXPECTED))

    freshness = FreshnessCheck().run(ctx)
    schema = SchemaCheck().run(ctx)

    assert freshness.status is CheckStatus.ERROR
    assert schema.status is CheckStatus.ERROR
    assert f"postgresql://features:{MASK}@127.0.0.1:9/features" in freshness.summary
    assert "OperationalError" in freshness.summary
    for result in (freshness, schema):
        assert "S3cretPass" not in repr(result)
    assert ctx.deps.sql.describe() == (
        f"feature store tables user_features (user_features on postgresql://features:{MASK}@127.0.0.1:9/features)"
    )


def test_timestamps_are_normalised_to_aware_utc() -> None:
    expected = datetime(2026, 11, 26, 3, 0, 0, 123456, tzinfo=UTC)
    assert to_utc("2026-11-26 03:00:00.123456") == expected
    assert to_utc("2026-11-26T03:00:00.123456789Z") == expected
    assert to_utc("2026-11-26T05:00:00.123456+02:00") == expected
    assert to_utc(datetime(2026, 11, 26, 3, 0, 0, 123456)) == expected
    assert to_utc(None) is None


# -- schema --------------------------------------------------------------------------------------------
def test_matching_columns_pass_the_schema_check(db: FeatureDB) -> None:
    result = SchemaCheck().run(
        _context(_config(db.url, expected_columns={**EXPECTED, "event_ts": "timestamp"}))
    )

    assert result.status is CheckStatus.OK
    assert result.evidence["call"] == "inspect(engine).get_columns('user_features', schema=None)"
    assert result.evidence["response"]["columns"]["user_features"]["event_ts"] == "timestamp"


def test_a_missing_column_or_a_type_family_mismatch_fails_with_the_diff(db: FeatureDB) -> None:
    expected = {"user_id": "string", "score": "any", "segment": "string", "country": "string"}
    result = SchemaCheck().run(_context(_config(db.url, expected_columns=expected)))

    assert result.status is CheckStatus.FAIL
    assert result.summary == "user_features: missing column(s) country; user_id is integer, expected string"
    assert result.evidence["diff"] == {
        "user_features": {
            "missing": ["country"],
            "type_mismatch": {"user_id": {"expected": "string", "actual": "integer"}},
        }
    }


def test_a_missing_table_and_no_expected_columns(sqlite_url: str) -> None:
    missing = SchemaCheck().run(_context(_config(sqlite_url, table="nowhere", expected_columns=EXPECTED)))
    nothing = SchemaCheck().run(_context(_config(sqlite_url)))

    assert missing.status is CheckStatus.ERROR
    assert missing.summary == "feature store: table nowhere does not exist"
    assert nothing.status is CheckStatus.SKIPPED
    assert nothing.summary == "no expected_columns are configured for user_features"


def test_the_gateway_raises_integration_errors(sqlite_url: str) -> None:
    gateway = FeatureStoreGateway(_config(sqlite_url, table="nowhere").feature_store.tables)
    with pytest.raises(IntegrationError) as caught:
        gateway.freshness(gateway.tables[0])
    assert caught.value.system == "feature store"
    assert "no such table: nowhere" in str(caught.value)
    gateway.close()


# -- materialization -----------------------------------------------------------------------------------
def _refresh(db: FeatureDB, result: OutcomeKind = "succeeded") -> JobRule:
    """A created materialization Job that writes a fresh row (stamped with the wall clock) when it runs."""

    def rule(job: dict[str, Any]) -> Outcome:
        if result == "succeeded":
            db.add(timedelta(0), now=datetime.now(UTC))
        return Outcome(result)

    return rule


def _run_l1(ctx: Context) -> list[Any]:
    limits = Limits(max_attempts=2, budget_s=300, check_timeout_s=20)
    clock_now = ctx.now
    return Runner(clock_now).run(CategoryDiagnostics(CHECKS, REMEDIATIONS), ctx, limits, started=clock_now())


def _wall_clock_context(config: AppConfig, gateway: KubeGateway) -> Context:
    ctx = _context(config, gateway)
    ctx.now = lambda: datetime.now(UTC)
    return ctx


def test_a_stale_table_is_refreshed_from_its_cronjob_and_verified(db: FeatureDB) -> None:
    db.add(timedelta(hours=9), now=datetime.now(UTC))
    config = _config(db.url, materialization_job=f"{NS}/{CRON}")
    with running_sandbox("materialize", rule=_refresh(db)) as (sandbox, gateway):
        ctx = _wall_clock_context(config, gateway)
        attempts = _run_l1(ctx)
        writes = sandbox.writes()

    assert [a.status for a in attempts] == [AttemptStatus.FIXED]
    assert attempts[0].summary.startswith("materialization job user-features-materialize-l1-")
    assert "completed and user_features is fresh" in attempts[0].summary
    [create] = writes
    assert create.path == f"/apis/batch/v1/namespaces/{NS}/jobs"
    body = create.body
    assert body["metadata"]["generateName"] == "user-features-materialize-l1-"
    assert body["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert body["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert "selector" not in body["spec"]
    container = body["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == "user_features"
    assert attempts[0].evidence["source"] == f"cronjob/{CRON}"
    freshness = attempts[0].evidence["verification"]["freshness"]
    assert freshness["response"]["status"] == "pass"


def test_a_failing_materialization_job_is_not_fixed(db: FeatureDB) -> None:
    db.add(timedelta(hours=9), now=datetime.now(UTC))
    config = _config(db.url, materialization_job=f"{NS}/item-features-materialize")
    with running_sandbox("materialize", rule=_refresh(db, "failed")) as (sandbox, gateway):
        ctx = _wall_clock_context(config, gateway)
        attempts = _run_l1(ctx)
        writes = sandbox.writes()

    assert [a.status for a in attempts] == [AttemptStatus.FAILED]
    assert "did not complete: BackoffLimitExceeded" in attempts[0].summary
    assert attempts[0].evidence["source"] == "job/item-features-materialize"
    assert writes[0].body["metadata"]["generateName"] == "item-features-materialize-l1-"
    # one table, tried once: the second attempt is not spent on the same job
    assert len(writes) == 1


def test_a_job_that_completes_without_refreshing_the_table_is_not_fixed(db: FeatureDB) -> None:
    db.add(timedelta(hours=9), now=datetime.now(UTC))
    config = _config(db.url, materialization_job=f"{NS}/{CRON}")
    with running_sandbox("materialize") as (_, gateway):
        attempts = _run_l1(_wall_clock_context(config, gateway))

    assert [a.status for a in attempts] == [AttemptStatus.FAILED]
    assert "completed but user_features is stale" in attempts[0].summary


def test_materialization_is_planned_only_for_a_stale_table_with_a_job_in_an_allowed_namespace(
    db: FeatureDB,
) -> None:
    db.add(timedelta(hours=9))
    with_job = _config(db.url, materialization_job=f"other-team/{CRON}")
    ctx = _context(with_job)
    ctx.findings.append(FreshnessCheck().run(ctx))
    refused = TriggerMaterialization().plan(ctx, NoCaps())

    without = _context(_config(db.url))
    without.findings.append(FreshnessCheck().run(without))

    assert refused is not None and refused.refused == "namespace other-team is not in the allowed namespaces"
    assert TriggerMaterialization().plan(without, NoCaps()) is None


def test_the_module_lists_its_checks_and_remediations() -> None:
    assert [c.name for c in CHECKS] == ["feature_freshness", "feature_schema"]
    assert [r.name for r in REMEDIATIONS] == ["trigger_materialization"]


# -- end to end ----------------------------------------------------------------------------------------
FEATURE_ALERT = {
    "labels": {"alertname": "FeatureTableStale", "feature_table": "user_features", "severity": "warning"},
    "annotations": {"summary": "Feature freshness check failed for user_features"},
    "fingerprint": "f5a1b2c3d4e50001",
}


def _world_config(url: str) -> dict[str, Any]:
    return {
        "levels": {"l1": {"verify_poll_interval": "1s"}},
        "feature_store": {
            "tables": [
                {
                    "name": "user_features",
                    "url": url,
                    "table": "user_features",
                    "timestamp_column": "event_ts",
                    "materialization_job": f"{NS}/{CRON}",
                }
            ]
        },
        "remediation": {"allowlist": ["trigger_materialization"]},
    }


def test_a_stale_feature_table_is_materialized_at_level_1(sqlite_url: str) -> None:
    db = FeatureDB(sqlite_url)
    db.add(timedelta(hours=9), now=datetime.now(UTC))
    with SandboxWorld(config=_world_config(sqlite_url), job_rule=_refresh(db)) as world:
        world.kube.load_fixture("materialize")
        assert world.post_alerts(alertmanager_payload([FEATURE_ALERT])).status == 202
        world.settle()

        [root] = world.slack.messages("#ml-alerts")
        [report] = world.slack.thread("#ml-alerts", root["ts"])
        coordinator = world.slack.messages("#data-coordinator")

    assert "feature store issue" in root["text"]
    assert "✅ fixed at Level 1" in report["text"]
    assert "• ❌ *Feature freshness*: user_features is stale" in shown(report)
    assert step(report, "Run feature materialization").startswith("• ✅ ")
    assert coordinator == []


def test_a_failed_materialization_escalates_to_l2_with_the_freshness_evidence(sqlite_url: str) -> None:
    db = FeatureDB(sqlite_url)
    db.add(timedelta(hours=9), now=datetime.now(UTC))
    with SandboxWorld(config=_world_config(sqlite_url), job_rule=_refresh(db, "failed")) as world:
        world.kube.load_fixture("materialize")
        assert world.post_alerts(alertmanager_payload([FEATURE_ALERT])).status == 202
        world.settle()

        [root] = world.slack.messages("#ml-alerts")
        [report] = world.slack.thread("#ml-alerts", root["ts"])
        [l2] = world.slack.messages("#data-coordinator")

    assert "❌" in report["text"]
    assert f"Request: {Category.FEATURE_STORE_ISSUE.request_text}" in l2["text"]
    assert "Request: Guidance on a feature store strategy" in l2["text"]
    attempted = field(l2, "Attempted:")
    assert "• ❌ *Feature freshness*: user_features is stale: newest event_ts" in attempted
    assert "past error_after 6h" in attempted
    assert "• ❌ *Run feature materialization*" in attempted
