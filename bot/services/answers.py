"""Questions people ask the bot in an incident's thread, answered from that incident's record.

A mention in a thread the bot knows (under an incident's root alert message, its escalation message or
its decision request) is stored as a timer of kind `answer_question` at once, and the question's message
gets an :eyes: reaction; the timer, on the worker pool, asks Claude (`Assistant.complete`, purpose
"answer") with the incident's findings, timeline, attempts, investigation and similar past incidents, and
posts the answer in the thread through the outbox with the records it cites named. Without a key, or
when Claude's answer is unusable, the answer is rule-based and says why. In a group's or a storm's thread
the question is answered about the incident it names (INC-N), or the bot asks which one. A mention
anywhere else gets the help text.

Asking changes nothing: no state, level, recipient or action, whatever the question or the answer says.
Anyone in the channel may ask; each incident takes at most `PER_MINUTE` questions a minute. A question
is answered once: a redelivered or replayed event finds its key taken, and so does a retried timer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from bot.config import AppConfig
from bot.core.clock import Clock
from bot.core.redact import redact
from bot.integrations.slack.outbox import enqueue
from bot.llm import Fallback
from bot.render import render, shorten
from bot.services import answer_prompt, answer_reply, answer_thread, learning
from bot.services.answer_thread import Subject
from bot.services.assistant import Assistant
from bot.services.messages import Composer
from bot.services.requests import record_once
from bot.services.timers import Claim, TimerService
from bot.store.db import session_scope
from bot.store.tables import Timer

log = logging.getLogger(__name__)

KIND = "answer_question"
PER_MINUTE = 3  # questions answered per incident in any minute; more are politely refused
WINDOW = timedelta(minutes=1)
ACK_REACTION = "eyes"
NAMED_SHOWN = 10  # incidents a group's thread lists when asking which one is meant
NO_QUESTION = "(no question asked: say where the incident stands and what is known about its cause)"
_NAMED = re.compile(r"\bINC-?([0-9]{1,10})\b", re.IGNORECASE | re.ASCII)
_MENTION = re.compile(r"<@[A-Z0-9]{2,20}(?:\|[^>]{0,80})?>")


@dataclass(frozen=True)
class Mention:
    """The bot mentioned in a message: where (channel id, the message's ts, its thread's), what, by whom."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str
    user: str | None
    bot_user_id: str | None = None

    @property
    def in_thread(self) -> bool:
        return bool(self.thread_ts) and self.thread_ts != self.ts

    def question(self) -> str:
        """The question without the bot's mention, redacted and bounded."""
        own = f"<@{self.bot_user_id}>" if self.bot_user_id else None
        text = self.text.replace(own, " ") if own else _MENTION.sub(" ", self.text, count=1)
        text = redact(" ".join(text.split()))
        return shorten(text, answer_prompt.QUESTION_MAX) if text else ""


