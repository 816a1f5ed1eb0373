"""What people do to a group of incidents escalated together: acknowledge, resolve or escalate every
member still waiting at the group's level, each through its own transition (so each member's state,
timeline and message follow), then say on the group's message who did what to how many; or split one
member out, to be handled alone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from bot.core.clock import Clock
from bot.core.errors import Conflict, NotAllowed, NotFound
from bot.core.models import IncidentStatus, Level, StrategicTrigger
from bot.integrations.slack.outbox import enqueue
from bot.services import group_decisions, group_pages, grouping, records
from bot.services.incidents import IncidentService, Reply
from bot.services.messages import Composer, fmt_time
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

    def split(self, incident_id: int, level: Level, user_id: str) -> Reply:
        """Take one member out of its group, to be handled alone: it gets a message of its own in the
        level's channel (its page in the group's thread drops it), the group's buttons no longer act on it,
        and its reminders are its own again."""
        wanted = {IncidentStatus(state) for state in grouping.waiting_states(level)}
        self.incidents.check_can_act(incident_id, level, user_id, wanted)
        now: datetime = self.clock.now()
        with session_scope(self.engine) as s:
            inc = records.incident(s, incident_id, lock=True)
            if inc.level != level.value or IncidentStatus(inc.status) not in wanted:
                raise Conflict(f"INC-{incident_id} moved on meanwhile; its message says where it is now.")
            esc = records.latest_escalation(s, incident_id, level)
            found = grouping.group_of(s, esc) if esc is not None else None
            group = grouping.locked(s, found.id or 0) if found is not None else None  # its outcome line too
            if esc is None or group is None:
                raise Conflict(
                    f"INC-{incident_id} is not escalated with a group at {level}; it is handled alone."
                )
            page = esc.outbox_id if esc.on_page else None
            esc.group_id, esc.on_page, esc.split_by = None, False, user_id
            dec = records.latest_decision(s, incident_id) if level is Level.L4 else None
            if dec is not None:  # its decision, asked on its own like any other
                payload = self.composer.decision(inc, dec)
                dec.outbox_id = enqueue(s, now, "post", incident_id=inc.id, channel=esc.channel, **payload).id
                s.add(dec)
            elif page is not None:  # it was a line on a page: now a message of its own, like any escalation
                payload = self.composer.escalation(inc, esc, IncidentStatus(inc.status), esc.outcome)
                esc.outbox_id = enqueue(s, now, "post", incident_id=inc.id, channel=esc.channel, **payload).id
            s.add(esc)
            line = f":scissors: INC-{incident_id} split out by <@{user_id}> at {fmt_time(now)}: handled alone"
            group.outcome = "\n".join(filter(None, [group.outcome, line]))
            s.flush()
            records.timeline(s, incident_id, now, "split_out", user_id, level=level.value, group=group.id)
            if page is not None:
                group_pages.show_page(s, self.composer, group, page, now)
            grouping.show(s, self.composer, group, now, None)
        self._kick()
        return Reply(
            f"INC-{incident_id} is now handled alone, in a message of its own; "
            "the group's buttons no longer act on it."
        )

    def decide(self, group_id: int, index: int, digest: str, user_id: str) -> tuple[Reply, list[int], str]:
        """Choose the `index`th of the options the group's message offered (`digest` names them) for every
        member still waiting for a decision, each through its own decision, recorded as if decided alone;
        the decisions made, for the rationale, and the option's label."""
        self.waiting(group_id, Level.L4, user_id)  # there, still waiting, and `user_id` may decide
        with Session(self.engine) as s:
            pending = group_decisions.pending_decisions(s, grouping.members(s, group_id))
        offered = group_decisions.common_options([dec for _, dec in pending])
        if group_decisions.options_digest(offered) != digest or not 0 <= index < len(offered):
            raise Conflict(
                "The options changed since this message was drawn; choose again on it as it is now."
            )
        label = str(offered[index].get("label"))
        made: list[int] = []
        for _, dec in pending:
            own = next((i for i, o in enumerate(dec.options) if o.get("label") == label), None)
            if own is None:
                continue  # this one offers no such option: it waits for its own, in the group's thread
            try:
                self.incidents.decide(dec.id or 0, own, user_id)
                made.append(dec.id or 0)
            except (Conflict, NotAllowed):
                continue
        told = self._told(group_id, "decided", user_id, len(made), f"chose “{label}” for", choice=label)
        return told, made, label

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
            # locked: two clicks at once each add their line, neither loses the other's
            group = grouping.locked(s, group_id)
            if group is not None:
                count = f" ({done} incident{'' if done == 1 else 's'})"
                group.outcome = "\n".join(filter(None, [group.outcome, line + count]))
                grouping.show(s, self.composer, group, now, None)
        self._kick()
        return Reply(f"You {what} {done} incident{'' if done == 1 else 's'} of this group.")
