"""Level 1 for a feature store issue: is each table fresh (dbt's source-freshness model) and shaped as
expected; a stale table is refreshed by running its materialization Job (or CronJob) once more."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.config import FreshnessTable, NoCaps, format_duration
from bot.core.errors import IntegrationError
from bot.core.models import CheckResult, CheckStatus, Risk
from bot.core.redact import redact, redact_obj
from bot.diagnostics import kube_common as kc
from bot.diagnostics.base import Check, Context, Plan, Remediation, Verification
from bot.integrations.feature_store import FeatureStoreGateway, columns_call, freshness_query
from bot.integrations.kubernetes import KubeGateway, job_rerun_body, to_wire

TABLE_LABELS = ("feature_table", "feature_view", "table")
PASS, WARN, ERROR, RUNTIME_ERROR = "pass", "warn", "error", "runtime error"
_STATUS = {PASS: CheckStatus.OK, WARN: CheckStatus.WARN, ERROR: CheckStatus.FAIL}


def tables_for(ctx: Context) -> tuple[list[FreshnessTable], str | None]:
    """The tables the alert is about (the one a label names, else all configured), or why there are none."""
    configured = list(ctx.config.feature_store.tables) if ctx.config is not None else []
    if not configured:
        return [], "no feature tables are configured (feature_store.tables in app.yaml)"
    named = next((v for k in TABLE_LABELS if (v := ctx.labels.get(k) or ctx.annotations.get(k))), None)
    if named is None:
        return configured, None
    chosen = [t for t in configured if named in (t.name, t.table, t.table.rpartition(".")[2])]
    if not chosen:
        return [], f"the alert names feature table {named}, which is not in feature_store.tables"
    return chosen, None


def _age(seconds: float) -> str:
    return format_duration(timedelta(seconds=max(0, round(seconds))))


@dataclass(frozen=True)
class TableFreshness:
    """One table's freshness verdict, with dbt's freshness.json fields as `record`."""

    table: FreshnessTable
    status: str  # pass | warn | error | runtime error
    summary: str
    record: dict[str, Any]


def measure(gateway: FeatureStoreGateway, table: FreshnessTable, now: datetime) -> TableFreshness:
    """Run the freshness query for `table` and judge it against warn_after / error_after."""
    criteria = {
        "warn_after": format_duration(table.warn_after),
        "error_after": format_duration(table.error_after),
    }
    record: dict[str, Any] = {
        "source": table.name,
        "table": table.table,
        "database": gateway.safe_url(table),
        "query": freshness_query(table),
        "snapshotted_at": to_wire(now),
        "criteria": criteria,
    }
    try:
        max_ts, rows, _query = gateway.freshness(table)
    except IntegrationError as exc:
        record.update(status=RUNTIME_ERROR, error=redact(str(exc)))
        return TableFreshness(table, RUNTIME_ERROR, f"{table.name} could not be checked: {exc}", record)
    ago = (now - max_ts).total_seconds() if max_ts is not None else None
    record.update(
        max_loaded_at=to_wire(max_ts) if max_ts else None,
        max_loaded_at_time_ago_in_s=ago,
        row_count=rows,
    )
    column = table.timestamp_column
    if rows == 0:
        status, summary = ERROR, f"{table.name} is empty: {record['query']} counted 0 rows"
    elif max_ts is None or ago is None:
        status, summary = ERROR, f"{table.name} has no {column} value: max({column}) is NULL over {rows} rows"
    else:
        newest = f"newest {column} {record['max_loaded_at']} is {_age(ago)} old"
        if ago >= table.error_after.total_seconds():
            status = ERROR
            summary = f"{table.name} is stale: {newest}, past error_after {criteria['error_after']}"
        elif ago >= table.warn_after.total_seconds():
            status = WARN
            summary = f"{table.name} is getting stale: {newest}, past warn_after {criteria['warn_after']}"
        else:
            status, summary = PASS, f"{table.name} is fresh: {newest} (warn_after {criteria['warn_after']})"
        summary += f" ({rows} rows)"
    record["status"] = status
    return TableFreshness(table, status, summary, record)


class FreshnessCheck(Check):
    """Is each feature table's newest row younger than its warn_after / error_after?"""

    name = "feature_freshness"
    needs = ("sql",)
    timeout_s = 20.0

    def run(self, ctx: Context) -> CheckResult:
        """Run `select max(<ts>), count(*)` on each table and report dbt's freshness fields."""
        tables, reason = tables_for(ctx)
        if reason:
            return self.result(CheckStatus.SKIPPED, reason)
        now = ctx.now()
        results = [measure(ctx.deps.sql, t, now) for t in tables]
        order = (ERROR, RUNTIME_ERROR, WARN, PASS)
        results.sort(key=lambda r: order.index(r.status))
        worst = results[0]
        extra = {"tables": [r.record for r in results]} if len(results) > 1 else {}
        found = kc.evidence(
            worst.record["query"], worst.record, [r.record["query"] for r in results], **extra
        )
        stale = [r.table.name for r in results if r.status in (ERROR, WARN)]
        facts = {"stale_tables": stale, "freshness": {r.table.name: r.status for r in results}}
        if worst.status == PASS:
            summary = "; ".join(r.summary for r in results)
            return self.result(CheckStatus.OK, summary, found, facts)
        summary = "; ".join(r.summary for r in results if r.status != PASS)
        status = CheckStatus.ERROR if worst.status == RUNTIME_ERROR else _STATUS[worst.status]
        return self.result(status, redact(summary), found, facts)


