"""`doctor`'s Slack checks: the bot token, its scopes, the channels the bot must be in, the user groups."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.config import AppConfig, Env
from bot.doctor.report import Report, cause
from bot.integrations.slack.client import make_client
from bot.manifest import BOT_SCOPES


def slack_trouble(env: Env, exc: BaseException) -> tuple[str, str]:
    """What failed when the bot tried Slack, and how to fix it."""
    where = env.slack_api_url or "https://slack.com/api/"
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error", "") if exc.response is not None else ""
        if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked"):
            return f"Slack refused SLACK_BOT_TOKEN ({error})", "reinstall the app and set the new bot token"
        if error == "ratelimited" or (exc.response is not None and exc.response.status_code == 429):
            # conversations.list pages through every channel: a large workspace can meet Slack's limit
            headers = exc.response.headers if exc.response is not None else {}
            wait = {k.lower(): v for k, v in (headers or {}).items()}.get("retry-after")
            after = f", retry after {wait} s" if wait else ""
            problem = f"Slack rate-limited the calls ({error or 429}{after})"
            return problem, "try again in a minute"
        return f"Slack at {where} answered {error or exc.response.status_code}", "check SLACK_API_URL"
    return (
        f"cannot reach Slack at {where} ({cause(exc)})",
        "check SLACK_API_URL (unset means Slack itself), DNS and the network or proxy",
    )


def slack_problem(env: Env, exc: BaseException) -> str:
    """What failed when the bot tried Slack, and how to fix it, in one line."""
    problem, fix = slack_trouble(env, exc)
    return f"{problem}: {fix}"


def slack_checks(config: AppConfig, env: Env, report: Report) -> None:
    """Token, scopes, channel membership and user groups; one failed line when Slack cannot be reached."""
    if env.slack_bot_token is None:
        return  # the environment check has said so
    client = make_client(env.slack_bot_token.get_secret_value(), env.slack_api_url)
    try:
        auth = client.auth_test()
        report.add("Slack token", True, f"bot {auth.get('user')} in {auth.get('team')}")
        granted = set(filter(None, (auth.headers.get("x-oauth-scopes") or "").split(",")))
        missing = sorted(set(BOT_SCOPES) - granted) if granted else []
        report.add(
            "bot scopes",
            not missing,
            f"missing {', '.join(missing)}" if missing else "",
            "reinstall the app from `escalation-bot manifest`",
        )
        _channels(config, client, report)
        _groups(config, client, report)
    except (SlackApiError, SlackClientError, OSError) as exc:
        problem, fix = slack_trouble(env, exc)
        report.add("Slack", False, problem, fix)


def _channels(config: AppConfig, client: WebClient, report: Report) -> None:
    channels: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        page = client.conversations_list(limit=200, cursor=cursor, types="public_channel,private_channel")
        listed: list[dict[str, Any]] = page.get("channels", [])
        for channel in listed:
            channels[f"#{channel['name']}"] = channel
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    ch = config.slack.channels
    for name in filter(None, [ch.alerts, ch.coordinator, ch.tech_lead, ch.decisions, ch.admin]):
        found = channels.get(name)
        if found is None:
            report.add(
                f"channel {name}", False, "not found", "create it, or change slack.channels in app.yaml"
            )
        else:
            member = bool(found.get("is_member"))
            detail = "" if member else "the bot is not in it"
            report.add(f"channel {name}", member, detail, f"/invite @{config.slack.app_name} in {name}")


def _groups(config: AppConfig, client: WebClient, report: Report) -> None:
    listed: list[dict[str, Any]] = client.usergroups_list().get("usergroups", [])
    groups = {f"@{g['handle']}" for g in listed}
    lv = config.levels
    for entry in sorted({lv.l2.group, lv.l3.group, *lv.l2.actors, *lv.l3.actors, *lv.l4.deciders}):
        if entry.startswith("@"):
            report.add(
                f"user group {entry}",
                entry in groups,
                "" if entry in groups else "no such user group in this workspace",
                "create it in Slack, or change the handle under levels in app.yaml",
            )
