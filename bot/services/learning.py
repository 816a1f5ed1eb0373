"""Learning from resolutions: every resolved incident is kept (`resolutions`), and a new incident is shown
the most similar resolved ones, found by the database's own full-text search plus exact target matches.

(Being built: `record`, `similar` and `fixed_before` return nothing yet.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine

from bot.store.tables import Incident


@dataclass(frozen=True)
class Past:
    """One resolved incident like this one, as a new incident shows it."""

    incident_id: int
    title: str
    category: str
    level: str  # where it was resolved
    resolved_at: str  # ISO time
    same_target: bool  # the same pipeline/Job/model/feature table, not only similar words
    fix: str | None = None  # the remediation that fixed it
    fix_summary: str = ""
    decision: str | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def similar(engine: Engine, inc: Incident, limit: int = 3) -> list[Past]:
    """The most similar resolved incidents, same target first, then by full-text rank."""
    return []


def fixed_before(engine: Engine, inc: Incident) -> list[str]:
    """Remediations that fixed this incident's target before, the most recent first."""
    return []
