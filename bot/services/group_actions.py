"""What people do to a group of incidents escalated together: acknowledge, resolve or escalate every
member still waiting at the group's level, each through its own transition (so each member's state,
timeline and message follow), then say on the group's message who did what to how many."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from bot.core.clock import Clock
from bot.core.errors import Conflict, NotAllowed, NotFound
from bot.core.models import IncidentStatus, Level, StrategicTrigger
from bot.services import grouping
from bot.services.incidents import IncidentService, Reply
from bot.services.messages import Composer
from bot.store.db import session_scope
from bot.store.tables import EscalationGroup, Incident


class GroupActions:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        composer: Composer,
        incidents: IncidentService,
        kick: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.composer = composer
        self.incidents = incidents
        self._kick = kick

    def waiting(self, group_id: int, level: Level, user_id: str) -> tuple[EscalationGroup, list[Incident]]:
        """The group and its members still waiting at `level`; NotFound, Conflict or NotAllowed when the
        group is not there, not at that level, waits no more, or `user_id` may not act on it."""
        with Session(self.engine) as s:
            group = s.get(EscalationGroup, group_id)
            if group is None:
                raise NotFound(f"escalation group {group_id} does not exist")
            if group.level != level.value:
                raise Conflict(f"this group was escalated at {group.level}, not {level}")
            left = grouping.waiting(group, grouping.members(s, group_id))
        if not left:
            raise Conflict("No incident of this group waits here any more; each one's message says why.")
        self.incidents.check_allowed(left[0].id or 0, level, user_id)
        return group, left

    def acknowledge(self, group_id: int, level: Level, user_id: str) -> Reply:
        _, left = self.waiting(group_id, level, user_id)
        done = self._each(left, IncidentStatus.OPEN, lambda i: self.incidents.acknowledge(i, level, user_id))
        return self._told(group_id, "acknowledged", user_id, done, "acknowledged")

    def resolve(self, group_id: int, level: Level, user_id: str, note: str) -> Reply:
        _, left = self.waiting(group_id, level, user_id)
        done = self._each(left, None, lambda i: self.incidents.resolve(i, level, user_id, note))
        return self._told(group_id, "resolved", user_id, done, "resolved", note=note)

    def escalate(self, group_id: int, user_id: str, trigger: StrategicTrigger, reason: str) -> Reply:
        _, left = self.waiting(group_id, Level.L2, user_id)
        done = self._each(left, None, lambda i: self.incidents.escalate_to_l3(i, user_id, trigger, reason))
        return self._told(
            group_id,
            "escalated",
            user_id,
            done,
            "escalated to the tech lead",
            to="the tech lead",
            note=reason,
        )

    @staticmethod
    def _each(left: list[Incident], only: IncidentStatus | None, act: Callable[[int], Reply]) -> int:
        """Act on each member (in `only` state, when given); one that moved on meanwhile is skipped."""
        done = 0
        for inc in left:
            if only is not None and inc.status != only.value:
                continue
            try:
                act(inc.id or 0)
                done += 1
            except (Conflict, NotAllowed):
                continue  # handled alone meanwhile, or kept by an older policy: its own message says so
        return done

    def _told(self, group_id: int, kind: str, user_id: str, done: int, what: str, **values: str) -> Reply:
        if done == 0:
            raise Conflict("Nothing was left to do: every incident of this group had moved on already.")
        now: datetime = self.clock.now()
        line = self.composer.outcome(kind, user_id, now, **values)
        with session_scope(self.engine) as s:
            group = s.get(EscalationGroup, group_id)
            if group is not None:
                count = f" ({done} incident{'' if done == 1 else 's'})"
                group.outcome = "\n".join(filter(None, [group.outcome, line + count]))
                grouping.show(s, self.composer, group, now, None)
        self._kick()
        return Reply(f"You {what} {done} incident{'' if done == 1 else 's'} of this group.")