class SchemaCheck(Check):
    """Do the feature tables have the expected columns, with the expected type families?"""

    name = "feature_schema"
    needs = ("sql",)
    timeout_s = 20.0

    def run(self, ctx: Context) -> CheckResult:
        """Compare expected_columns with the columns the database reports."""
        tables, reason = tables_for(ctx)
        if reason:
            return self.result(CheckStatus.SKIPPED, reason)
        expected = [t for t in tables if t.expected_columns]
        if not expected:
            names = ", ".join(t.name for t in tables)
            return self.result(CheckStatus.SKIPPED, f"no expected_columns are configured for {names}")
        gateway: FeatureStoreGateway = ctx.deps.sql
        calls = [columns_call(t) for t in expected]
        diffs: dict[str, dict[str, Any]] = {}
        actuals: dict[str, dict[str, str]] = {}
        for table, call in zip(expected, calls, strict=True):
            try:
                actuals[table.name] = actual = gateway.columns(table)
            except IntegrationError as exc:
                return kc.error_result(self, call, exc)
            diff = _schema_diff(table.expected_columns, actual)
            if diff:
                diffs[table.name] = diff
        found = kc.evidence(
            calls[0], {"columns": actuals}, calls, expected={t.name: t.expected_columns for t in expected}
        )
        facts = {"schema_mismatches": diffs}
        if not diffs:
            names = ", ".join(t.name for t in expected)
            return self.result(
                CheckStatus.OK, f"{names}: every expected column is present with its type", found, facts
            )
        found["diff"] = diffs
        summary = "; ".join(f"{name}: {_describe_diff(diff)}" for name, diff in diffs.items())
        return self.result(CheckStatus.FAIL, redact(summary), found, facts)


def _schema_diff(expected: Mapping[str, str], actual: Mapping[str, str]) -> dict[str, Any]:
    # Unquoted identifiers fold to lower case on PostgreSQL; compare names case-insensitively.
    by_name = {name.lower(): family for name, family in actual.items()}
    missing = [c for c in expected if c.lower() not in by_name]
    wrong = {
        c: {"expected": want, "actual": by_name[c.lower()]}
        for c, want in expected.items()
        if c.lower() in by_name and want != "any" and by_name[c.lower()] != want
    }
    return {k: v for k, v in (("missing", missing), ("type_mismatch", wrong)) if v}


def _describe_diff(diff: dict[str, Any]) -> str:
    parts = []
    if diff.get("missing"):
        parts.append("missing column(s) " + ", ".join(diff["missing"]))
    for column, types in diff.get("type_mismatch", {}).items():
        parts.append(f"{column} is {types['actual']}, expected {types['expected']}")
    return "; ".join(parts)


