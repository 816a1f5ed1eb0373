"""app.yaml's `slack` section: channels, slash commands and how the app presents itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field, model_validator

from bot.config.durations import Duration, PositiveDuration
from bot.config.errors import KeyProblems
from bot.config.names import ChannelRef, CommandName, HttpUrl
from bot.config.section import Section


class Channels(Section):
    alerts: ChannelRef = "#ml-alerts"
    coordinator: ChannelRef = "#data-coordinator"
    tech_lead: ChannelRef = "#tech-leads"
    decisions: ChannelRef = "#ml-decisions"
    admin: ChannelRef | None = None


class Commands(Section):
    escalate: CommandName = "/escalate"
    escalation: CommandName = "/escalation"

    @model_validator(mode="after")
    def _distinct(self) -> Commands:
        if self.escalate == self.escalation:
            raise KeyProblems([(("escalation",), "must differ from slack.commands.escalate")])
        return self


class SlackSettings(Section):
    channels: Channels = Field(default_factory=Channels)
    commands: Commands = Field(default_factory=Commands)
    group_cache_ttl: Duration = timedelta(minutes=5)
    # the App Home tab of someone who opened it is published again when incidents change, at most this often
    home_refresh: PositiveDuration = timedelta(seconds=30)
    app_name: Annotated[str, Field(min_length=1, max_length=35)] = "escalation-bot"
    public_url: HttpUrl | None = None
    alert_channels: list[ChannelRef] = Field(
        default_factory=list
    )  # other bots post alerts here; [] = channels.alerts
