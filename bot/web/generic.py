"""POST /alerts/generic: one JSON alert, or {"alerts": [...]}, in the documented schema."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.core.errors import InputError
from bot.core.models import AlertIn
from bot.integrations.alerts.payload import Parsed, Refused, check_count, field_path, load_json, outcome
from bot.web.pipeline import Source, bearer, parsed_by


class GenericAlert(BaseModel):
    """The documented schema of POST /alerts/generic (one alert, or {"alerts": [...]})."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=500)
    status: Literal["firing", "resolved"] = "firing"
    fingerprint: str | None = Field(default=None, max_length=200)
    severity: str | None = None
    text: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


def parse_generic(body: bytes, max_alerts: int) -> Parsed:
    """One alert or {"alerts": [...]}; an alert that does not fit the schema is refused by index and title
    while the others are accepted (InputError when none is left, or the shape itself is wrong)."""
    data = load_json(body)
    items = data.get("alerts") if isinstance(data, dict) and "alerts" in data else [data]
    if not isinstance(items, list) or not items:
        raise InputError("alerts", 'expected an alert object or {"alerts": [...]} with at least one alert')
    check_count(items, max_alerts)
    parsed = Parsed()
    for i, item in enumerate(items):
        try:
            a = GenericAlert.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = field_path(tuple(err["loc"]))
            field = (
                (f"alerts[{i}].{where}" if where else f"alerts[{i}]") if len(items) > 1 else (where or "body")
            )
            title = item.get("title") if isinstance(item, dict) else None
            name = title if isinstance(title, str) and title else f"alerts[{i}]"
            parsed.refused.append(Refused(i, name[:200], field, err["msg"].lower()))
            continue
        parsed.alerts.append(_alert(a))
    return outcome(parsed)


def _alert(a: GenericAlert) -> AlertIn:
    fp = (
        a.fingerprint
        or hashlib.sha256(json.dumps([a.title, sorted(a.labels.items())]).encode()).hexdigest()[:16]
    )
    return AlertIn(
        source="generic",
        fingerprint=f"gen:{fp}",
        status=a.status,
        title=a.title,
        text=a.text,
        labels=a.labels,
        annotations=a.annotations,
        severity=a.severity or a.labels.get("severity"),
        raw=a.model_dump(),
    )


GENERIC = Source("generic", bearer, parsed_by("generic", parse_generic, "invalid alert"))
