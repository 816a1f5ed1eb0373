"""The Details button: the evidence behind an incident's message, for the people the incident is for.

Evidence is read-only but can say more than the message (log tails, object specs, redacted as they are),
so it is shown to whoever may act on the incident at any level, and to people in a channel the incident
was posted to (the click comes from there: they see its messages already). Anyone else is told why not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.core.errors import NotAllowed
from bot.core.models import Category, IncidentStatus, Level
from bot.core.policy import actors_for, is_allowed, policy_of
from bot.integrations.slack.evidence_modal import About, details_modal
from bot.services import drafts, evidence, readable
from bot.services.messages import fmt_time
from bot.services.records import incident
from bot.services.views import Views
from bot.store.tables import Incident, OutboxMessage

if TYPE_CHECKING:
    from bot.services.container import Services

Membership = Callable[[list[str]], dict[str, set[str]]]
Where = tuple[str | None, str | None]  # the channel a button was clicked in: (id, name)


class IncidentDetails:
    def __init__(
        self, engine: Engine, membership: Membership, views: Views, run_url: evidence.RunUrl | None = None
    ) -> None:
        self.engine = engine
        self._membership = membership
        self.views = views
        self._run_url = run_url

    @classmethod
    def of(cls, services: Services) -> IncidentDetails:
        """Built from the bot's services: the MLflow gateway (when there is one) links runs to their page."""
        mlflow = services.level1.deps.mlflow
        run_url = getattr(mlflow, "run_url", None)
        return cls(services.engine, services.groups.membership, services.views, run_url)

    def open(
        self,
        incident_id: int,
        level: Level,
        user_id: str,
        channel: Where,
        trigger: str,
    ) -> None:
        """Open the Details modal of INC-`incident_id` for `user_id`, who clicked in `channel` (id, name);
        NotAllowed, naming who may see it, when they are not one of them."""
        with Session(self.engine) as s:
            inc = incident(s, incident_id)
            if not self.may_read(s, inc, user_id, channel):
                raise NotAllowed(self.why_not(inc))
            found = evidence.load(s, inc, run_url=self._run_url)
        shown = IncidentStatus(inc.status).value.replace("_", " ")
        investigated = drafts.investigation_of(inc)
        about = About(
            inc.id or 0,
            Category(inc.category).label,
            inc.title,
            f"{inc.level} · {shown} · {readable.urgency(inc)} · opened {fmt_time(inc.opened_at)}",
            readable.links_line(found.links),
            {k: str(v) for k, v in (inc.fields or {}).items()},
            tuple(drafts.cause_lines(investigated)),
            drafts.drafted_line(investigated),
        )
        meta: dict[str, Any] = {"incident_id": incident_id, "level": level.value, "channel": channel[0]}
        self.views.open(trigger, user_id, lambda private: details_modal(about, found, private), meta)

    def may_read(self, s: Session, inc: Incident, user_id: str, channel: Where) -> bool:
        """In a channel the incident was posted to, or one who may act on it at some level."""
        channel_id, channel_name = channel
        if channel_id and channel_id in _posted_in(s, inc):
            return True
        if channel_name and f"#{channel_name.lstrip('#')}" in _level_channels(inc):
            return True
        entries = _actors(inc)
        return bool(entries) and is_allowed(user_id, entries, self._membership(entries))

    @staticmethod
    def why_not(inc: Incident) -> str:
        actors = ", ".join(_actors(inc)) or "nobody"
        channels = ", ".join(sorted(_level_channels(inc)))
        return (
            f"The details of INC-{inc.id} are for {actors} and for people in the channels it is escalated "
            f"in ({channels}); you are neither, so they were not opened."
        )


def _actors(inc: Incident) -> list[str]:
    """Everyone who may act on the incident at some level, in the order app.yaml names them."""
    policy = policy_of(inc)
    entries = [e for level in Level for e in actors_for(level, policy)]
    return list(dict.fromkeys(entries))


def _level_channels(inc: Incident) -> set[str]:
    """The channels of the protocol's levels (alerts, coordinator, tech lead, decisions), by name."""
    policy = policy_of(inc)
    return {policy.channel_for(level) for level in Level}


def _posted_in(s: Session, inc: Incident) -> set[str]:
    """The channel ids the bot posted this incident's messages in, and the alert's own channel."""
    query = select(OutboxMessage.result_channel).where(
        col(OutboxMessage.incident_id) == inc.id,
        col(OutboxMessage.kind) == "post",
        col(OutboxMessage.result_channel).is_not(None),
    )
    found = {str(c) for c in s.exec(query.distinct())}
    return found | ({inc.alert_channel} if inc.alert_channel else set())
