"""What Claude cost, as recorded in `llm_usage`: the tokens of the day (one budget for every replica) and
an incident's total."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from bot.store.knowledge import LlmUsage

_TOTAL = (
    col(LlmUsage.input_tokens)
    + col(LlmUsage.output_tokens)
    + col(LlmUsage.cache_read_input_tokens)
    + col(LlmUsage.cache_creation_input_tokens)
)


def tokens_since(engine: Engine, start: datetime) -> int:
    """Tokens every process recorded since `start`."""
    with Session(engine) as s:
        return int(s.exec(select(func.coalesce(func.sum(_TOTAL), 0)).where(col(LlmUsage.at) >= start)).one())


def tokens_of(engine: Engine, incident_id: int) -> int:
    """Tokens the requests about one incident used."""
    with Session(engine) as s:
        query = select(func.coalesce(func.sum(_TOTAL), 0)).where(col(LlmUsage.incident_id) == incident_id)
        return int(s.exec(query).one())
