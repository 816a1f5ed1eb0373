"""Alertmanager webhook (version 4) → AlertIn, with errors that name the offending field. Text is
cleaned and redacted by intake, not here."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.core.errors import InputError
from bot.core.models import AlertIn
from bot.integrations.alerts.payload import Parsed, Refused, check_count, field_path, load_json, outcome

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
    truncatedAlerts: int = Field(default=0, ge=0, le=1_000_000_000)
    alerts: list[Any] = Field(min_length=1)  # each validated on its own: one bad alert is refused alone


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_alertmanager(body: bytes, max_alerts: int) -> Parsed:
    """Parse one webhook delivery. The envelope must be right (InputError names the first wrong field);
    an alert that is wrong is refused by index and name while the others are parsed."""
    data = load_json(body)
    if not isinstance(data, dict):
        raise InputError("body", "expected a JSON object")
    if isinstance(data.get("alerts"), list):
        check_count(data["alerts"], max_alerts)
    try:
        payload = _Payload.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(field_path(tuple(err["loc"])), err["msg"].lower()) from None
    if payload.version != "4":
        raise InputError("version", f'expected "4", got {payload.version!r}')
    parsed = Parsed(truncated=payload.truncatedAlerts)
    for i, item in enumerate(payload.alerts):
        try:
            alert = _Alert.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            labels = item.get("labels") if isinstance(item, dict) else None
            name = labels.get("alertname") if isinstance(labels, dict) else None
            where = field_path(("alerts", i, *err["loc"]))
            parsed.refused.append(Refused(i, str(name or f"alerts[{i}]")[:200], where, err["msg"].lower()))
            continue
        parsed.alerts.append(_alert_in(payload, alert))
    return outcome(parsed)


def _alert_in(payload: _Payload, alert: _Alert) -> AlertIn:
    labels = {**payload.commonLabels, **alert.labels}
    annotations = {**payload.commonAnnotations, **alert.annotations}
    name = labels.get("alertname", "alert")
    summary = annotations.get("summary") or annotations.get("description") or ""
    title = f"{name}: {summary}" if summary else name
    fingerprint = (
        alert.fingerprint or hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]
    )
    return AlertIn(
        source="alertmanager",
        fingerprint=f"am:{fingerprint}",
        status=alert.status,
        title=title[:300],
        text=annotations.get("description", ""),
        labels=labels,
        annotations=annotations,
        starts_at=_utc(alert.startsAt),
        group_key=payload.groupKey,
        severity=labels.get("severity"),
        raw=alert.model_dump(mode="json"),
    )
