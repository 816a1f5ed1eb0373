"""The environment: secrets and endpoints (everything else is in app.yaml). Only this package reads it.

Secrets are SecretStr, so they show as '**********' in repr, str and logs; a caller that needs the raw
value asks for it with `.get_secret_value()`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Env(BaseSettings):
    """Secrets and endpoints from the environment; None when unset or blank."""

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, extra="forbid")

    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str | None = Field(default=None, validation_alias="SLACK_API_URL")
    database_url: SecretStr | None = Field(
        default=None, validation_alias="DATABASE_URL"
    )  # may hold a password
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(default=None, validation_alias="ANTHROPIC_BASE_URL")
    mlflow_tracking_uri: str | None = Field(default=None, validation_alias="MLFLOW_TRACKING_URI")
    kubeconfig: str | None = Field(default=None, validation_alias="KUBECONFIG")
    alert_webhook_token: SecretStr | None = Field(default=None, validation_alias="ALERT_WEBHOOK_TOKEN")
    mlflow_webhook_secret: SecretStr | None = Field(default=None, validation_alias="MLFLOW_WEBHOOK_SECRET")
    anthropic_model: str | None = Field(default=None, validation_alias="ANTHROPIC_MODEL")
    log_format: str | None = Field(default=None, validation_alias="LOG_FORMAT")  # text (default) or json

    def secret_values(self) -> list[str]:
        """Every secret's value, and the password in DATABASE_URL: what must never be shown anywhere."""
        values = [
            v.get_secret_value()
            for k, v in self.__dict__.items()
            if isinstance(v, SecretStr) and k != "database_url"  # the URL itself is shown, its password not
        ]
        if self.database_url is not None:
            password = urlsplit(self.database_url.get_secret_value()).password
            values.append(unquote(password) if password else "")
        return [v for v in values if v]

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return (value.strip() or None) if isinstance(value, str) else value

    @classmethod
    def from_environ(cls, environ: Mapping[str, str | None] | None = None) -> Env:
        """Read the variables from `environ` (the process environment when None); None means unset."""
        if environ is None:
            return cls()
        # Every variable is given, so none is taken from the process environment.
        names = [str(field.validation_alias) for field in cls.model_fields.values()]
        return cls.model_validate({name: environ.get(name) for name in names})

    @property
    def socket_mode(self) -> bool:
        """True when an app-level token is set, so Slack is reached over Socket Mode."""
        return self.slack_app_token is not None

    def problems_for_run(self) -> list[str]:
        """What stops `run` from talking to Slack and the database (values are never echoed)."""
        problems: list[str] = []
        bot_token = self.slack_bot_token.get_secret_value() if self.slack_bot_token else None
        app_token = self.slack_app_token.get_secret_value() if self.slack_app_token else None
        if bot_token is None:
            problems.append("SLACK_BOT_TOKEN: required (the bot token, starting with 'xoxb-')")
        elif not bot_token.startswith("xoxb-"):
            problems.append("SLACK_BOT_TOKEN: must start with 'xoxb-'")
        if self.slack_signing_secret is None and app_token is None:
            problems.append("SLACK_SIGNING_SECRET: required unless SLACK_APP_TOKEN is set (Socket Mode)")
        if app_token is not None and not app_token.startswith("xapp-"):
            problems.append("SLACK_APP_TOKEN: must start with 'xapp-'")
        if self.slack_api_url is not None and not re.match(r"https?://[^\s/]+", self.slack_api_url):
            problems.append("SLACK_API_URL: must be an http(s) URL, e.g. https://slack.com/api/")
        if (self.log_format or "text").lower() not in ("text", "json"):
            given = str(self.log_format)[:40]
            problems.append(f"LOG_FORMAT: must be 'text' or 'json' (one JSON object a line), not {given!r}")
        problem = database_url_problem(self.database_url_or_default(""))
        if problem:
            problems.append(problem)
        return problems

    def database_url_or_default(self, default: str) -> str:
        """DATABASE_URL, or `default` when it is unset."""
        return self.database_url.get_secret_value() if self.database_url else default


def database_url_problem(url: str) -> str | None:
    """What is wrong with DATABASE_URL as written (never its value: it may hold a password), or None."""
    if not url:
        return None
    if not url.startswith(("sqlite", "postgresql", "postgres://")):
        return "DATABASE_URL: must start with 'sqlite' or 'postgresql'"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except (ArgumentError, ValueError):  # e.g. a port that is not a number, an @ in the password
        return (
            "DATABASE_URL: cannot be read as a URL "
            "(the port must be a number; write @ : / in a password as %40 %3A %2F)"
        )
    return None


def expand_env(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace ${VAR} in a config value (e.g. a feature store URL) with the environment's value."""
    env = os.environ if environ is None else environ
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), value)
