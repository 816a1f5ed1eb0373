"""`escalation-bot doctor` as an operator runs it: against the Slack emulator, the loopback Kubernetes API
(named by KUBECONFIG), a real MLflow server and a real database, each check the config turns on is ✓, or
✗ with what is wrong and the fix in one line; never a traceback; `--json` gives the same verdicts."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import load_config
from bot.doctor.report import Check
from bot.sandbox.kube_api import Rule, SandboxKubeAPI
from bot.sandbox.slack_emulator import SlackEmulator
from bot.store.db import head_revision, make_engine, migrate
from tests.kube_fixtures import write_kubeconfig
from tests.mlflow_server import MlflowServer

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "xoxb-doctor"
NS = "ml-pipelines"


def handles() -> list[str]:
    """The user groups app.yaml names."""
    lv = load_config(str(ROOT / "app.yaml")).levels
    entries = {lv.l2.group, lv.l3.group, *lv.l2.actors, *lv.l3.actors, *lv.l4.deciders}
    return sorted(e[1:] for e in entries if e.startswith("@"))


def write_config(folder: Path, **sections: dict[str, Any]) -> Path:
    """app.yaml with `sections` merged in (one level deep) and the feature table in a plain SQLite file."""
    config = yaml.safe_load((ROOT / "app.yaml").read_text())
    config["feature_store"]["tables"][0]["table"] = "churn"
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    path = folder / "doctor.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def doctor(env: dict[str, str], config: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "doctor", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        timeout=120,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def failed(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("✗")]


def dead_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with SlackEmulator(bot_token=TOKEN) as emulator:
        for i, handle in enumerate(handles()):
            emulator.add_usergroup(f"S{i:03d}", handle, [])
        yield emulator


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SandboxKubeAPI]:
    with SandboxKubeAPI(seed=7) as sandbox:
        sandbox.load_fixture("training_oom")
        yield sandbox


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The bot's database, migrated to head."""
    url = (
        f"sqlite:///{tmp_path / 'bot.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    )
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return url


@pytest.fixture
def feature_store(tmp_path: Path) -> str:
    """A feature database with the columns app.yaml's churn table expects."""
    path = tmp_path / "features.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE churn (customer_id INTEGER, tenure_days INTEGER, monthly_spend REAL, "
            "event_timestamp TIMESTAMP)"
        )
    return f"sqlite:///{path}"


