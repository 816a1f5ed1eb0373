"""Which language model the bot gets: Claude when ANTHROPIC_API_KEY is set, else one that only falls back."""

from __future__ import annotations

from anthropic import Anthropic

from bot.config.env import Env
from bot.config.llm import LlmSettings
from bot.core.clock import Clock
from bot.llm.budget import Recorded
from bot.llm.claude import Claude, settle
from bot.llm.port import Answer, Fallback, FallbackReason, LanguageModel, Request
from bot.metrics import Metrics


class RuleBased:
    """The language model without ANTHROPIC_API_KEY: it calls nothing and every draft is rule-based."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def complete(self, request: Request) -> Answer | Fallback:
        no_key = Fallback(FallbackReason.NO_KEY, "ANTHROPIC_API_KEY is not set: no request made")
        return settle(self._metrics, request, no_key)


def language_model(
    settings: LlmSettings, env: Env, metrics: Metrics, clock: Clock, recorded: Recorded | None = None
) -> LanguageModel:
    """Claude on the official SDK, or RuleBased when the key is unset.

    The key is checked here, by name: the SDK would otherwise look for other credentials (an auth token,
    a profile, workload identity) and fail only at the first request. `recorded` gives the tokens every
    process recorded today, so replicas share the daily budget."""
    if env.anthropic_api_key is None:
        return RuleBased(metrics)
    client = Anthropic(
        api_key=env.anthropic_api_key.get_secret_value(),
        base_url=env.anthropic_base_url,  # None: the SDK's default endpoint
        timeout=settings.timeout.total_seconds(),
        max_retries=settings.max_retries,
    )
    return Claude(client, settings, metrics, clock, recorded=recorded)
