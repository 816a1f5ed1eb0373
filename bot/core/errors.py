"""One hierarchy for contract violations; expected failures are values (CheckResult, AttemptResult).

BotError
├── ConfigError           app.yaml or the environment is wrong (carries every problem with its key path)
├── InputError            an inbound payload is malformed (carries the field that is wrong)
├── NotAllowed            someone acted at a level they may not act at
├── Conflict              the incident already moved on (carries who moved it)
├── NotFound              no such incident / decision
├── Superseded            another process took over the work (its claim ran out); nothing more is applied
└── IntegrationError      an outside system failed (Slack, Kubernetes, MLflow, Anthropic)
    └── RetryableError    … and trying again later may work (429, 5xx, connection); carries retry_after
"""

from __future__ import annotations


class BotError(Exception):
    """Base of every error the bot raises on purpose."""


class ConfigError(BotError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class InputError(BotError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class NotAllowed(BotError):
    pass


class Conflict(BotError):
    def __init__(self, message: str, by: str | None = None) -> None:
        super().__init__(message)
        self.by = by


class NotFound(BotError):
    pass


class Superseded(BotError):
    pass


class IntegrationError(BotError):
    def __init__(self, system: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{system}: {message}")
        self.system = system
        self.status = status


class RetryableError(IntegrationError):
    def __init__(
        self, system: str, message: str, status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(system, message, status)
        self.retry_after = retry_after