class Answers:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        assistant: Assistant,
        composer: Composer,
        config: Callable[[], AppConfig],
        timers: TimerService,
        kick: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.assistant = assistant
        self.composer = composer
        self.config = config
        self._kick = kick
        timers.handle(KIND, self.answer, long=True)

    # -- the mention, before Slack's ack is long gone: nothing slow ------------------------------------
    def mention(self, m: Mention) -> None:
        """Take a question asked in an incident's thread (answered later, by a timer); elsewhere, help."""
        now = self.clock.now()
        with session_scope(self.engine) as s:
            about = answer_thread.subject(s, m.channel, m.thread_ts or "") if m.in_thread else None
            if about is None or not about.incident_ids:
                self._post(s, now, m, self._help())
            elif record_once(s, f"question:{m.channel}:{m.ts}", now):
                self._take(s, now, m, about)
            else:
                log.info("question %s in %s was taken before; not asked again", m.ts, m.channel)
        self._kick()

    def _take(self, s: Session, now: datetime, m: Mention, about: Subject) -> None:
        question = m.question()
        incident_id = about.one or _named(question, about.incident_ids)
        if incident_id is None:
            self._post(s, now, m, _which(about))
            return
        if _asked_lately(s, incident_id, now) >= PER_MINUTE:
            refusal = (
                f"INC-{incident_id} has had {PER_MINUTE} questions in the last minute, as many as I answer "
                "in a minute. Please ask again in a minute."
            )
            if m.user:
                enqueue(
                    s, now, "ephemeral", channel=m.channel, thread_ts=m.thread_ts, user=m.user, text=refusal
                )
            else:
                self._post(s, now, m, refusal)
            return
        payload = {
            "channel": m.channel,
            "thread_ts": m.thread_ts,
            "ts": m.ts,
            "question": question or NO_QUESTION,
            "asker": m.user,
            "level": about.level,  # the answer shows only what this thread's readers were shown
        }
        s.add(Timer(incident_id=incident_id, kind=KIND, due_at=now, payload=payload, created_at=now))
        enqueue(s, now, "reaction", channel=m.channel, target_ts=m.ts, name=ACK_REACTION)

    def _post(self, s: Session, now: datetime, m: Mention, text: str) -> None:
        thread = m.thread_ts or m.ts or None
        enqueue(s, now, "post", channel=m.channel, thread_ts=thread, **self.composer.plain(text))

    def _help(self) -> str:
        cmds = self.config().slack.commands
        return (
            "I handle ML pipeline alerts. "
            + render("help", escalate=cmds.escalate, escalation=cmds.escalation).rstrip()
            + "\nMention me with a question in an incident's thread and I answer from its findings."
        )

    # -- the timer: ask, then post once ----------------------------------------------------------------
    def answer(self, t: Timer, claim: Claim) -> None:
        """Answer the timer's question from its incident's record and post it in the thread, once."""
        incident_id = t.incident_id or 0
        p = t.payload
        with Session(self.engine) as s:
            record = answer_prompt.load(s, incident_id)
        record.similar = self._similar(record)
        record = answer_prompt.scoped(record, str(p.get("level") or "L1"))
        request = answer_prompt.request(record, str(p.get("question") or NO_QUESTION), p.get("asker"))
        result = self.assistant.complete(request, incident_id)
        if isinstance(result, Fallback):
            log.info("INC-%s: the question is answered rule-based (%s)", incident_id, result.reason)
        reply = answer_reply.from_model(result, record)
        if reply.dropped:
            log.info(
                "INC-%s: %s cited records the incident does not have were dropped", incident_id, reply.dropped
            )
        payload = answer_reply.message(reply, record)
        now = self.clock.now()
        with session_scope(self.engine) as s:
            if not claim.hold(s):
                return  # another process holds the timer now: it answers
            if not record_once(s, f"answered:{t.id}", now):
                return  # posted by an earlier run of this timer
            enqueue(
                s,
                now,
                "post",
                incident_id=incident_id,
                channel=p["channel"],
                thread_ts=p["thread_ts"],
                **payload,
            )
        self._kick()

    def _similar(self, record: answer_prompt.Record) -> list[learning.Past]:
        """Similar past incidents found now, then those Level 1 found, once each (never this one)."""
        try:
            found = learning.similar(self.engine, record.inc)
        except Exception:  # an aid: the answer goes on with what Level 1 stored
            log.exception("INC-%s: looking up similar incidents failed", record.id)
            found = []
        seen: set[int] = {record.id}
        out: list[learning.Past] = []
        for past in [*found, *record.similar]:
            if past.incident_id not in seen:
                seen.add(past.incident_id)
                out.append(past)
        return out


def _asked_lately(s: Session, incident_id: int, now: datetime) -> int:
    query = (
        select(func.count())
        .select_from(Timer)
        .where(
            col(Timer.incident_id) == incident_id,
            col(Timer.kind) == KIND,
            col(Timer.created_at) > now - WINDOW,
        )
    )
    return int(s.exec(query).one())


def _named(question: str, members: tuple[int, ...]) -> int | None:
    """The one member of a group the question names (INC-12 or INC12), if it names exactly one."""
    named = {int(n) for n in _NAMED.findall(question)} & set(members)
    return named.pop() if len(named) == 1 else None


def _which(about: Subject) -> str:
    ids = [f"INC-{i}" for i in about.incident_ids[:NAMED_SHOWN]]
    more = len(about.incident_ids) - len(ids)
    listed = ", ".join(ids) + (f" and {more} more" if more else "")
    return (
        f"This thread is about {len(about.incident_ids)} incidents: {listed}. Which one do you mean? "
        f'Mention me again with its id in the question, e.g. "{ids[0]}: why did it fail?".'
    )
