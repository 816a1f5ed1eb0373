"""`doctor`'s checks of the services Level 1 and the drafts use: MLflow (reach, whenever the config uses
it) and Claude (which model drafts, or that drafts are rule-based)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from bot.config import AppConfig, Env
from bot.core.redact import redact
from bot.doctor.report import Report

# the remediations that talk to the tracking server or the model registry
MLFLOW_REMEDIATIONS = ("recheck_tracking", "restart_tracking_server", "reregister_model_version")


def mlflow_users(config: AppConfig) -> list[str]:
    """What in the config reads MLflow: its poller and the tracking remediations on the allowlist."""
    users = ["intake.pollers.mlflow_failed_runs"] if config.intake.pollers.mlflow_failed_runs.enabled else []
    return users + [f"remediation {n}" for n in MLFLOW_REMEDIATIONS if n in config.remediation.allowlist]


def mlflow_check(config: AppConfig, env: Env, report: Report) -> None:
    """GET /health on MLFLOW_TRACKING_URI; its absence is a failure when the config uses MLflow."""
    uri = env.mlflow_tracking_uri
    if uri is None:
        users = mlflow_users(config)
        if users:
            detail = f"MLFLOW_TRACKING_URI is not set, but {', '.join(users)} use MLflow"
            fix = "set MLFLOW_TRACKING_URI to the tracking server's URL, or turn those off in app.yaml"
            report.add("MLflow", False, detail, fix)
        else:
            report.add(
                "MLflow", True, "not used (MLFLOW_TRACKING_URI unset, no MLflow poller or remediation)"
            )
        return
    name = f"MLflow at {redact(uri)}"
    started = time.monotonic()
    # a plain GET, as the tracking check's probe does, without importing the MLflow client (seconds)
    try:
        with urllib.request.urlopen(
            uri.rstrip("/") + "/health", timeout=config.mlflow.request_timeout.total_seconds()
        ) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status, error = exc.code, f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        status, error = 0, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    else:
        error = "" if status == 200 else f"HTTP {status}"
    if not error:
        took = round((time.monotonic() - started) * 1000)
        report.add(name, True, f"GET /health answered 200 in {took} ms")
    else:
        fix = "check MLFLOW_TRACKING_URI and that the tracking server is up (GET /health must answer 200)"
        report.add(name, False, f"GET /health: {error}", fix)


def claude_check(config: AppConfig, env: Env, report: Report) -> None:
    """Say who drafts: Claude with the configured model, or the rule-based drafts (not a failure)."""
    if env.anthropic_api_key is None:
        report.add("Claude", True, "ANTHROPIC_API_KEY is not set: drafts are rule-based")
        return
    through = f" through {redact(env.anthropic_base_url)}" if env.anthropic_base_url else ""
    report.add("Claude", True, f"drafts and investigations use {config.llm.model}{through}")
