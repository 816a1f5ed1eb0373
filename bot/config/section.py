"""The base of every app.yaml section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base of every app.yaml section: unknown keys are errors and values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
