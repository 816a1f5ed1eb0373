"""Alertmanager webhook (version 4) → AlertIn, with errors that name the offending field."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.core.errors import InputError
from bot.core.models import AlertIn
from bot.core.redact import redact

ZERO_TIME = "0001-01-01T00:00:00Z"


class _Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: str | None = None
    generatorURL: str | None = None
    fingerprint: str | None = None


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: str
    groupKey: str
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    truncatedAlerts: int = 0
    alerts: list[_Alert] = Field(min_length=1)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")


def parse_alertmanager(body: bytes) -> list[AlertIn]:
    """Parse one webhook delivery; raises InputError naming the first wrong field."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError("body", f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError("body", "expected a JSON object")
    try:
        payload = _Payload.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(_field_path(tuple(err["loc"])), err["msg"].lower()) from None
    if payload.version != "4":
        raise InputError("version", f'expected "4", got {payload.version!r}')
    out = []
    for alert in payload.alerts:
        labels = {**payload.commonLabels, **alert.labels}
        annotations = {**payload.commonAnnotations, **alert.annotations}
        name = labels.get("alertname", "alert")
        summary = annotations.get("summary") or annotations.get("description") or ""
        title = redact(f"{name}: {summary}" if summary else name)
        fingerprint = (
            alert.fingerprint or hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]
        )
        out.append(
            AlertIn(
                source="alertmanager",
                fingerprint=f"am:{fingerprint}",
                status=alert.status,
                title=title[:300],
                text=redact(annotations.get("description", "")),
                labels=labels,
                annotations=annotations,
                starts_at=_utc(alert.startsAt),
                group_key=payload.groupKey,
                severity=labels.get("severity"),
                raw=alert.model_dump(mode="json"),
            )
        )
    return out
