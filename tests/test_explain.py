"""`escalation-bot explain`: what the bot would do with an Alertmanager webhook body, changing nothing.

The cluster is the sandbox Kubernetes API, reached the way `run` reaches a cluster: a kubeconfig file
named by KUBECONFIG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import main
from bot.sandbox.kube_api import SandboxKubeAPI

ROOT = Path(__file__).resolve().parent.parent

JOB = "train-churn-model"
ALLOWLIST = {"rerun_job_with_more_memory": {"memory_step_factor": 2.0, "max_memory": "16Gi"}}


def write_config(tmp_path: Path, allowlist: dict[str, Any] | None = None, dry_run: bool = False) -> str:
    config = {
        "kubernetes": {"namespaces": ["ml-pipelines"]},
        "remediation": {"dry_run": dry_run, "allowlist": ALLOWLIST if allowlist is None else allowlist},
    }
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def write_alert(tmp_path: Path, **extra: str) -> str:
    labels = {
        "alertname": "KubeJobFailed",
        "namespace": "ml-pipelines",
        "job_name": JOB,
        "severity": "critical",
    }
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="KubeJobFailed"}',
        "status": "firing",
        "receiver": "escalation-bot",
        "alerts": [{"status": "firing", "labels": {**labels, **extra}, "startsAt": "2026-11-26T02:41:38Z"}],
    }
    path = tmp_path / "alert.json"
    path.write_text(json.dumps(body))
    return str(path)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxKubeAPI]:
    """The sandbox cluster with a training Job OOM-killed at 2Gi, named by KUBECONFIG (no credentials)."""
    with SandboxKubeAPI(seed=7) as sandbox:
        sandbox.load_fixture("training_oom")
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sandbox", "cluster": {"server": sandbox.url}}],
            "users": [{"name": "escalation-bot", "user": {}}],
            "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "escalation-bot"}}],
            "current-context": "sandbox",
        }
        path = tmp_path / "kubeconfig"
        path.write_text(json.dumps(kubeconfig))
        monkeypatch.setenv("KUBECONFIG", str(path))
        yield sandbox


def explain(capsys: pytest.CaptureFixture[str], config: str, alert: str) -> tuple[int, str, str]:
    code = main(["explain", "--config", config, alert])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def explain_bare_alert(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> tuple[str, list[str]]:
    """Explain the bare KubeJobFailed alert: its category comes from its name, which evidence may change."""
    code, out, err = explain(capsys, write_config(tmp_path), write_alert(tmp_path))
    assert code == 0, err
    lines = out.splitlines()
    assert "Category from the alert: pipeline step failed" in lines
    assert "  decided by: the alert's name and text (evidence may change it)" in lines
    return out, lines


def test_a_bare_job_failed_alert_is_reclassified_by_the_oom_evidence_and_nothing_is_written(
    cluster: SandboxKubeAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, lines = explain_bare_alert(capsys, tmp_path)

    assert "OOMKilled with limit 2Gi" in out
    assert (
        "Final category: training crash (re-classified from pipeline step failed: "
        "the evidence outranks the alert's name and text)" in lines
    )
    assert "Checks Level 1 runs for training crash (run here; checks only read):" in lines
    for check in ("job_pods_oom", "warning_events", "mlflow_run"):
        assert any(line.startswith(f"  - {check}: ") for line in lines), check
    assert "was OOMKilled (exit 137) with memory limit 2Gi" in out
    assert "would be skipped: MLflow (set MLFLOW_TRACKING_URI) is not configured" in out
    assert (
        "      on the allowlist (memory_step_factor=2.0, max_memory=16Gi); "
        "automatic: Level 1 tries it by itself when its plan applies" in lines
    )
    assert any(line.startswith("  - rerun_job_with_more_memory (risk safe): ") for line in lines)
    assert "memory limit 4Gi (was 2Gi, cap 16Gi)" in out
    assert "  Request: Guidance on a resource tuning strategy" in lines
    assert cluster.requests, "explain read the cluster"
    assert cluster.writes() == []


def test_a_category_label_is_kept_and_the_evidence_is_shown_without_changing_it(
    cluster: SandboxKubeAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alert = write_alert(tmp_path, category="feature_store_issue")
    code, out, err = explain(capsys, write_config(tmp_path), alert)

    assert code == 0, err
    lines = out.splitlines()
    assert "Category from the alert: feature store issue" in lines
    assert "  why: label category=feature_store_issue" in lines
    assert "  decided by: a category label (evidence cannot change it)" in lines
    assert "the evidence points at training crash" in out
    assert "OOMKilled with limit 2Gi" in out
    assert (
        "Final category: feature store issue (kept: a category label outranks the evidence, "
        "which points at training crash)" in lines
    )
    assert "Checks Level 1 runs for feature store issue (run here; checks only read):" in lines
    assert "rerun_job_with_more_memory" not in out
    assert "  Request: Guidance on a feature store strategy" in lines
    assert cluster.writes() == []


def test_without_a_cluster_the_triage_is_not_run_and_the_category_comes_from_the_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, lines = explain_bare_alert(capsys, tmp_path)

    assert (
        "Triage: not run: no Kubernetes cluster or MLflow is configured (KUBECONFIG unset, "
        "MLFLOW_TRACKING_URI unset), so Level 1 could read no evidence" in lines
    )
    assert "Final category: pipeline step failed (the alert's own)" in lines
    assert "  - job_failed: Has the Job failed, and with which condition reason?" in lines
    assert "      would be skipped: Kubernetes (set KUBECONFIG or run in-cluster) is not configured" in lines
    assert "not on the remediation allowlist: Level 1 never applies it" in out  # retry_job_with_debug
    assert "  Request: Guidance on a debugging strategy" in lines


def test_dry_run_and_an_empty_allowlist_are_said_and_the_plan_is_still_shown(
    cluster: SandboxKubeAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = explain(
        capsys, write_config(tmp_path, allowlist={}, dry_run=True), write_alert(tmp_path)
    )

    assert code == 0, err
    assert "remediation.dry_run is on: Level 1 only reports plans" in out
    assert "      not on the remediation allowlist: Level 1 never applies it" in out.splitlines()
    assert "plan: would re-run job ml-pipelines/train-churn-model as a new job with memory limit 4Gi" in out
    assert cluster.writes() == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"KubeJobFailed ml-pipelines", "not valid JSON"),
        (b'{"version": "4", "groupKey": "g", "status": "firing"}', "no alerts to explain"),
        (b'{"receiver": "escalation-bot"}', "not an Alertmanager v4 webhook body: version: field required"),
        (b'{"version": "4", "groupKey": "g", "status": "firing", "alerts": []}', "no alerts to explain"),
    ],
)
def test_a_malformed_alert_file_exits_2_and_names_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, problem: str
) -> None:
    path = tmp_path / "alert.json"
    path.write_bytes(content)
    code, out, err = explain(capsys, write_config(tmp_path), str(path))

    assert code == 2
    assert err.startswith(f"{path}: ")
    assert problem in err
    assert out == ""


def test_a_missing_alert_file_exits_2_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = explain(capsys, write_config(tmp_path), str(tmp_path / "nope.json"))

    assert code == 2
    assert err == f"{tmp_path / 'nope.json'}: file not found\n"


def test_the_command_reads_the_body_from_stdin(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    body = Path(write_alert(tmp_path)).read_text()

    def run(stdin: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "bot.cli", "explain", "--config", config, "-"]
        env = dict(os.environ)  # the test's own: no KUBECONFIG, no MLFLOW_TRACKING_URI
        return subprocess.run(
            command, input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
        )

    good, bad = run(body), run("{not json")

    assert good.returncode == 0, good.stderr
    assert "Category from the alert: pipeline step failed" in good.stdout
    assert bad.returncode == 2
    assert bad.stderr.startswith("stdin: not valid JSON")
