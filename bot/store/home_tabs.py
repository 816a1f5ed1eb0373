"""The people who opened the bot's App Home tab, and what was last published there for each."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class HomeTab(SQLModel, table=True):
    """One person's Home tab: it is published when they open it, and again when what it shows changes
    (at most once per `slack.home_refresh`), only for people who opened it."""

    __tablename__ = "home_tabs"

    user_id: str = Field(primary_key=True, max_length=64)
    opened_at: datetime  # the last app_home_opened
    published_at: datetime | None = None  # when a view was last queued for them
    digest: str | None = Field(
        default=None, max_length=64
    )  # sha256 of that view: an unchanged one is not sent
    outbox_id: int | None = (
        None  # that view's outbox row (rewritten instead of queuing another while pending)
    )
