"""The `escalation-bot` command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from bot.sandbox.slack_emulator import SlackEmulator

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
    )


def test_demo_runs_both_scenarios_and_prints_every_channel_and_the_incident_table(tmp_path: Path) -> None:
    result = cli("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for channel in ("#ml-alerts", "#data-coordinator", "#tech-leads", "#ml-decisions"):
        assert f"━━━━ {channel} ━━━━" in out
    assert "✅ fixed at Level 1" in out
    assert "Decided: Run downstream on the last good output by @carol" in out
    table = out[out.index("━━━━ incidents ━━━━") :]
    assert "INC-1  pipeline_step_failed       L4     resolved" in table
    rows = [line for line in table.splitlines() if line.startswith("INC-")]
    assert all(
        line.split()[2] in ("L1", "L2", "L3", "L4") for line in rows
    )  # no category runs into its level
    assert any("model_registration_failed" in line for line in rows)
    fixed = [line.split()[1] for line in table.splitlines() if " L1     resolved" in line]
    escalated = [line.split()[1] for line in table.splitlines() if " L2     open" in line]
    assert len(set(fixed) & set(escalated)) >= 3  # with pipeline_step_failed (Part 1): four categories
    assert "pipeline_step_failed" in fixed
    assert "unclassified" not in table  # every scenario's alert found its category
    part3 = out[out.index("Part 3: alerts that name only their target") : out.index("━━━━ #ml-alerts")]
    assert "a bare KubeJobFailed for train-churn-weekly" in part3 and "✅ fixed at L1" in part3
    assert "re-classified from pipeline step failed to training crash: pod train-churn-weekly-" in part3
    assert "OOMKilled with limit 2Gi" in part3
    assert "rerun_job_with_more_memory: job train-churn-weekly-l1-" in part3
    workflow = part3[part3.index("Argo Workflow churn-training-pipeline-x8k2q failed") :]
    assert workflow.splitlines()[0].endswith("✅ fixed at L1")
    assert "to training crash: pod churn-training-pipeline-x8k2q-train-model-" in workflow
    retried = "retry_workflow: workflow churn-training-pipeline-x8k2q succeeded with memory limit 4Gi"
    assert retried in workflow
    assert list(tmp_path.iterdir()) == []  # the demo leaves nothing behind
    # it reads like Slack: mentions by name, emoji, entities unescaped, the decider named
    assert "@data-coordinator *Level 2 · INC-1" in out and "<!subteam^" not in out
    assert "by @alice" in out and "<@U0" not in out
    assert "🔴" in out and ":red_circle:" not in out and "&lt;" not in out
    assert max(len(line) for line in out.splitlines() if line.startswith("│")) <= 110  # wrapped
    assert "INC-1  pipeline_step_failed       L4     resolved   @carol" in table


def test_demo_shows_one_channel_or_its_raw_messages_and_names_an_unknown_channel(tmp_path: Path) -> None:
    one = cli("demo", "--channel", "tech-leads", cwd=tmp_path)
    raw = cli("demo", "--channel", "#ml-decisions", "--json", cwd=tmp_path)
    unknown = cli("demo", "--channel", "random", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert "━━━━ #tech-leads ━━━━" in one.stdout and "━━━━ #ml-alerts" not in one.stdout
    assert "━━━━ incidents" not in one.stdout
    assert raw.returncode == 0, raw.stderr
    [(channel, messages)] = json.loads(raw.stdout).items()
    assert channel == "#ml-decisions" and messages[0]["blocks"] and "replies" in messages[0]
    assert unknown.returncode == 2 and "no channel random" in unknown.stderr


def test_check_config_names_every_problem_with_its_key_path(tmp_path: Path) -> None:
    bad = tmp_path / "app.yaml"
    bad.write_text(
        yaml.safe_dump({"levels": {"l1": {"max_attempts": 9}}, "slack": {"channels": {"alerts": "x"}}})
    )
    result = cli("check-config", "--config", str(bad))
    assert result.returncode == 1
    assert "levels.l1.max_attempts: must be between 1 and 5" in result.stdout
    assert "slack.channels.alerts:" in result.stdout


def test_the_repository_app_yaml_is_valid() -> None:
    result = cli("check-config", "--config", "app.yaml")
    assert result.returncode == 0, result.stdout
    assert "OK" in result.stdout


def test_manifest_lists_the_configured_commands_and_the_events_endpoint() -> None:
    result = cli("manifest", "--config", "app.yaml")
    assert result.returncode == 0, result.stderr
    manifest = yaml.safe_load(result.stdout)
    commands = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert commands == ["/escalate", "/escalation"]
    assert manifest["settings"]["interactivity"]["request_url"].endswith("/slack/events")


def test_run_refuses_to_start_without_a_bot_token_and_says_which_variable() -> None:
    result = cli("run", "--config", "app.yaml")
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in result.stderr


def test_doctor_reports_missing_channels_and_user_groups() -> None:
    with SlackEmulator(bot_token="xoxb-doctor") as slack:
        slack.add_usergroup("S1", "data-coordinator", [])
        env = {"SLACK_BOT_TOKEN": "xoxb-doctor", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": slack.api_url}
        result = cli("doctor", "--config", "app.yaml", env=env)
    assert result.returncode == 1
    assert "✓ Slack token: bot " in result.stdout
    assert "✓ channel #ml-alerts" in result.stdout
    assert "✗ user group @tech-lead-orchestrator: no such user group" in result.stdout
