"""`escalation-bot doctor`: can the bot reach everything it needs, with the rights it needs?"""

from __future__ import annotations

import urllib.request
from typing import Any, TextIO

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.config import AppConfig, Env
from bot.core.redact import redact
from bot.integrations.slack.client import make_client
from bot.manifest import BOT_SCOPES


def cause(exc: BaseException) -> str:
    """The first line of what went wrong, redacted (a driver's error can quote the URL it was given)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


def slack_problem(env: Env, exc: BaseException) -> str:
    """What failed when the bot tried Slack, and how to fix it, in one line."""
    where = env.slack_api_url or "https://slack.com/api/"
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error", "") if exc.response is not None else ""
        if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked"):
            return f"Slack refused SLACK_BOT_TOKEN ({error}): reinstall the app and set the new bot token"
        return f"Slack at {where} answered {error or exc.response.status_code}: check SLACK_API_URL"
    return (
        f"cannot reach Slack at {where} ({cause(exc)}): check SLACK_API_URL (unset means Slack itself), "
        "DNS and the network or proxy"
    )


def run_doctor(config: AppConfig, env: Env, out: TextIO) -> int:
    """Print one line per check (✓ or ✗ with what to do); exit status 1 when anything failed."""
    failures = 0

    def report(ok: bool, what: str, fix: str = "") -> None:
        nonlocal failures
        failures += 0 if ok else 1
        out.write(f"{'✓' if ok else '✗'} {what}{'' if ok or not fix else f': {fix}'}\n")

    for problem in env.problems_for_run():
        report(False, "environment", problem)
    if env.slack_bot_token:
        client = make_client(env.slack_bot_token.get_secret_value(), env.slack_api_url)
        try:
            auth = client.auth_test()
            report(True, f"Slack token works (bot {auth.get('user')} in {auth.get('team')})")
            granted = set(filter(None, (auth.headers.get("x-oauth-scopes") or "").split(",")))
            missing = sorted(set(BOT_SCOPES) - granted) if granted else []
            report(
                not missing,
                "bot scopes",
                f"missing {', '.join(missing)}; reinstall the app from `escalation-bot manifest`",
            )
            channels = {}
            cursor = None
            while True:
                page = client.conversations_list(
                    limit=200, cursor=cursor, types="public_channel,private_channel"
                )
                page_channels: list[dict[str, Any]] = page.get("channels", [])
                for c in page_channels:
                    channels[f"#{c['name']}"] = c
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
            ch = config.slack.channels
            for name in filter(None, [ch.alerts, ch.coordinator, ch.tech_lead, ch.decisions, ch.admin]):
                found = channels.get(name)
                report(
                    bool(found and found.get("is_member")),
                    f"channel {name}",
                    "not found"
                    if not found
                    else f"invite the bot: /invite @{config.slack.app_name} in {name}",
                )
            listed: list[dict[str, Any]] = client.usergroups_list().get("usergroups", [])
            groups = {f"@{g['handle']}" for g in listed}
            lv = config.levels
            for entry in {lv.l2.group, lv.l3.group, *lv.l2.actors, *lv.l3.actors, *lv.l4.deciders}:
                if entry.startswith("@"):
                    report(entry in groups, f"user group {entry}", "no such user group in this workspace")
        except (SlackApiError, SlackClientError, OSError) as exc:
            report(False, "Slack", slack_problem(env, exc))
    if env.kubeconfig:
        from bot.integrations.kubernetes import KubeGateway

        kube = KubeGateway.from_kubeconfig(env.kubeconfig, config.kubernetes.cluster_name)
        report(kube is not None, "Kubernetes config", "KUBECONFIG could not be loaded")
        if kube is not None:
            for ns in config.kubernetes.namespaces:
                try:
                    kube.list_job_pods(ns, "escalation-bot-doctor-probe")
                    report(True, f"Kubernetes namespace {ns} readable")
                except Exception as exc:
                    report(False, f"Kubernetes namespace {ns}", str(exc))
    else:
        report(True, "Kubernetes not configured (KUBECONFIG unset): Level 1 skips Kubernetes checks")
    if env.mlflow_tracking_uri:
        try:
            with urllib.request.urlopen(env.mlflow_tracking_uri.rstrip("/") + "/health", timeout=5) as resp:
                report(resp.status == 200, f"MLflow at {env.mlflow_tracking_uri}")
        except Exception as exc:
            report(False, f"MLflow at {env.mlflow_tracking_uri}", str(exc))
    out.write("all checks passed\n" if not failures else f"{failures} check(s) failed\n")
    return 1 if failures else 0