@pytest.fixture
def healthy(
    slack: SlackEmulator,
    cluster: SandboxKubeAPI,
    database: str,
    feature_store: str,
    mlflow_server: MlflowServer,
    tmp_path: Path,
) -> dict[str, str]:
    """The environment of a bot with everything app.yaml turns on in place."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", cluster.url, token="kube-token")
    return {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": "signing-secret",
        "SLACK_API_URL": slack.api_url,
        "KUBECONFIG": kubeconfig,
        "DATABASE_URL": database,
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "FEATURE_STORE_URL": feature_store,
    }


def assert_json_agrees(
    env: dict[str, str], config: Path, cwd: Path, text: subprocess.CompletedProcess[str]
) -> None:
    """`--json` gives the same checks, verdicts and exit status as the lines."""
    as_json = doctor(env, config, cwd, "--json")
    document = json.loads(as_json.stdout)
    checks = [Check(**c) for c in document["checks"]]
    timing = re.compile(r" in \d+ ms")  # how long MLflow took to answer differs between the two runs
    assert [timing.sub("", c.line()) for c in checks] == [
        timing.sub("", x) for x in text.stdout.splitlines()[:-1]
    ]
    assert document["ok"] is (text.returncode == 0) and as_json.returncode == text.returncode


def test_with_everything_in_place_every_check_is_ticked_and_doctor_exits_0(
    healthy: dict[str, str], cluster: SandboxKubeAPI, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    result = doctor(healthy, config, tmp_path)

    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[-1] == "all checks passed"
    assert all(line.startswith("✓ ") for line in lines[:-1]), result.stdout
    assert f": reachable, schema at {head_revision()} (the newest)" in lines[1]
    for expected in (
        "✓ environment: the variables `run` needs are set",
        "✓ Slack token: bot escalation-bot in ",
        "✓ channel #ml-alerts",
        "✓ user group @tech-lead-orchestrator",
        f"✓ Kubernetes: cluster default ({cluster.url}) from KUBECONFIG=",
        f"✓ Kubernetes namespace {NS}: readable",
        "✓ Kubernetes permissions: all ",
        "✓ MLflow at http://127.0.0.1:",
        "✓ feature store table churn_features: churn on sqlite:///",
        "✓ Claude: ANTHROPIC_API_KEY is not set: drafts are rule-based",
    ):
        assert any(line.startswith(expected) for line in lines), expected
    reviewed = {(r["verb"], r["resource"], r["namespace"]) for r in cluster.access.asked}
    assert ("create", "jobs", NS) in reviewed and ("patch", "deployments", "mlops") in reviewed
    assert_json_agrees(healthy, config, tmp_path, result)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_denied_create_jobs_names_the_permission_and_the_role_rule_to_add(
    healthy: dict[str, str], cluster: SandboxKubeAPI, tmp_path: Path
) -> None:
    cluster.access.grant_only(
        Rule(verbs=("get", "list", "update", "patch", "delete"), resources=("*",)),
        Rule(verbs=("create",), resources=("workflows",), api_groups=("argoproj.io",)),
    )
    config = write_config(tmp_path)
    result = doctor(healthy, config, tmp_path)

    assert result.returncode == 1
    assert failed(result) == [
        f"✗ Kubernetes permission create jobs.batch in {NS}: denied (needed by remediation "
        'rerun_job_with_more_memory); fix: add the rule {apiGroups: ["batch"], resources: ["jobs"], '
        f'verbs: ["create"]}} to the bot\'s Role in namespace {NS}'
    ]
    assert result.stdout.splitlines()[-1] == "1 check(s) failed"
    assert_json_agrees(healthy, config, tmp_path, result)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_job_poller_on_without_a_cluster_is_a_failure_and_off_it_is_only_said(
    healthy: dict[str, str], tmp_path: Path
) -> None:
    env = {**healthy, "KUBECONFIG": ""}
    on = doctor(env, write_config(tmp_path), tmp_path)
    off = doctor(
        env,
        write_config(
            tmp_path,
            intake={
                "pollers": {
                    "kubernetes_failed_jobs": {"enabled": False},
                    "argo_failed_workflows": {"enabled": False},
                }
            },
            remediation={"allowlist": ["recheck_tracking"]},
            decisions={"templates": {}},  # app.yaml's options re-run Jobs
        ),
        tmp_path,
    )

    assert on.returncode == 1
    [line] = failed(on)
    assert line.startswith(
        "✗ Kubernetes: not configured (no KUBECONFIG, not in a pod), but "
        "intake.pollers.kubernetes_failed_jobs, intake.pollers.argo_failed_workflows, remediation "
        "rerun_job_with_more_memory, "
    )
    assert line.endswith(
        "need it; fix: set KUBECONFIG to a kubeconfig file, or run the bot in the cluster with its service "
        "account (deploy/kubernetes/); or turn those off in app.yaml"
    )
    assert off.returncode == 0, off.stdout
    assert (
        "✓ Kubernetes: not configured (no KUBECONFIG, not in a pod): Level 1 skips its checks" in off.stdout
    )


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_mlflow_in_use_but_unset_or_dead_is_a_failure_with_the_fix(
    healthy: dict[str, str], tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    unset = doctor({**healthy, "MLFLOW_TRACKING_URI": ""}, config, tmp_path)
    port = dead_port()
    dead = doctor({**healthy, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}, config, tmp_path)

    assert failed(unset) == [
        "✗ MLflow: MLFLOW_TRACKING_URI is not set, but intake.pollers.mlflow_failed_runs, remediation "
        "recheck_tracking, remediation restart_tracking_server, remediation reregister_model_version use "
        "MLflow; fix: set MLFLOW_TRACKING_URI to the tracking server's URL, or turn those off in app.yaml"
    ]
    [line] = failed(dead)
    assert line.startswith(f"✗ MLflow at http://127.0.0.1:{port}: GET /health: ")
    assert "refused" in line.lower()
    assert line.endswith(
        "; fix: check MLFLOW_TRACKING_URI and that the tracking server is up (GET /health must answer 200)"
    )
    assert unset.returncode == dead.returncode == 1


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_an_unset_feature_store_variable_is_named(healthy: dict[str, str], tmp_path: Path) -> None:
    result = doctor({**healthy, "FEATURE_STORE_URL": ""}, write_config(tmp_path), tmp_path)

    assert result.returncode == 1
    assert failed(result) == [
        "✗ feature store table churn_features: its url uses ${FEATURE_STORE_URL}, which is not set; "
        "fix: set FEATURE_STORE_URL in the bot's environment (a Secret in Kubernetes)"
    ]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_an_unreachable_database_is_named_without_its_password(
    healthy: dict[str, str], tmp_path: Path
) -> None:
    url = "postgresql://bot:s3cretpw@127.0.0.1:9/escalations"
    result = doctor({**healthy, "DATABASE_URL": url}, write_config(tmp_path), tmp_path, "--json")

    document = json.loads(result.stdout)
    [database] = [c for c in document["checks"] if c["name"].startswith("database")]
    assert database["name"] == "database postgresql://bot:[REDACTED]@127.0.0.1:9/escalations"
    assert not database["ok"] and database["detail"].startswith("cannot connect (")
    assert "refused" in database["detail"].lower()
    assert database["fix"].startswith("check DATABASE_URL")
    assert document["ok"] is False and result.returncode == 1
    assert "s3cretpw" not in result.stdout + result.stderr


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_schema_behind_head_fails_only_when_migrations_are_not_applied_at_start(
    healthy: dict[str, str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    env = {**healthy, "DATABASE_URL": f"sqlite:///{empty}"}
    by_hand = doctor(env, write_config(tmp_path, runtime={"migrate_on_start": False}), tmp_path)
    at_start = doctor(env, write_config(tmp_path), tmp_path)

    assert failed(by_hand) == [
        f"✗ database sqlite:///{empty}: schema at (none), this version needs {head_revision()}; "
        "fix: run `escalation-bot db upgrade` (runtime.migrate_on_start is false)"
    ]
    assert at_start.returncode == 0, at_start.stdout
    assert (
        f"✓ database sqlite:///{empty}: reachable, schema at (none): `run` upgrades it to " in at_start.stdout
    )


def test_slack_rate_limiting_the_channel_listing_is_named_not_blamed_on_slack_api_url(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    slack.fail_next("conversations.list", 429, retry_after=7)  # a workspace with thousands of channels
    env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": slack.api_url}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'bot.db'}"

    result = doctor(env, write_config(tmp_path), tmp_path, "--json")

    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["Slack"] == {
        "name": "Slack",
        "ok": False,
        "detail": "Slack rate-limited the calls (ratelimited, retry after 7 s)",
        "fix": "try again in a minute",
    }
    assert result.returncode == 1


@pytest.mark.parametrize("fault", ["forbidden", "no answer"])
def test_an_access_review_refused_or_unanswered_is_one_line_with_the_fix_that_fits(
    cluster: SandboxKubeAPI, tmp_path: Path, fault: str
) -> None:
    if fault == "forbidden":
        cluster.fail("selfsubjectaccessreviews", 403)
    else:
        cluster.hang("selfsubjectaccessreviews")
    config = tmp_path / "kube.yaml"
    config.write_text(yaml.safe_dump({"kubernetes": {"namespaces": [NS], "request_timeout": "1s"}}))
    env = {"KUBECONFIG": write_kubeconfig(tmp_path / "kubeconfig", cluster.url, token="kube-token")}
    try:
        result = doctor(env, config, tmp_path, "--json")
    finally:
        cluster.release_hangs()

    [permissions] = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "Kubernetes permissions"]
    assert not permissions["ok"] and permissions["detail"].startswith("cannot ask the API server: ")
    if fault == "forbidden":
        assert "403 Forbidden" in permissions["detail"]
        assert permissions["fix"].startswith("every authenticated caller may create SelfSubjectAccessReviews")
    else:
        assert "Read timed out" in permissions["detail"]
        assert permissions["fix"] == "check the API server's address and the network (each call waits 1s)"
