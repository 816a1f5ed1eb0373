"""app.yaml and the environment: typed, validated settings with errors that name the key to fix.

`load_config` turns app.yaml into an `AppConfig` (every section has defaults, so an empty file is a
valid config) or raises `ConfigError` listing every problem as "<key.path>: <message>". `Env` holds the
secrets and endpoints that come from the environment; this package is the only reader of it.

Modules: values, names, durations and quantities (the value types and their checks); one module per
group of sections (slack, levels, integrations, classification, remediation, decisions, intake,
runtime, llm) and app_config (the root); errors (how a problem is worded); loader (reading app.yaml); env.
"""

from bot.config.app_config import AppConfig
from bot.config.decisions import TEMPLATE_KEYS
from bot.config.durations import format_duration, parse_duration
from bot.config.env import Env, expand_env
from bot.config.errors import problems_from
from bot.config.integrations import CompatibilityRule, FreshnessTable, OrchestrationSettings
from bot.config.llm import LlmSettings
from bot.config.loader import check_config, load_config, parse_config
from bot.config.quantities import parse_memory
from bot.config.remediation import (
    KNOWN_REMEDIATIONS,
    NoCaps,
    RecheckTrackingCaps,
    RemediationCaps,
    RerunWithMoreMemoryCaps,
    RestartTrackingServerCaps,
    RetryWithDebugCaps,
    RetryWorkflowCaps,
)

__all__ = [
    "KNOWN_REMEDIATIONS",
    "TEMPLATE_KEYS",
    "AppConfig",
    "CompatibilityRule",
    "Env",
    "FreshnessTable",
    "LlmSettings",
    "NoCaps",
    "OrchestrationSettings",
    "RecheckTrackingCaps",
    "RemediationCaps",
    "RerunWithMoreMemoryCaps",
    "RestartTrackingServerCaps",
    "RetryWithDebugCaps",
    "RetryWorkflowCaps",
    "check_config",
    "expand_env",
    "format_duration",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_memory",
    "problems_from",
]
