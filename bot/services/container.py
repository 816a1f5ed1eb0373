"""The one object handlers and the web layer receive: every service of one bot process."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text

from bot.config import AppConfig, Env
from bot.core.clock import Clock
from bot.integrations.slack.groups import GroupResolver
from bot.integrations.slack.outbox import OutboxDelivery
from bot.metrics import Metrics
from bot.services.answers import Answers
from bot.services.assistant import Assistant
from bot.services.deliveries import DeliveryQueue
from bot.services.engine import IncidentEngine
from bot.services.foreground import Foreground
from bot.services.group_actions import GroupActions
from bot.services.home import HomeService
from bot.services.inbox import Inbox
from bot.services.incidents import IncidentService
from bot.services.intake import IntakeService
from bot.services.level1 import Level1Service
from bot.services.manual import ManualEscalation
from bot.services.messages import Composer
from bot.services.queries import IncidentQueries
from bot.services.replies import Replies
from bot.services.requests import ProcessedRequests
from bot.services.snooze import Snoozes
from bot.services.timers import TimerService
from bot.services.views import Views


@dataclass
class Services:
    """The one object handlers and the web layer receive."""

    config: AppConfig
    env: Env
    clock: Clock
    engine: Engine
    metrics: Metrics
    composer: Composer
    transitions: IncidentEngine
    incidents: IncidentService
    queries: IncidentQueries
    replies: Replies
    requests: ProcessedRequests
    intake: IntakeService
    manual: ManualEscalation
    level1: Level1Service
    timers: TimerService
    outbox: OutboxDelivery
    groups: GroupResolver
    inbox: Inbox
    views: Views
    deliveries: DeliveryQueue
    foreground: Foreground  # requests someone waits on: background work steps aside for them
    escalation_groups: GroupActions  # a storm's incidents escalated together, acted on together
    snoozes: Snoozes  # "not now": an L2/L3 incident's reminder and deadline wait a while
    home: HomeService  # the App Home tab of each person who opened it
    assistant: Assistant  # Claude's investigation, drafts and answers (rule-based without a key)
    answers: Answers  # questions asked in an incident's thread, answered from its record

    def ready(self) -> tuple[bool, str]:
        """Ready when the database takes writes: a write that changes nothing, in a transaction that is
        rolled back (a read-only or unreachable database fails it; a plain SELECT would pass)."""
        try:
            with self.engine.connect() as conn, conn.begin() as tx:
                conn.execute(text("UPDATE alembic_version SET version_num = version_num WHERE 1 = 0"))
                tx.rollback()
        except Exception as exc:
            cause = (
                str(getattr(exc, "orig", exc)).strip().splitlines()[0]
                if str(exc).strip()
                else type(exc).__name__
            )
            return False, f"not ready: the database does not take writes ({cause})"
        return True, "ok"
