"""The Slack Web API client the bot uses (one per process, built in bot.app)."""

from __future__ import annotations

from slack_sdk import WebClient


def make_client(token: str, api_url: str | None, timeout: float = 10.0) -> WebClient:
    """A WebClient pointed at Slack or at SLACK_API_URL; 429s and 5xx are handled by the outbox, not here."""
    kwargs: dict[str, object] = {"token": token, "timeout": int(timeout)}
    if api_url:
        kwargs["base_url"] = api_url if api_url.endswith("/") else api_url + "/"
    # No retries in place: slack_sdk's connection-error handler re-sends a post whose answer was lost,
    # which posts twice. The outbox retries instead, after checking whether the first try landed.
    kwargs["retry_handlers"] = []
    return WebClient(**kwargs)  # type: ignore[arg-type]
