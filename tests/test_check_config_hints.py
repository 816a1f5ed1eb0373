"""`check-config` points at the fix: the nearest known key for a misspelt one, and the value it refused."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import ValidationError

from bot.config import check_config, parse_config
from bot.config.errors import located
from bot.config.hints import SHOWN_CHARS, described, known_keys
from bot.config.section import Section
from bot.config.values import Count, int_range
from bot.core.errors import ConfigError
from tests.test_cli import cli

MISSPELT = """
    slak:
      app_name: bot
    levels:
      l2:
        ack_dedline: 45m
    classification:
      rules:
        - category: training_crash
          pattren: CUDA out of memory
    remediation:
      allowlist:
        retry_job_with_debug:
          max_retry: 2
    runtime:
      flush: true
      l1_workers: 99
"""


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(data, show_values=True)
    return raised.value.problems


def test_check_config_suggests_the_nearest_key_at_the_top_level_nested_and_in_a_list_item(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(textwrap.dedent(MISSPELT), encoding="utf-8")
    result = cli("check-config", "--config", str(path))
    assert result.returncode == 1
    lines = [line.removeprefix("  - ") for line in result.stdout.splitlines()[1:]]
    assert lines == [  # in the order of app.yaml's sections, then the keys it does not know
        "levels.l2.ack_dedline: unknown key (did you mean ack_deadline?)",
        # the caps of the remediation named, not of remediations in general
        "remediation.allowlist.retry_job_with_debug.max_retry: unknown key (did you mean max_retries?)",
        "classification.rules[0].pattern: needs a value",
        "classification.rules[0].pattren: unknown key (did you mean pattern?)",
        "runtime.l1_workers: must be between 1 and 32 (got 99)",
        "runtime.flush: unknown key",  # nothing near enough: no guess
        "slak: unknown key (did you mean slack?)",
    ]


def test_the_refused_value_is_shown_as_app_yaml_spells_it() -> None:
    assert problems({"levels": {"l1": {"budget": "5 minutes", "max_attempts": 9}}}) == [
        "levels.l1.max_attempts: must be between 1 and 5 (got 9)",
        "levels.l1.budget: expected a duration like 30s, 5m, 1h (got '5 minutes')",
    ]
    assert problems({"remediation": {"dry_run": "sometimes"}}) == [
        "remediation.dry_run: expected true or false (got 'sometimes')"
    ]
    assert problems({"levels": {"l4": {"deciders": ["@ml-deciders", "#general"]}}}) == [
        "levels.l4.deciders[1]: must be a handle like '@data-coordinator', a group id (S…) or a user id "
        "(U…/W…) (got '#general')"
    ]


def test_a_message_that_already_gives_the_value_is_not_repeated() -> None:
    assert problems({"slack": {"app_name": "e" * 36}}) == [
        "slack.app_name: must be at most 35 characters (got 36)"
    ]
    assert problems({"slack": {"channels": {"decisions": None}}}) == [
        "slack.channels.decisions: needs a value (quote channel names: an unquoted # starts a YAML comment)"
    ]


def test_a_value_that_looks_like_a_secret_is_redacted_and_a_long_one_cut() -> None:
    token = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"
    [line] = problems({"slack": {"channels": {"alerts": token}}})
    assert line == "slack.channels.alerts: must start with '#' or be a channel id (got '[REDACTED]')"
    [long] = problems({"intake": {"debounce": "soon " * 40}})
    shown = long[long.index("(got ") + 5 : -1]
    assert len(shown) == SHOWN_CHARS and shown.startswith("'soon soon") and shown.endswith("…")


class Webhook(Section):
    """A section with keys that look secret, as a plugin's might."""

    signing_secret: Annotated[Count, int_range(1, 5)] = 1
    api_token: Annotated[Count, int_range(1, 5)] = 1
    retries: Annotated[Count, int_range(1, 5)] = 1


def test_a_value_under_a_key_that_looks_secret_is_never_shown() -> None:
    data = {"signing_secret": 77, "api_token": 88, "retries": 99}
    with pytest.raises(ValidationError) as raised:
        Webhook.model_validate(data)
    assert described(Webhook, located(raised.value), data, show_values=True) == [
        "signing_secret: must be between 1 and 5",
        "api_token: must be between 1 and 5",
        "retries: must be between 1 and 5 (got 99)",
    ]


def test_a_key_that_looks_like_a_secret_is_redacted_in_the_key_path() -> None:
    pasted = "xoxb-123456789012-123456789012-" + "a1B2c3D4e5F6g7H8i9J0k1L2"
    found = problems({"slack": {pasted: 1, "app_nme": "bot"}})
    assert "slack.[REDACTED]: unknown key" in found
    assert "slack.app_nme: unknown key (did you mean app_name?)" in found
    assert not any(pasted in line or "a1B2c3D4" in line for line in found), found


def test_values_are_shown_only_when_asked_and_keys_are_suggested_always(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("runtime:\n  l1_workers: 99\n  l1_worker: 3\n", encoding="utf-8")
    assert check_config(path) == [
        "runtime.l1_workers: must be between 1 and 32",
        "runtime.l1_worker: unknown key (did you mean l1_workers?)",
    ]
    assert check_config(path, show_values=True)[0] == "runtime.l1_workers: must be between 1 and 32 (got 99)"


def test_known_keys_follow_sections_lists_and_dicts() -> None:
    from bot.config import AppConfig

    assert "slack" in known_keys(AppConfig, ())
    assert "ack_deadline" in known_keys(AppConfig, ("levels", "l2"))
    assert set(known_keys(AppConfig, ("classification", "rules", 3))) == {
        "category",
        "pattern",
        "description",
    }
    assert set(known_keys(AppConfig, ("remediation", "allowlist", "rerun_job_with_more_memory"))) == {
        "memory_step_factor",
        "max_memory",
    }
    assert known_keys(AppConfig, ("levels", "nowhere")) == []
