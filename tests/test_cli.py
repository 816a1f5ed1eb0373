"""The `escalation-bot` command as a user runs it."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

import bot
from bot.cli import parser
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


def test_doctor_json_with_a_wrong_app_yaml_still_prints_its_json_document(tmp_path: Path) -> None:
    bad = tmp_path / "app.yaml"
    bad.write_text("runtime:\n  l1_workers: 99\n  l1_workrs: 2\n")
    result = cli("doctor", "--json", "--config", str(bad))
    assert result.returncode == 2, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is False
    details = sorted(check["detail"] for check in document["checks"])
    assert [check["name"] for check in document["checks"]] == ["configuration", "configuration"]
    assert details == [
        f"{bad}: runtime.l1_workers: must be between 1 and 32 (got 99)",
        f"{bad}: runtime.l1_workrs: unknown key (did you mean l1_workers?)",
    ]
    assert "Traceback" not in result.stderr


def test_the_repository_app_yaml_is_valid() -> None:
    result = cli("check-config", "--config", "app.yaml")
    assert result.returncode == 0, result.stdout
    assert "OK" in result.stdout


def test_manifest_lists_the_configured_commands_and_the_events_endpoint(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "app.yaml").read_text(encoding="utf-8"))
    config["slack"]["public_url"] = "https://escalation.acme.io"
    (tmp_path / "app.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = cli("manifest", "--config", str(tmp_path / "app.yaml"))
    assert result.returncode == 0, result.stderr
    manifest = yaml.safe_load(result.stdout)
    commands = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert commands == ["/escalate", "/escalation"]
    assert manifest["settings"]["interactivity"]["request_url"] == "https://escalation.acme.io/slack/events"


def test_manifest_refuses_http_mode_without_a_public_url_and_names_both_ways_out() -> None:
    refused = cli("manifest", "--config", "app.yaml")  # the repository's app.yaml: public_url: null
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("app.yaml: slack.public_url: needs a value for a manifest in HTTP mode")
    assert "set slack.public_url in app.yaml" in refused.stderr and "--socket-mode" in refused.stderr
    assert "Traceback" not in refused.stderr
    for socket_mode in (
        cli("manifest", "--config", "app.yaml", "--socket-mode"),
        cli("manifest", "--config", "app.yaml", env={"SLACK_APP_TOKEN": "xapp-1-abcdef"}),
    ):
        assert socket_mode.returncode == 0, socket_mode.stderr
        settings = yaml.safe_load(socket_mode.stdout)["settings"]
        assert settings["socket_mode_enabled"] is True and "request_url" not in settings["interactivity"]


def console_script() -> str:
    found = shutil.which("escalation-bot", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(
            "the escalation-bot console script is not installed next to this Python (pip install -e .)"
        )
    return found


@pytest.mark.parametrize("command", [("check-config",), ("manifest", "--socket-mode")])
def test_output_piped_into_a_reader_that_stops_early_ends_quietly(command: tuple[str, ...]) -> None:
    # `escalation-bot doctor | head -1`: the reader is gone before the command writes
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, 1), err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_version_prints_the_installed_package_version() -> None:
    result = subprocess.run(
        [console_script(), "--version"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"escalation-bot {metadata.version('escalation-bot')}\n"
    assert metadata.version("escalation-bot") == bot.__version__  # the fallback when not installed


def commands(
    p: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every (sub)command's parser by the words that reach it, the top-level one included."""
    found = {prefix: p}
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(commands(sub, (*prefix, name)))
    return found


def test_every_command_and_option_says_what_it_is_for() -> None:
    for words, p in commands(parser()).items():
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (
                f"escalation-bot {' '.join(words)}: {action.option_strings or action.dest} has no help"
            )
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions), words
    assert set(commands(parser())) >= {("db", "upgrade"), ("db", "current"), ("run",), ("manifest",)}


def shows_a_default(action: argparse.Action) -> bool:
    """An option with a default worth showing: not a flag that is off, not one left unset."""
    return not (action.default is None or action.default is False or action.default == argparse.SUPPRESS)


def test_every_commands_help_shows_the_defaults() -> None:
    for words, p in commands(parser()).items():
        result = cli(*words, "--help")
        assert result.returncode == 0, result.stderr
        shown = " ".join(result.stdout.split())  # argparse wraps lines anywhere
        for action in p._actions:
            if action.option_strings and shows_a_default(action):
                assert f"(default: {action.default})" in shown, f"{words} {action.option_strings}"
    run_help = " ".join(cli("run", "--help").stdout.split())
    assert "--port PORT" in run_help and "(default: 3000)" in run_help
    assert re.search(r"--config CONFIG the app.yaml to read \(default: app.yaml\)", run_help)


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
