"""Investigation after Level 1's checks: Claude, with read-only tools over the same adapters, states a
grounded root cause (bot/llm/cause.py) and drafts the prose of Problem, Impact and Request; without a
key, or when Claude's answer is unusable, the rule-based drafts stand.

(Being built: for now the drafts are always rule-based.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.core.models import L1Outcome
from bot.diagnostics.base import Context
from bot.llm import RULE_BASED, Answer, Fallback, Request
from bot.llm.cause import Investigation
from bot.services.learning import Past
from bot.store.tables import Incident

Ask = Callable[[Request, int | None], Answer | Fallback]  # Assistant.complete: asks and records the cost


def investigate(
    ask: Ask,
    inc: Incident,
    ctx: Context,
    outcome: L1Outcome,
    deadline: datetime,
    similar: list[Past],
) -> Investigation:
    return Investigation(RULE_BASED, says="no ANTHROPIC_API_KEY is set")
