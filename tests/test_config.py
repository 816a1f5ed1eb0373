"""app.yaml and the environment: what loads, what is refused, and how each problem is worded."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from bot.config import (
    KNOWN_REMEDIATIONS,
    TEMPLATE_KEYS,
    AppConfig,
    Env,
    RemediationCaps,
    RerunWithMoreMemoryCaps,
    RetryWithDebugCaps,
    check_config,
    format_duration,
    load_config,
    parse_config,
    parse_duration,
    parse_memory,
)
from bot.core.errors import ConfigError
from bot.core.models import Category
from bot.integrations.slack.client import make_client

REPO_APP_YAML = Path(__file__).resolve().parents[1] / "app.yaml"
KNOWN = ", ".join(sorted(KNOWN_REMEDIATIONS))


def problems_for(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "app.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return check_config(path)


def two_options(**first: Any) -> list[dict[str, Any]]:
    return [
        {"label": "Retry", "trade_off": "Costs a run.", **first},
        {"label": "Wait", "trade_off": "Slower."},
    ]


# ---------------------------------------------------------------- every bad value names its key


BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    (
        "attempts too low",
        {"levels": {"l1": {"max_attempts": 0}}},
        "levels.l1.max_attempts: must be between 1 and 5",
    ),
    (
        "attempts too high",
        {"levels": {"l1": {"max_attempts": 6}}},
        "levels.l1.max_attempts: must be between 1 and 5",
    ),
    (
        "attempts as a boolean",
        {"levels": {"l1": {"max_attempts": True}}},
        "levels.l1.max_attempts: expected a whole number",
    ),
    (
        "attempts fractional",
        {"levels": {"l1": {"max_attempts": 1.5}}},
        "levels.l1.max_attempts: expected a whole number",
    ),
    (
        "budget in words",
        {"levels": {"l1": {"budget": "5 minutes"}}},
        "levels.l1.budget: expected a duration like 30s, 5m, 1h",
    ),
    ("budget too long", {"levels": {"l1": {"budget": "2h"}}}, "levels.l1.budget: must be between 10s and 1h"),
    (
        "budget too short",
        {"levels": {"l1": {"budget": "5s"}}},
        "levels.l1.budget: must be between 10s and 1h",
    ),
    (
        "check timeout past the budget",
        {"levels": {"l1": {"budget": "2m", "check_timeout": "3m"}}},
        "levels.l1.check_timeout: must be shorter than budget (2m)",
    ),
    (
        "reminder after the deadline",
        {"levels": {"l2": {"reminder_after": "45m"}}},
        "levels.l2.reminder_after: must be shorter than ack_deadline (30m)",
    ),
    (
        "reminder equal to the deadline",
        {"levels": {"l3": {"ack_deadline": "1h30m", "reminder_after": "90m"}}},
        "levels.l3.reminder_after: must be shorter than ack_deadline (1h30m)",
    ),
    (
        "group without @",
        {"levels": {"l3": {"group": "tech-lead"}}},
        "levels.l3.group: must be a user-group handle like '@data-coordinator' or a group id (S…)",
    ),
    (
        "coordinator group without @",
        {"levels": {"l2": {"group": "data-coordinator"}}},
        "levels.l2.group: must be a user-group handle like '@data-coordinator' or a group id (S…)",
    ),
    (
        "actor that is a channel",
        {"levels": {"l2": {"actors": ["@data-coordinator", "#general"]}}},
        "levels.l2.actors[1]: must be a handle like '@data-coordinator', "
        "a group id (S…) or a user id (U…/W…)",
    ),
    ("no deciders", {"levels": {"l4": {"deciders": []}}}, "levels.l4.deciders: needs at least one decider"),
    (
        "decision reminder after expiry",
        {"levels": {"l4": {"reminder_after": "1d"}}},
        "levels.l4.reminder_after: must be shorter than decision_expiry (1d)",
    ),
    (
        "negative deadline",
        {"levels": {"l2": {"ack_deadline": -60}}},
        "levels.l2.ack_deadline: must not be negative",
    ),
    (
        "channel without #",
        {"slack": {"channels": {"alerts": "ml-alerts"}}},
        "slack.channels.alerts: must start with '#' or be a channel id",
    ),
    (
        "channel with capitals",
        {"slack": {"channels": {"admin": "#Escalation Admin"}}},
        "slack.channels.admin: must be a channel name like '#ml-alerts' "
        "(lowercase, no spaces, at most 80 characters)",
    ),
    (
        "channel left empty",
        {"slack": {"channels": {"decisions": None}}},
        "slack.channels.decisions: needs a value (quote channel names: an unquoted # starts a YAML comment)",
    ),
    (
        "command without /",
        {"slack": {"commands": {"escalate": "escalate"}}},
        "slack.commands.escalate: must start with '/'",
    ),
    (
        "command too long",
        {"slack": {"commands": {"escalation": "/" + "x" * 32}}},
        "slack.commands.escalation: must be at most 32 characters",
    ),
    (
        "one command twice",
        {"slack": {"commands": {"escalate": "/incident", "escalation": "/incident"}}},
        "slack.commands.escalation: must differ from slack.commands.escalate",
    ),
    (
        "public url without scheme",
        {"slack": {"public_url": "bot.example.com"}},
        "slack.public_url: must be an http(s) URL without a query",
    ),
    (
        "app name too long",
        {"slack": {"app_name": "e" * 36}},
        "slack.app_name: must be at most 35 characters (got 36)",
    ),
    (
        "no namespaces",
        {"kubernetes": {"namespaces": []}},
        "kubernetes.namespaces: needs at least one namespace",
    ),
    (
        "namespace not a DNS label",
        {"kubernetes": {"namespaces": ["ml-pipelines", "ML_Training"]}},
        "kubernetes.namespaces[1]: must be a DNS-1123 label like 'ml-pipelines'",
    ),
    (
        "mlflow retries too high",
        {"mlflow": {"max_retries": 6}},
        "mlflow.max_retries: must be between 0 and 5",
    ),
    ("no L1 workers", {"runtime": {"l1_workers": 0}}, "runtime.l1_workers: must be between 1 and 32"),
    (
        "zero outbox interval",
        {"runtime": {"outbox_interval": 0}},
        "runtime.outbox_interval: must be longer than 0s",
    ),
    (
        "dry run not a boolean",
        {"remediation": {"dry_run": "sometimes"}},
        "remediation.dry_run: expected true or false",
    ),
    (
        "unknown remediation",
        {"remediation": {"allowlist": {"delete_namespace": {}}}},
        f"remediation.allowlist.delete_namespace: unknown remediation (known: {KNOWN})",
    ),
    (
        "memory step too large",
        {"remediation": {"allowlist": {"rerun_job_with_more_memory": {"memory_step_factor": 5}}}},
        "remediation.allowlist.rerun_job_with_more_memory.memory_step_factor: must be between 1.1 and 4",
    ),
    (
        "memory cap not a quantity",
        {"remediation": {"allowlist": {"rerun_job_with_more_memory": {"max_memory": "16 gigs"}}}},
        "remediation.allowlist.rerun_job_with_more_memory.max_memory: "
        "must be a Kubernetes memory quantity like '16Gi' or '512Mi'",
    ),
    (
        "debug retries too high",
        {"remediation": {"allowlist": {"retry_job_with_debug": {"max_retries": 4}}}},
        "remediation.allowlist.retry_job_with_debug.max_retries: must be between 1 and 3",
    ),
    (
        "unknown cap",
        {"remediation": {"allowlist": {"retry_job_with_debug": {"verbose": True}}}},
        "remediation.allowlist.retry_job_with_debug.verbose: unknown key",
    ),
    (
        "template with one option",
        {
            "decisions": {
                "templates": {"training_crash": {"question": "Now what?", "options": two_options()[:1]}}
            }
        },
        "decisions.templates.training_crash.options: needs 2 to 4 options (got 1)",
    ),
    (
        "template with five options",
        {
            "decisions": {
                "templates": {
                    "default": {
                        "question": "Now what?",
                        "options": [{"label": f"Option {i}", "trade_off": "Some."} for i in range(5)],
                    }
                }
            }
        },
        "decisions.templates.default.options: needs 2 to 4 options (got 5)",
    ),
    (
        "duplicate labels",
        {
            "decisions": {
                "templates": {
                    "default": {
                        "question": "Now what?",
                        "options": [
                            {"label": "Retry", "trade_off": "A."},
                            {"label": "retry", "trade_off": "B."},
                        ],
                    }
                }
            }
        },
        "decisions.templates.default.options[1].label: duplicate label 'retry'",
    ),
    (
        "label too long for a button",
        {
            "decisions": {
                "templates": {"default": {"question": "Now what?", "options": two_options(label="L" * 76)}}
            }
        },
        "decisions.templates.default.options[0].label: must be at most 75 characters (got 76)",
    ),
    (
        "blank trade-off",
        {
            "decisions": {
                "templates": {"default": {"question": "Now what?", "options": two_options(trade_off="  ")}}
            }
        },
        "decisions.templates.default.options[0].trade_off: must not be empty",
    ),
    (
        "unknown button style",
        {
            "decisions": {
                "templates": {"default": {"question": "Now what?", "options": two_options(style="green")}}
            }
        },
        "decisions.templates.default.options[0].style: expected 'primary' or 'danger'",
    ),
    (
        "option without a question",
        {"decisions": {"templates": {"default": {"options": two_options()}}}},
        "decisions.templates.default.question: needs a value",
    ),
    (
        "action not on the allowlist",
        {
            "decisions": {
                "templates": {
                    "pipeline_step_failed": {
                        "question": "Now what?",
                        "options": two_options(action="retry_job_with_debug"),
                    }
                }
            }
        },
        "decisions.templates.pipeline_step_failed.options[0].action: "
        "'retry_job_with_debug' is neither 'resolve' nor a remediation on remediation.allowlist",
    ),
    (
        "unknown category",
        {"decisions": {"templates": {"training": {"question": "Now what?", "options": two_options()}}}},
        f"decisions.templates.training: unknown category (known: {', '.join(TEMPLATE_KEYS)})",
    ),
    ("section not a mapping", {"levels": 5}, "levels: expected a mapping of keys to values"),
    (
        "namespaces not a list",
        {"kubernetes": {"namespaces": "ml-pipelines"}},
        "kubernetes.namespaces: expected a list",
    ),
    ("unknown section", {"slak": {}}, "slak: unknown key (did you mean slack?)"),
    (
        "misspelt key",
        {"levels": {"l1": {"max_attempt": 3}}},
        "levels.l1.max_attempt: unknown key (did you mean max_attempts?)",
    ),
    (
        "unknown key in a template option",
        {"decisions": {"templates": {"default": {"question": "Q", "options": two_options(cost="high")}}}},
        "decisions.templates.default.options[0].cost: unknown key",
    ),
    (
        "llm model with a space",
        {"llm": {"model": "claude haiku"}},
        "llm.model: must be a model id like 'claude-haiku-5-5'",
    ),
    ("llm retries too many", {"llm": {"max_retries": 9}}, "llm.max_retries: must be between 0 and 5"),
    ("llm without a step", {"llm": {"steps": 0}}, "llm.steps: must be between 1 and 20"),
    (
        "llm output tokens too few",
        {"llm": {"max_tokens": 10}},
        "llm.max_tokens: must be between 256 and 32000",
    ),
    ("llm timeout too short", {"llm": {"timeout": "100ms"}}, "llm.timeout: must be between 1s and 10m"),
    (
        "llm request time in words",
        {"llm": {"request_time": "a minute"}},
        "llm.request_time: expected a duration like 30s, 5m, 1h",
    ),
    (
        "llm budget negative",
        {"llm": {"daily_token_budget": -1}},
        "llm.daily_token_budget: must be between 0 and 1000000000",
    ),
]


@pytest.mark.parametrize(
    ("data", "expected"), [(d, e) for _, d, e in BAD_VALUES], ids=[n for n, _, _ in BAD_VALUES]
)
def test_a_bad_value_is_reported_once_at_its_key_path(
    tmp_path: Path, data: dict[str, Any], expected: str
) -> None:
    assert problems_for(tmp_path, yaml.safe_dump(data)) == [expected]


def test_every_problem_in_a_file_is_reported_together(tmp_path: Path) -> None:
    problems = problems_for(
        tmp_path,
        """
        slack:
          channels:
            alerts: ml-alerts
        levels:
          l1:
            max_attempts: 9
          l2:
            reminder_after: 1h
        runtime:
          flush: true
        """,
    )
    assert problems == [
        "slack.channels.alerts: must start with '#' or be a channel id",
        "levels.l1.max_attempts: must be between 1 and 5",
        "levels.l2.reminder_after: must be shorter than ack_deadline (30m)",
        "runtime.flush: unknown key",
    ]


def test_an_action_off_the_allowlist_is_reported_with_the_other_problems() -> None:
    problems = parse_config_problems(
        {
            "decisions": {"templates": {"default": {"question": "Q", "options": two_options(action="nap")}}},
            "runtime": {"l1_workers": 0},
        }
    )
    assert problems == [
        "decisions.templates.default.options[0].action: "
        "'nap' is neither 'resolve' nor a remediation on remediation.allowlist",
        "runtime.l1_workers: must be between 1 and 32",
    ]


def test_load_config_raises_config_error_carrying_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("levels:\n  l1:\n    max_attempts: 0\n    budget: soon\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.problems == [
        "levels.l1.max_attempts: must be between 1 and 5",
        "levels.l1.budget: expected a duration like 30s, 5m, 1h",
    ]


# ---------------------------------------------------------------- the file itself


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert check_config(path) == [f"{path}: file not found"]
    with pytest.raises(ConfigError):
        load_config(str(path))


def test_a_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, "slack:\n  app_name: bot\n    public_url: https://bot.example.com\n")
    assert problems == [
        f"{tmp_path / 'app.yaml'}: invalid YAML at line 3, column 15: mapping values are not allowed here"
    ]


def test_a_key_written_twice_is_refused_rather_than_silently_overridden(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, "levels:\n  l1:\n    budget: 5m\n    budget: 1m\n")
    assert problems == [f"{tmp_path / 'app.yaml'}: invalid YAML at line 4, column 5: duplicate key 'budget'"]


def test_an_unquoted_channel_name_gets_a_hint(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, "slack:\n  channels:\n    alerts: #ml-alerts\n")
    assert problems == [
        "slack.channels.alerts: needs a value (quote channel names: an unquoted # starts a YAML comment)"
    ]


def test_a_top_level_list_is_refused(tmp_path: Path) -> None:
    assert problems_for(tmp_path, "- slack\n- levels\n") == [
        "(top level): expected a mapping of sections (slack, levels, …), got list"
    ]


def test_an_empty_file_is_a_valid_config(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("# nothing here yet\n", encoding="utf-8")
    assert load_config(path) == AppConfig()
    assert check_config(path) == []


# ---------------------------------------------------------------- the repository's app.yaml


def model_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key path of a model's fields, descending into nested sections (not into free-form dicts)."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.append(path)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(model_keys(annotation, f"{path}."))
    return keys


def duration_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if annotation is timedelta:
            keys.append(f"{prefix}{name}")
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(duration_keys(annotation, f"{prefix}{name}."))
    return keys


def lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        assert isinstance(data, dict) and part in data, f"app.yaml has no {dotted}"
        data = data[part]
    return data


def test_the_repository_app_yaml_loads() -> None:
    config = load_config(REPO_APP_YAML)
    assert config.slack.channels.admin == "#escalation-admin"
    assert config.levels.l1.max_attempts == 2
    assert config.levels.l1.budget == timedelta(minutes=5)
    assert config.kubernetes.namespaces == ["ml-pipelines"]
    assert set(config.remediation.allowlist) == set(KNOWN_REMEDIATIONS)
    assert config.remediation.dry_run is False
    crash = config.decisions.for_category(Category.TRAINING_CRASH)
    assert crash.options[0].action == "rerun_job_with_more_memory"
    assert config.llm == AppConfig().llm  # the llm section writes out its defaults


def test_the_repository_app_yaml_writes_out_every_duration_and_every_key() -> None:
    raw = yaml.safe_load(REPO_APP_YAML.read_text(encoding="utf-8"))
    durations = duration_keys(AppConfig)
    assert {
        "slack.group_cache_ttl",
        "levels.l1.budget",
        "levels.l1.check_timeout",
        "levels.l1.verify_poll_interval",
        "levels.l2.ack_deadline",
        "levels.l2.reminder_after",
        "levels.l3.ack_deadline",
        "levels.l3.reminder_after",
        "levels.l4.decision_expiry",
        "levels.l4.reminder_after",
        "kubernetes.request_timeout",
        "mlflow.request_timeout",
        "intake.debounce",
        "intake.flap_window",
        "runtime.timer_interval",
        "runtime.outbox_interval",
    } <= set(durations)
    for key in model_keys(AppConfig):
        lookup(raw, key)
    for name in KNOWN_REMEDIATIONS:
        for cap in KNOWN_REMEDIATIONS[name].model_fields:
            lookup(raw, f"remediation.allowlist.{name}.{cap}")
    assert {"training_crash", "pipeline_step_failed", "default"} <= set(lookup(raw, "decisions.templates"))


# ---------------------------------------------------------------- defaults


def test_defaults_match_the_protocol() -> None:
    config = AppConfig()
    channels = config.slack.channels
    assert (
        channels.alerts,
        channels.coordinator,
        channels.tech_lead,
        channels.decisions,
        channels.admin,
    ) == (
        "#ml-alerts",
        "#data-coordinator",
        "#tech-leads",
        "#ml-decisions",
        None,
    )
    assert (config.slack.commands.escalate, config.slack.commands.escalation) == ("/escalate", "/escalation")
    assert config.slack.group_cache_ttl == timedelta(minutes=5)
    assert config.slack.app_name == "escalation-bot"
    l1 = config.levels.l1
    assert (l1.max_attempts, l1.budget, l1.check_timeout, l1.verify_poll_interval) == (
        2,
        timedelta(minutes=5),
        timedelta(seconds=20),
        timedelta(seconds=5),
    )
    l2, l3, l4 = config.levels.l2, config.levels.l3, config.levels.l4
    assert l2.group == "@data-coordinator"
    assert l2.actors == ["@data-coordinator", "@tech-lead-orchestrator"]
    assert (l2.ack_deadline, l2.reminder_after, l2.auto_escalate) == (
        timedelta(minutes=30),
        timedelta(minutes=15),
        True,
    )
    assert (l3.group, l3.actors) == ("@tech-lead-orchestrator", ["@tech-lead-orchestrator"])
    assert (l3.ack_deadline, l3.reminder_after) == (timedelta(hours=2), timedelta(hours=1))
    assert (l4.deciders, l4.decision_expiry, l4.reminder_after) == (
        ["@ml-deciders"],
        timedelta(hours=24),
        timedelta(hours=4),
    )
    assert config.kubernetes.namespaces == ["ml-pipelines"]
    assert (config.kubernetes.cluster_name, config.kubernetes.request_timeout) == (
        "default",
        timedelta(seconds=10),
    )
    assert (config.mlflow.request_timeout, config.mlflow.max_retries) == (timedelta(seconds=10), 2)
    assert (config.remediation.dry_run, config.remediation.allowlist) == (False, {})
    assert (config.intake.debounce, config.intake.flap_window) == (
        timedelta(minutes=1),
        timedelta(minutes=10),
    )
    runtime = config.runtime
    assert (runtime.timer_interval, runtime.outbox_interval, runtime.l1_workers) == (
        timedelta(seconds=1),
        timedelta(milliseconds=500),
        4,
    )
    llm = config.llm
    assert (llm.model, llm.max_tokens, llm.timeout, llm.max_retries) == (
        "claude-haiku-5-5",
        2048,
        timedelta(seconds=30),
        2,
    )
    assert (llm.steps, llm.request_tokens, llm.request_time, llm.daily_token_budget) == (
        6,
        60_000,
        timedelta(minutes=1),
        2_000_000,
    )


def test_a_partial_level_keeps_the_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(
        "levels:\n  l2:\n    ack_deadline: 1h\n  l3:\n    group: '@platform-leads'\n", encoding="utf-8"
    )
    levels = load_config(path).levels
    assert (levels.l2.group, levels.l2.ack_deadline, levels.l2.reminder_after) == (
        "@data-coordinator",
        timedelta(hours=1),
        timedelta(minutes=15),
    )
    # the tech lead may act at L2 unless the L2 actors are listed
    assert levels.l2.actors == ["@data-coordinator", "@platform-leads"]
    assert levels.l3.actors == ["@platform-leads"]


def test_listed_actors_are_taken_as_written() -> None:
    levels = parse_config(
        {"levels": {"l2": {"actors": ["U0123ABCD", "S0456EFGH"]}, "l3": {"actors": []}}}
    ).levels
    assert levels.l2.actors == ["U0123ABCD", "S0456EFGH"]
    assert levels.l3.actors == ["@tech-lead-orchestrator"]


def test_channel_ids_are_accepted_as_well_as_names() -> None:
    channels = parse_config(
        {"slack": {"channels": {"alerts": "C0123ABCD", "decisions": "G0987ZYXW"}}}
    ).slack.channels
    assert (channels.alerts, channels.decisions) == ("C0123ABCD", "G0987ZYXW")


def test_the_config_cannot_be_changed_after_loading() -> None:
    config = AppConfig()
    with pytest.raises(ValidationError):
        config.levels.l1.max_attempts = 5  # type: ignore[misc]


def test_the_config_survives_a_json_round_trip() -> None:
    config = load_config(REPO_APP_YAML)
    dumped = config.model_dump(mode="json")
    assert dumped["levels"]["l1"]["budget"] == "5m"
    assert dumped["runtime"]["outbox_interval"] == "500ms"
    assert AppConfig.model_validate(dumped) == config


# ---------------------------------------------------------------- remediation allowlist


def test_allowlisted_remediations_get_their_default_caps() -> None:
    config = parse_config(
        {"remediation": {"allowlist": {"rerun_job_with_more_memory": None, "retry_job_with_debug": {}}}}
    )
    assert config.remediation.allowlist == {
        "rerun_job_with_more_memory": RerunWithMoreMemoryCaps(memory_step_factor=2.0, max_memory="16Gi"),
        "retry_job_with_debug": RetryWithDebugCaps(max_retries=1),
    }


def test_a_bare_list_of_remediation_names_is_allowed() -> None:
    config = parse_config({"remediation": {"allowlist": ["retry_job_with_debug"]}})
    assert config.remediation.allowlist == {"retry_job_with_debug": RetryWithDebugCaps(max_retries=1)}


class ScaleDownCaps(RemediationCaps):
    min_replicas: int = 1


def test_a_new_remediation_can_be_registered_with_its_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KNOWN_REMEDIATIONS, "scale_down", ScaleDownCaps)
    config = parse_config({"remediation": {"allowlist": {"scale_down": {"min_replicas": 2}}}})
    assert config.remediation.allowlist == {"scale_down": ScaleDownCaps(min_replicas=2)}


# ---------------------------------------------------------------- decision templates


def test_every_category_has_a_useful_builtin_template() -> None:
    templates = AppConfig().decisions.templates
    assert set(templates) == set(TEMPLATE_KEYS)
    for key, template in templates.items():
        assert 2 <= len(template.options) <= 4, key
        assert all(option.trade_off for option in template.options), key
    crash_labels = [option.label for option in templates["training_crash"].options]
    assert "Reduce batch size and retrain" in crash_labels
    assert "Keep the current model and defer" in crash_labels


def test_written_templates_replace_only_their_own_category() -> None:
    own = {"question": "Retrain?", "options": two_options(action="resolve")}
    decisions = parse_config({"decisions": {"templates": {"training_crash": own}}}).decisions
    assert decisions.for_category(Category.TRAINING_CRASH).question == "Retrain?"
    assert (
        decisions.for_category("feature_store_issue")
        == AppConfig().decisions.templates["feature_store_issue"]
    )
    assert decisions.for_category("no_such_category") == decisions.templates["default"]


def test_a_template_left_empty_keeps_the_builtin() -> None:
    decisions = parse_config({"decisions": {"templates": {"training_crash": None}}}).decisions
    assert decisions.for_category("training_crash") == AppConfig().decisions.for_category("training_crash")


def test_builtin_options_act_only_through_allowlisted_remediations() -> None:
    def crash_actions(config: AppConfig) -> list[str | None]:
        return [option.action for option in config.decisions.for_category("training_crash").options]

    assert crash_actions(AppConfig()) == [None, None, None, "resolve"]
    allowed = parse_config({"remediation": {"allowlist": ["rerun_job_with_more_memory"]}})
    assert crash_actions(allowed) == ["rerun_job_with_more_memory", None, None, "resolve"]


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("500ms", 0.5),
        ("0.5s", 0.5),
        ("90", 90),
        (90, 90),
        (1.5, 1.5),
        (timedelta(minutes=2), 120),
    ],
)
def test_durations_parse(value: Any, seconds: float) -> None:
    assert parse_duration(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", ["5 minutes", "", "1x", "m5", "-5s", True, None, [5]])
def test_non_durations_are_refused_with_an_example(value: Any) -> None:
    problems = parse_config_problems({"intake": {"debounce": value}})
    assert problems == ["intake.debounce: expected a duration like 30s, 5m, 1h"]


def parse_config_problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    return raised.value.problems


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.5, "500ms"),
        (1.5, "1.5s"),
        (30, "30s"),
        (300, "5m"),
        (5400, "1h30m"),
        (86400, "1d"),
        (90061, "1d1h1m1s"),
    ],
)
def test_durations_are_written_back_as_app_yaml_spells_them(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("quantity", "size"),
    [
        ("16Gi", 16 * 1024**3),
        ("512Mi", 512 * 1024**2),
        ("500Mi", 500 * 1024**2),
        ("1G", 10**9),
        ("1.5Gi", 3 * 512 * 1024**2),
        (".5Gi", 512 * 1024**2),
        ("1K", 1000),  # the Kubernetes client reads an upper-case K as k
        ("128k", 128 * 1000),
        ("2e3", 2000),
        ("1048576", 1048576),
        (" 2Gi ", 2 * 1024**3),
        ("100m", 1),  # a fraction of a byte is rounded up, as Kubernetes does
    ],
)
def test_memory_quantities_convert_to_bytes(quantity: str, size: int) -> None:
    assert parse_memory(quantity) == size


BAD_QUANTITIES = [
    "16 gigs",
    "two gigs",
    "",
    "Gi",
    "1.5.5Gi",
    "1ki",
    "-1Gi",
    "1 Gi",
    "1_000",
    "NaN",
    "Infinity",
]


@pytest.mark.parametrize("quantity", BAD_QUANTITIES)
def test_a_non_quantity_is_not_converted(quantity: str) -> None:
    with pytest.raises(ValueError, match="not a memory quantity"):
        parse_memory(quantity)


@pytest.mark.parametrize("quantity", [".5Gi", "1K", "2e3", "1.5Gi", "500Mi"])
def test_app_yaml_takes_every_quantity_kubernetes_takes(quantity: str) -> None:
    config = parse_config(
        {"remediation": {"allowlist": {"rerun_job_with_more_memory": {"max_memory": quantity}}}}
    )
    caps = config.remediation.allowlist["rerun_job_with_more_memory"]
    assert isinstance(caps, RerunWithMoreMemoryCaps) and caps.max_memory == quantity


@pytest.mark.parametrize("quantity", BAD_QUANTITIES)
def test_app_yaml_refuses_a_non_quantity_naming_the_key(quantity: str) -> None:
    problems = parse_config_problems(
        {"remediation": {"allowlist": {"rerun_job_with_more_memory": {"max_memory": quantity}}}}
    )
    assert problems == [
        "remediation.allowlist.rerun_job_with_more_memory.max_memory: "
        "must be a Kubernetes memory quantity like '16Gi' or '512Mi'"
    ]


# ---------------------------------------------------------------- environment

GOOD_RUN_ENV = {"SLACK_BOT_TOKEN": "xoxb-1-abc", "SLACK_SIGNING_SECRET": "s3cr3t-signing"}


def revealed(env: Env) -> dict[str, str | None]:
    return {name: v.get_secret_value() if isinstance(v, SecretStr) else v for name, v in env}


def test_env_reads_every_variable_and_treats_empty_as_unset() -> None:
    env = Env.from_environ(
        {
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "sig",
            "SLACK_APP_TOKEN": "",
            "SLACK_API_URL": "http://127.0.0.1:8080/api",
            "DATABASE_URL": "sqlite:///bot.db",
            "ANTHROPIC_API_KEY": "  ",
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:9090",
            "ANTHROPIC_MODEL": " claude-test ",
            "MLFLOW_TRACKING_URI": "http://mlflow:5000",
            "KUBECONFIG": "/etc/kube/config",
            "ALERT_WEBHOOK_TOKEN": "hook",
            "MLFLOW_WEBHOOK_SECRET": "mlsecret",
            "LOG_FORMAT": " json ",
            "UNRELATED": "x",
        }
    )
    assert revealed(env) == {
        "slack_bot_token": "xoxb-1",
        "slack_signing_secret": "sig",
        "slack_app_token": None,
        "slack_api_url": "http://127.0.0.1:8080/api",
        "database_url": "sqlite:///bot.db",
        "anthropic_api_key": None,
        "anthropic_base_url": "http://127.0.0.1:9090",
        "mlflow_tracking_uri": "http://mlflow:5000",
        "kubeconfig": "/etc/kube/config",
        "alert_webhook_token": "hook",
        "mlflow_webhook_secret": "mlsecret",
        "anthropic_model": "claude-test",
        "log_format": "json",
    }
    assert env.socket_mode is False


def test_env_reads_the_process_environment_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-live")
    monkeypatch.setenv("KUBECONFIG", "  ")
    monkeypatch.setenv("slack_bot_token", "xoxb-lower-case-name")
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    env = Env.from_environ()
    assert env.slack_app_token is not None and env.slack_app_token.get_secret_value() == "xapp-1-live"
    assert env.socket_mode is True
    assert env.kubeconfig is None
    assert env.slack_bot_token is None  # the names are exactly the documented ones
    assert env.database_url_or_default("sqlite:///escalation.db") == "sqlite:///escalation.db"


def test_a_given_environment_is_all_that_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-live")
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/bot")
    env = Env.from_environ({"SLACK_BOT_TOKEN": "xoxb-1"})
    assert env.slack_app_token is None and env.database_url is None


def test_secrets_never_show_in_repr_or_str() -> None:
    secrets = {
        "SLACK_BOT_TOKEN": "xoxb-bot-secret-1",
        "SLACK_SIGNING_SECRET": "signing-secret-2",
        "SLACK_APP_TOKEN": "xapp-app-secret-3",
        "DATABASE_URL": "postgresql://bot:db-password-4@db/bot",
        "ANTHROPIC_API_KEY": "sk-ant-secret-5",
        "ALERT_WEBHOOK_TOKEN": "webhook-secret-6",
        "MLFLOW_WEBHOOK_SECRET": "mlflow-secret-7",
    }
    env = Env.from_environ({**secrets, "SLACK_API_URL": "http://127.0.0.1:8080/api/"})
    shown = repr(env) + str(env) + f"{env}" + repr(env.model_dump())
    assert "http://127.0.0.1:8080/api/" in shown
    for value in secrets.values():
        assert value not in shown
    assert "db-password-4" not in shown
    assert revealed(env)["slack_bot_token"] == "xoxb-bot-secret-1"


def test_env_is_read_only() -> None:
    env = Env.from_environ({"SLACK_BOT_TOKEN": "xoxb-1"})
    with pytest.raises(ValidationError):
        env.kubeconfig = "/tmp/kubeconfig"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (GOOD_RUN_ENV, []),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1-abc"}, []),
        (
            {},
            [
                "SLACK_BOT_TOKEN: required (the bot token, starting with 'xoxb-')",
                "SLACK_SIGNING_SECRET: required unless SLACK_APP_TOKEN is set (Socket Mode)",
            ],
        ),
        (
            {**GOOD_RUN_ENV, "SLACK_BOT_TOKEN": "xoxp-user-token"},
            ["SLACK_BOT_TOKEN: must start with 'xoxb-'"],
        ),
        (
            {**GOOD_RUN_ENV, "SLACK_APP_TOKEN": "xoxb-wrong-kind"},
            ["SLACK_APP_TOKEN: must start with 'xapp-'"],
        ),
        (
            {**GOOD_RUN_ENV, "SLACK_API_URL": "localhost:8080/api/"},
            ["SLACK_API_URL: must be an http(s) URL, e.g. https://slack.com/api/"],
        ),
        ({**GOOD_RUN_ENV, "SLACK_API_URL": "http://127.0.0.1:8080/api/"}, []),
        (
            {**GOOD_RUN_ENV, "DATABASE_URL": "mysql://bot@db/bot"},
            ["DATABASE_URL: must start with 'sqlite' or 'postgresql'"],
        ),
        ({**GOOD_RUN_ENV, "DATABASE_URL": "postgresql+psycopg://bot:pw@db/bot"}, []),
    ],
)
def test_problems_for_run(environ: dict[str, str], expected: list[str]) -> None:
    assert Env.from_environ(environ).problems_for_run() == expected


def test_problems_never_echo_a_secret() -> None:
    env = Env.from_environ({"SLACK_BOT_TOKEN": "xoxp-very-secret", "SLACK_APP_TOKEN": "xoxb-also-secret"})
    assert not any("secret" in problem for problem in env.problems_for_run())


@pytest.mark.parametrize(
    ("url", "base_url"),
    [
        (None, "https://slack.com/api/"),
        ("http://127.0.0.1:8080/api/", "http://127.0.0.1:8080/api/"),
        ("http://127.0.0.1:8080/api", "http://127.0.0.1:8080/api/"),
        ("https://slack.com/api/", "https://slack.com/api/"),
    ],
)
def test_slack_api_url_gets_the_trailing_slash_slack_sdk_needs(url: str | None, base_url: str) -> None:
    env = Env.from_environ({"SLACK_API_URL": url})
    assert make_client("xoxb-1", env.slack_api_url).base_url == base_url


def test_database_url_or_default_prefers_the_environment() -> None:
    env = Env.from_environ({"DATABASE_URL": "postgresql://db/bot"})
    assert env.database_url_or_default("sqlite:///escalation.db") == "postgresql://db/bot"


def test_check_config_adds_environment_problems(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("runtime:\n  l1_workers: 0\n", encoding="utf-8")
    env = Env.from_environ({"SLACK_BOT_TOKEN": "xoxb-1"})
    expected = [
        "runtime.l1_workers: must be between 1 and 32",
        "SLACK_SIGNING_SECRET: required unless SLACK_APP_TOKEN is set (Socket Mode)",
    ]
    assert check_config(path, env) == expected
    assert check_config(path, env.problems_for_run()) == expected
