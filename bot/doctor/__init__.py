"""`escalation-bot doctor`: can the bot reach everything its config turns on, with the rights it needs?

Checks run in order (environment, database, Slack, Kubernetes, MLflow, feature store, Claude); each
prints ✓, or ✗ with what is wrong and the fix in one line. A check that raises is one failed line, never
a traceback; `--json` prints the same verdicts as one document."""

from __future__ import annotations

from typing import TextIO

from bot.config import AppConfig, Env
from bot.core.redact import remember_secrets
from bot.doctor.kube import kubernetes_checks
from bot.doctor.report import Report, cause
from bot.doctor.services import claude_check, mlflow_check
from bot.doctor.slack import slack_checks, slack_problem
from bot.doctor.stores import database_check, feature_store_checks

__all__ = ["cause", "run_doctor", "slack_problem"]


def run_doctor(config: AppConfig, env: Env, out: TextIO, as_json: bool = False) -> int:
    """Run every check the config turns on and print the report; exit status 1 when anything failed."""
    remember_secrets(env.secret_values())  # masked wherever a driver or server quotes them
    report = Report()
    with report.guarded("environment"):
        problems = env.problems_for_run()
        for problem in problems:
            # "NAME: what is wrong" (never the value); the name goes first so it is not taken for a secret
            variable, _, what = problem.partition(": ")
            fix = "set it in the bot's environment (a Secret in Kubernetes)"
            report.add(f"environment variable {variable}", False, what, fix)
        if not problems:
            report.add("environment", True, "the variables `run` needs are set")
    with report.guarded("database"):
        database_check(config, env, report)
    with report.guarded("Slack"):
        slack_checks(config, env, report)
    with report.guarded("Kubernetes"):
        kubernetes_checks(config, env, report)
    with report.guarded("MLflow"):
        mlflow_check(config, env, report)
    with report.guarded("feature store"):
        feature_store_checks(config, report)
    with report.guarded("Claude"):
        claude_check(config, env, report)
    return report.write(out, as_json)
