"""app.yaml's `runtime` section: claim leases, the heartbeat's intervals, workers and Slack pacing."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, Field

from bot.config.durations import Duration, PositiveDuration, between
from bot.config.section import Section
from bot.config.values import Count, int_range, not_bool


class RuntimeSettings(Section):
    # how long a claim on a timer, an outbox row or a stored Slack request lasts unless its process renews
    # it: work a process was doing when it died is taken up again this long afterwards
    claim_lease: Annotated[Duration, between(timedelta(seconds=2), timedelta(hours=1))] = timedelta(
        seconds=30
    )
    timer_interval: PositiveDuration = timedelta(seconds=1)
    outbox_interval: PositiveDuration = timedelta(milliseconds=500)
    l1_workers: Annotated[Count, int_range(1, 32)] = 4
    slack_rate_per_channel: Annotated[float, BeforeValidator(not_bool), Field(gt=0, le=100)] = 1.0
    slack_burst: Annotated[Count, int_range(1, 100)] = 3
    migrate_on_start: bool = True  # false: `escalation-bot db upgrade` is run by hand (or by a deploy job)
    # on SIGTERM: stop taking work, let work in hand finish for up to this long, release the rest's claims
    shutdown_grace: Annotated[Duration, between(timedelta(seconds=1), timedelta(seconds=9))] = timedelta(
        seconds=8
    )
