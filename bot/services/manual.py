"""A person's /escalate: the five fields go straight to Level 2 (a person already tried Level 1)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import insert

from bot.config import AppConfig
from bot.core.classify import classify
from bot.core.clock import Clock
from bot.core.errors import InputError
from bot.core.models import AlertIn
from bot.core.policy import Event, policy_of
from bot.core.untrusted import scrub
from bot.metrics import Metrics
from bot.services.engine import IncidentEngine
from bot.services.incidents import NOTE_MAX, Reply
from bot.services.opening import Opening, alert_row, new_incident
from bot.services.snapshot import policy_from_config, rules_of
from bot.store.db import session_scope
from bot.store.tables import Alert, Incident


class ManualEscalation:
    def __init__(
        self,
        transitions: IncidentEngine,
        clock: Clock,
        config: Callable[[], AppConfig],
        metrics: Metrics,
    ) -> None:
        self.transitions = transitions
        self.clock = clock
        self._config = config
        self.metrics = metrics

    def escalate_by_hand(self, user_id: str, fields: dict[str, str]) -> Reply:
        """Open the incident at L2 and say where it went."""
        inc = self.open(user_id, fields)
        return Reply(
            f"INC-{inc.id} is open and posted to {policy_of(inc).channels['coordinator']} for Level 2."
        )

    def open(self, user_id: str, fields: dict[str, str]) -> Incident:
        fields = {k: scrub(str(v))[:NOTE_MAX] for k, v in fields.items()}
        problem = fields.get("problem", "").strip()
        if not problem:
            raise InputError("problem", "say what the problem is")
        now = self.clock.now()
        alert = AlertIn(
            source="slack",
            fingerprint=f"manual:{user_id}:{now.timestamp()}",
            status="firing",
            title=problem[:200],
            text=problem,
        )
        config = self._config()
        found = classify(alert, rules_of(config))
        filled = {
            "problem": problem,
            "attempted": fields.get("attempted") or "Nothing recorded as tried yet (opened by hand)",
            "impact": fields.get("impact") or "Not stated",
            "infrastructure": fields.get("infrastructure") or "Not stated",
            "request": fields.get("request") or found.category.request_text,
        }
        policy = policy_from_config(config, found.category)
        opening = Opening(alert, found, policy, opened_by=user_id, fields=filled)
        with session_scope(self.transitions.engine) as s:
            inc = new_incident(s, now, opening)
            s.execute(insert(Alert), [alert_row(alert, now, inc.id)])
            incident_id = inc.id or 0
        self.metrics.incidents_opened.labels(category=found.category.value).inc()
        self.transitions.transition(incident_id, Event.L1_FAILED, user_id, note="opened by hand")
        return self.transitions.get(incident_id)
