"""Names app.yaml refers to things by: Slack channels, commands, groups and people; URLs; Kubernetes
namespaces and objects. Each refuses a wrong one with an example of a right one."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from bot.config.values import matching


def _channel(value: str) -> str:
    if re.fullmatch(r"[CG][A-Z0-9]{6,}", value):
        return value
    if not value.startswith("#"):
        raise PydanticCustomError("channel", "must start with '#' or be a channel id")
    if not re.fullmatch(r"#[a-z0-9_\-.]{1,80}", value):
        raise PydanticCustomError(
            "channel",
            "must be a channel name like '#ml-alerts' (lowercase, no spaces, at most 80 characters)",
        )
    return value


def _channel_given(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError(
            "channel_missing", "needs a value (quote channel names: an unquoted # starts a YAML comment)"
        )
    return value


def _command(value: str) -> str:
    if not value.startswith("/"):
        raise PydanticCustomError("command", "must start with '/'")
    if len(value) > 32:
        raise PydanticCustomError("command", "must be at most 32 characters")
    if not re.fullmatch(r"/[a-z0-9_\-]+", value):
        raise PydanticCustomError("command", "must be a command like '/escalate' (lowercase, no spaces)")
    return value


_HANDLE = r"@[a-z0-9][a-z0-9._\-]{0,79}"
ChannelRef = Annotated[str, BeforeValidator(_channel_given), AfterValidator(_channel)]
CommandName = Annotated[str, AfterValidator(_command)]
GroupRef = Annotated[
    str,
    matching(
        rf"{_HANDLE}|S[A-Z0-9]{{6,}}",
        "must be a user-group handle like '@data-coordinator' or a group id (S…)",
    ),
]
ActorRef = Annotated[
    str,
    matching(
        rf"{_HANDLE}|[SUW][A-Z0-9]{{6,}}",
        "must be a handle like '@data-coordinator', a group id (S…) or a user id (U…/W…)",
    ),
]
HttpUrl = Annotated[str, matching(r"https?://[^\s/?#]+[^\s?#]*", "must be an http(s) URL without a query")]
Namespace = Annotated[
    str,
    matching(r"(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?", "must be a DNS-1123 label like 'ml-pipelines'"),
]
ObjectRef = Annotated[
    str,
    matching(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$", "must be 'namespace/name'"),
]
