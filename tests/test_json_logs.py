"""LOG_FORMAT=json: one JSON object a line, with the incident, escalation level and source a line is about,
and no secret in a message or a traceback; text logs stay as they were."""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.models import Level
from bot.logs import JsonFormatter, about
from bot.sandbox.slack_emulator import SlackEmulator
from bot.sandbox.world import COORDINATOR, PIPELINE_ALERT, alertmanager_payload, http
from tests.logcapture import captured
from tests.processes import free_port, wait_serving

ROOT = Path(__file__).resolve().parent.parent
BOT_TOKEN = "xoxb-2468013579-1357924680-JsonLogsBotToken"
PLANTED = "xoxb-1111111111-2222222222-PlantedInAnAnnotation"  # a Slack token pasted into an alert
PASSWORD = "hunter2-database-password"
SIGNING = "json-logs-signing-secret"
HOOK = "json-logs-webhook-token"


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    with captured("test.json_logs", JsonFormatter(), logging.DEBUG) as capture:
        yield capture


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_logged_about_an_incident_carries_its_id_level_and_source(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = json_log
    with about(source="alertmanager"), about(incident=12, level=Level.L2):
        logger.info("escalated to the data coordinator\nsecond line")
    logger.warning("nothing in particular")
    about_it, plain = lines(out)
    assert about_it["incident"] == 12 and about_it["escalation_level"] == "L2"
    assert about_it["source"] == "alertmanager" and about_it["level"] == "INFO"
    assert about_it["logger"] == "test.json_logs"
    assert about_it["message"] == "escalated to the data coordinator\nsecond line"  # still one line
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", about_it["ts"])
    assert set(plain) == {"ts", "level", "logger", "message"}


def test_a_line_naming_an_incident_outside_any_context_still_carries_its_id(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = json_log
    logger.info("INC-%s: the question is answered rule-based", 41, extra={"request": "r-9"})
    [entry] = lines(out)
    assert entry["incident"] == 41 and entry["request"] == "r-9"


def test_what_a_line_is_about_stays_in_its_own_thread(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = json_log
    inside, outside = threading.Event(), threading.Event()

    def other() -> None:
        inside.wait(10)
        logger.info("another thread's work")
        outside.set()

    thread = threading.Thread(target=other)
    thread.start()
    with about(incident=3, level="L1", source="timer"):
        inside.set()
        assert outside.wait(10)
    thread.join(10)
    [entry] = lines(out)
    assert "incident" not in entry and "source" not in entry


def test_a_secret_in_an_exception_and_its_message_never_reaches_the_json_line(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = json_log
    with about(incident=5, level="L1", source="timer"):
        try:
            raise ConnectionError(f"postgresql://bot:{PASSWORD}@db:5432/bot refused; token {BOT_TOKEN}")
        except ConnectionError:
            logger.exception("timer 9 run_l1 for INC-5 failed with %s", BOT_TOKEN)
    [entry] = lines(out)
    assert entry["incident"] == 5 and entry["source"] == "timer"
    assert "ConnectionError" in entry["exc"] and "Traceback" in entry["exc"]
    text = json.dumps(entry)
    assert PASSWORD not in text and BOT_TOKEN not in text and "[REDACTED]" in entry["exc"]
    # a record made without the redacting factory is redacted by the formatter all the same
    raw = logging.makeLogRecord({"msg": f"token {BOT_TOKEN}", "levelname": "INFO", "name": "x"})
    assert BOT_TOKEN not in JsonFormatter().format(raw)


# -- a real process ---------------------------------------------------------------------------------------


def start(tmp_path: Path, slack: SlackEmulator, log_format: str | None, *flags: str) -> tuple[Any, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "KUBECONFIG"))}
    env.pop("LOG_FORMAT", None)
    env.update(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "ALERT_WEBHOOK_TOKEN": HOOK,
            **({"LOG_FORMAT": log_format} if log_format else {}),
        }
    )
    command = [sys.executable, "-m", "bot.cli", *flags, "run", "--config", str(ROOT / "app.yaml")]
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_serving(proc, url, proc.communicate)
    return proc, url


def stop(proc: Any) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return str(out), str(err)


def escalate_an_alert_with_a_planted_secret(url: str, slack: SlackEmulator) -> None:
    alert = copy.deepcopy(PIPELINE_ALERT)
    alert["annotations"]["description"] = f"upstream failed; debug with token {PLANTED}"
    # Slack refuses the first post with an error that echoes a token: the exception's text is logged
    slack.error_next("chat.postMessage", f"invalid_auth for {PLANTED}")
    body = json.dumps(alertmanager_payload([alert])).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {HOOK}"}
    assert http("POST", url + "/alerts/alertmanager", body, headers).status == 202
    assert slack.wait_for(lambda: len(slack.messages("#data-coordinator")) == 1, timeout=60)


def test_a_bot_process_with_log_format_json_writes_only_json_lines_and_no_secret(tmp_path: Path) -> None:
    with SlackEmulator(bot_token=BOT_TOKEN) as slack:
        slack.add_user(COORDINATOR, "alice")
        slack.add_usergroup("S0COORD", "data-coordinator", [COORDINATOR])
        proc, url = start(tmp_path, slack, "json", "--verbose")  # debug: the Slack client logs its requests
        try:
            escalate_an_alert_with_a_planted_secret(url, slack)
        finally:
            out, err = stop(proc)

    entries = [json.loads(line) for line in err.splitlines()]  # every line is one JSON object
    assert len(entries) > 20 and out == ""
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in entries)
    opened = [e for e in entries if e["message"].startswith("INC-1 opened")]
    assert opened and opened[0]["incident"] == 1 and opened[0]["escalation_level"] == "L1"
    assert opened[0]["source"] == "alertmanager"
    assert any(e["logger"].startswith("uvicorn") for e in entries)  # uvicorn's own lines are JSON too
    refused = [e for e in entries if "will be retried" in e["message"]]
    assert refused and "invalid_auth for [REDACTED]" in refused[0]["message"]
    assert any(e.get("source") == "timer" and e.get("incident") == 1 for e in entries)
    for secret in (PLANTED, BOT_TOKEN, SIGNING, HOOK):
        assert secret not in err, secret


def test_text_logs_are_unchanged_without_log_format(tmp_path: Path) -> None:
    with SlackEmulator(bot_token=BOT_TOKEN) as slack:
        proc, _ = start(tmp_path, slack, None)
        _, err = stop(proc)
    text = err.splitlines()
    assert any(
        re.fullmatch(
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO bot: escalation-bot serving Slack over .*", line
        )
        for line in text
    ), err
    assert any(line.startswith("INFO:     Uvicorn running on http://127.0.0.1:") for line in text), err
    assert not any(line.startswith("{") for line in text)


def test_an_unknown_log_format_is_named_by_check_config_and_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    env.update({"LOG_FORMAT": "xml", "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING})
    for command in (["check-config", "--env"], ["run"]):
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli", *command, "--config", str(ROOT / "app.yaml")],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert result.returncode != 0
        said = result.stdout + result.stderr
        assert "LOG_FORMAT: must be 'text' or 'json' (one JSON object a line), not 'xml'" in said, said
        assert "Traceback" not in said
