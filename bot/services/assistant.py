"""Claude's part in handling an incident, or the rule-based drafts when there is no key.

Every request to the language model goes through `Assistant.complete`, which records the tokens it used
against the incident (`llm_usage`). After Level 1's checks, `after_level1` investigates the cause and
drafts the prose of Problem, Impact and Request (bot/services/investigation.py) and looks up similar
past resolutions (bot/services/learning.py). Before the remediations, `prefer` puts first one that fixed
the same target before. The model never picks a level, a recipient or an action outside the allowlist:
what it returns is text and ids, checked before anything shows it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.config import AppConfig
from bot.core.clock import Clock
from bot.core.models import L1Outcome, Risk
from bot.core.policy import policy_of
from bot.diagnostics.base import Context
from bot.diagnostics.registry import CategoryDiagnostics
from bot.llm import RULE_BASED, Answer, Fallback, LanguageModel, Request
from bot.llm.cause import Investigation
from bot.metrics import Metrics
from bot.services import investigation, learning
from bot.store.db import session_scope
from bot.store.knowledge import LlmUsage
from bot.store.tables import Finding, Incident

log = logging.getLogger(__name__)
T = TypeVar("T")


class Assistant:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        llm: LanguageModel,
        metrics: Metrics,
        config: Callable[[], AppConfig],
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.llm = llm
        self.metrics = metrics
        self.config = config

    def complete(self, request: Request, incident_id: int | None) -> Answer | Fallback:
        """Ask the model (or fall back) and record what it cost against the incident."""
        result = self.llm.complete(request)
        outcome = "answer" if isinstance(result, Answer) else result.reason.value
        model = result.model if isinstance(result, Answer) else RULE_BASED
        with session_scope(self.engine) as s:
            s.add(
                LlmUsage(
                    incident_id=incident_id,
                    purpose=request.purpose[:32],
                    model=model[:128],
                    outcome=outcome,
                    steps=result.steps,
                    at=self.clock.now(),
                    input_tokens=result.usage.input_tokens,
                    output_tokens=result.usage.output_tokens,
                    cache_read_input_tokens=result.usage.cache_read_input_tokens,
                    cache_creation_input_tokens=result.usage.cache_creation_input_tokens,
                )
            )
        return result

    def after_level1(
        self, inc: Incident, ctx: Context, outcome: L1Outcome, deadline: datetime
    ) -> Investigation:
        """What Level 1 hands on: the investigated cause, drafted prose and similar past resolutions."""
        similar = _or_none(lambda: learning.similar(self.engine, inc), inc, "similar incidents") or []
        try:
            rows = self._findings(inc) if not outcome.fixed else []
            found = investigation.investigate(self.complete, inc, ctx, outcome, deadline, similar, rows)
        except Exception:  # the investigation is an aid: a bug in it must not hold up the escalation
            log.exception("INC-%s: the investigation failed; the drafts stay rule-based", inc.id)
            found = Investigation(RULE_BASED, says="the investigation failed")
        found.similar = [p.to_json() for p in similar]
        return found

    def _findings(self, inc: Incident) -> list[Finding]:
        """The findings of this opening of the incident, with the ids Claude cites them by."""
        with Session(self.engine) as s:
            query = select(Finding).where(
                col(Finding.incident_id) == inc.id, col(Finding.at) >= inc.opened_at
            )
            return list(s.exec(query.order_by(col(Finding.id))))

    def prefer(
        self, inc: Incident, diagnostics: CategoryDiagnostics
    ) -> tuple[CategoryDiagnostics, str | None]:
        """The remediations with one that fixed the same target before put first, and its name: only one
        Level 1 may apply by itself (on the incident's allowlist and safe); a risky fix that a person chose
        at Level 4 is shown among similar incidents, never tried first."""
        fixes = _or_none(lambda: learning.fixed_before(self.engine, inc), inc, "fixes that worked") or []
        allowed = policy_of(inc).allowlist
        names = [r.name for r in diagnostics.remediations if r.name in allowed and r.risk is Risk.SAFE]
        first = next((f for f in fixes if f in names), None)
        if first is None or diagnostics.remediations[0].name == first:
            return diagnostics, first
        ordered = sorted(diagnostics.remediations, key=lambda r: r.name != first)
        return CategoryDiagnostics(list(diagnostics.checks), ordered), first


def _or_none(look: Callable[[], list[T]], inc: Incident, what: str) -> list[T] | None:
    """A look into past resolutions, or None when it fails: an aid must not fail Level 1."""
    try:
        return look()
    except Exception:
        log.exception("INC-%s: %s could not be read; Level 1 goes on without them", inc.id, what)
        return None
