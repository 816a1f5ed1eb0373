"""Tables of what the bot learns: the tokens Claude used per incident, and every resolution, kept so the
next similar incident can show it (searched with the database's own full-text search, migration 0009)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class LlmUsage(SQLModel, table=True):
    """One request to the language model: what it was for, how it ended and the tokens it used."""

    __tablename__ = "llm_usage"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int | None = Field(default=None, index=True)
    purpose: str = Field(max_length=32)  # investigate, draft, decision, answer
    model: str = Field(max_length=128)  # the model id, or "rule-based" for a fallback
    outcome: str = Field(max_length=32)  # "answer" or a FallbackReason
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    steps: int = 0
    at: datetime = Field(index=True)


class Resolution(SQLModel, table=True):
    """How one incident was resolved: the fix, the decision and the note, with what it was about.

    `body` is the searchable text (title, category, pipeline, target, labels, fix, decision and note); on
    SQLite a trigger copies it into the FTS5 table `resolutions_fts`, on PostgreSQL a generated tsvector
    column `search` (not mapped here) indexes it."""

    __tablename__ = "resolutions"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    category: str = Field(max_length=40)
    pipeline: str | None = Field(default=None, max_length=255, index=True)
    target_key: str | None = Field(default=None, max_length=512, index=True)
    title: str
    labels: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    level: str = Field(max_length=4)  # where it was resolved: L1 … L4
    fix: str | None = Field(default=None, max_length=80)  # the remediation that fixed it, if one did
    fix_summary: str = ""  # what that remediation did ("memory raised to 8Gi")
    decision: str | None = None  # the L4 option chosen, if any
    note: str = ""  # the resolution note people wrote (redacted)
    resolved_by: str | None = None
    resolved_at: datetime
    body: str = ""