class TriggerMaterialization(Remediation[NoCaps]):
    """Run a stale table's materialization Job (or CronJob template) once more, then re-check freshness."""

    name = "trigger_materialization"
    risk = Risk.SAFE
    needs = ("kube", "sql")
    caps_model = NoCaps

    def plan(self, ctx: Context, caps: NoCaps) -> Plan | None:
        """The first stale table with a materialization_job not yet triggered in this incident."""
        stale = set(ctx.fact("stale_tables") or [])
        tried = {
            a.evidence.get("facts", {}).get("materialized_table") for a in ctx.attempts if a.name == self.name
        }
        tables, _ = tables_for(ctx)
        table = next(
            (t for t in tables if t.name in stale and t.materialization_job and t.name not in tried), None
        )
        if table is None or table.materialization_job is None:
            return None
        ns, job = table.materialization_job.split("/", 1)
        describe = (
            f"run {ns}/{job} once more as a new job to refresh feature table {table.name}, "
            "then re-run its freshness query"
        )
        if ctx.policy.namespaces and ns not in ctx.policy.namespaces:
            return Plan(self.name, describe, refused=f"namespace {ns} is not in the allowed namespaces")
        return Plan(self.name, describe, {"table": table.name, "namespace": ns, "job": job})

    def apply(self, ctx: Context, plan: Plan) -> dict[str, Any]:
        """Create the Job from the Job's template, or from the CronJob's jobTemplate."""
        gateway: KubeGateway = ctx.deps.kube
        ns, job, table = plan.params["namespace"], plan.params["job"], plan.params["table"]
        changes: dict[str, Any] = {
            "suffix": "l1",
            "labels": {kc.INCIDENT_LABEL: str(ctx.incident_id)},
            "annotations": {"escalation-bot/remediation": self.name, "escalation-bot/feature-table": table},
        }
        try:
            source = f"job/{job}"
            body = job_rerun_body(gateway.read_job(ns, job), **changes)
        except IntegrationError as exc:
            if exc.status != 404:
                raise
            source = f"cronjob/{job}"
            body = _job_from_cronjob(to_wire(gateway.read_cronjob(ns, job)), changes)
        created = gateway.create_job(ns, body)
        name = kc.name_of(created)
        return {
            "call": kc.create_job_call(ns),
            "source": source,
            "request": redact_obj(body),
            "response": {"name": name, "uid": created.metadata.uid if created.metadata else None},
            "facts": {"job_name": name, "materialized_table": table},
        }

    def verify(self, ctx: Context, plan: Plan, applied: dict[str, Any], deadline: datetime) -> Verification:
        """Wait for the Job to complete, then the table must pass its freshness query."""
        ns, name, table_name = plan.params["namespace"], applied["facts"]["job_name"], plan.params["table"]
        end = kc.wait_for_job(ctx, ns, name, deadline)
        facts: dict[str, Any] = {"job_name": name}
        found: dict[str, Any] = {"call": kc.job_call(ns, name), "facts": facts}
        if end.state != "complete":
            return Verification(False, f"materialization job {name} did not complete: {end.detail}", found)
        table = next((t for t in tables_for(ctx)[0] if t.name == table_name), None)
        if table is None:
            return Verification(False, f"feature table {table_name} is no longer configured", found)
        after = measure(ctx.deps.sql, table, ctx.now())
        found["freshness"] = {"call": after.record["query"], "response": after.record}
        facts["freshness"] = {table.name: after.status}
        if after.status == PASS:
            return Verification(True, f"materialization job {name} completed and {after.summary}", found)
        return Verification(False, f"materialization job {name} completed but {after.summary}", found)


def _job_from_cronjob(cronjob: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A Job body from a CronJob's jobTemplate, as `kubectl create job --from=cronjob/<name>` makes it."""
    meta = cronjob.get("metadata", {})
    template = cronjob.get("spec", {}).get("jobTemplate", {})
    template_meta = template.get("metadata", {})
    source = {
        "metadata": {
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace"),
            "labels": template_meta.get("labels", {}),
            "annotations": {
                **template_meta.get("annotations", {}),
                "cronjob.kubernetes.io/instantiate": "manual",
            },
        },
        "spec": template.get("spec", {}),
    }
    body = job_rerun_body(source, **changes)
    if meta.get("uid"):
        body["metadata"]["ownerReferences"] = [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
            }
        ]
    return body


CHECKS: list[type[Check]] = [FreshnessCheck, SchemaCheck]
REMEDIATIONS: list[type[Remediation[Any]]] = [TriggerMaterialization]
