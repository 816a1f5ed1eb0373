"""What the workspace shows, read from the Slack emulator: every bot message sorted into its kind, its
incident and its level by the protocol's own wording (templates/*.j2)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.slack_emulator import SlackEmulator
from tests.fault.harness import CHANNELS

_KINDS = (
    ("root", re.compile(r"^\S+ \*INC-(?P<inc>\d+)\* · ")),
    ("l1_report", re.compile(r"^\*Level 1 report · INC-(?P<inc>\d+)[* ]")),
    ("escalation", re.compile(r"\*Level (?P<level>[23]) · INC-(?P<inc>\d+) · ")),
    ("decision", re.compile(r"\*Decision needed · INC-(?P<inc>\d+) · ")),
    (
        "reminder",
        re.compile(r"^:alarm_clock: .*INC-(?P<inc>\d+) \(.*\) has waited \S+ at Level (?P<level>\d)"),
    ),
    ("action_failed", re.compile(r"^:x: The chosen action did not fix it")),
)


# How the bot answers a click or submission it carried out (handlers → IncidentService replies); any other
# ephemeral answer says why it did not (already decided, not allowed, an error id).
SUCCESS_REPLIES = re.compile(
    r"^(You acknowledged INC-|INC-\d+ is resolved at|INC-\d+ is escalated to the tech lead|"
    r"A decision is requested for INC-|Recorded: |Thanks: the reason is recorded)"
)


def is_refusal(text: str) -> bool:
    return not SUCCESS_REPLIES.match(text)


@dataclass(frozen=True)
class Msg:
    channel: str
    ts: str
    thread_ts: str | None  # the parent's ts for a reply
    text: str
    blocks: list[dict[str, Any]] = field(hash=False, compare=False)
    outbox_id: int | None
    kind: str
    incident: int | None
    level: str | None

    @property
    def first_line(self) -> str:
        return self.text.splitlines()[0][:110] if self.text else ""

    def where(self) -> str:
        return f"{self.channel} ts {self.ts}" + (f" (thread {self.thread_ts})" if self.thread_ts else "")

    def buttons(self) -> dict[str, tuple[str, str]]:
        """action_id → (value, block_id) of the buttons the message shows now."""
        found = {}
        for block in self.blocks:
            if block.get("type") == "actions":
                for element in block.get("elements", []):
                    found[element["action_id"]] = (element.get("value", ""), block.get("block_id", "b"))
        return found

    def context(self) -> str:
        return json.dumps([b for b in self.blocks if b.get("type") == "context"])


def _outbox_id(message: dict[str, Any]) -> int | None:
    meta = message.get("metadata") or {}
    value = (meta.get("event_payload") or {}).get("outbox_id")
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def classify(channel: str, message: dict[str, Any], parent: str | None) -> Msg:
    text = message.get("text", "")
    kind, incident, level = "other", None, None
    for name, pattern in _KINDS:
        match = pattern.search(text)
        if match:
            kind = name
            groups = match.groupdict()
            incident = int(groups["inc"]) if groups.get("inc") else None
            level = f"L{groups['level']}" if groups.get("level") else None
            if name == "decision":
                level = "L4"
            if name == "reminder" and "The request is overdue" in text:
                kind = "overdue"
            break
    return Msg(
        channel,
        message["ts"],
        parent,
        text,
        list(message.get("blocks") or []),
        _outbox_id(message),
        kind,
        incident,
        level,
    )


def snapshot(slack: SlackEmulator) -> list[Msg]:
    """Every message the bot posted, top level and in threads, in every channel the suite uses."""
    out: list[Msg] = []
    for channel in CHANNELS:
        for message in slack.messages(channel):
            if message.get("bot_id"):
                out.append(classify(channel, message, None))
            for reply in slack.thread(channel, message["ts"]):
                if reply.get("bot_id"):
                    out.append(classify(channel, reply, message["ts"]))
    return out


class SlackView:
    """Questions about one snapshot of the workspace."""

    def __init__(self, slack: SlackEmulator) -> None:
        self.messages = snapshot(slack)

    def of(self, incident: int, kind: str, level: str | None = None) -> list[Msg]:
        return [
            m
            for m in self.messages
            if m.incident == incident and m.kind == kind and (level is None or m.level == level)
        ]

    def one(self, incident: int, kind: str, level: str | None = None) -> Msg | None:
        found = self.of(incident, kind, level)
        return found[0] if found else None

    def level_message(self, incident: int, level: str) -> Msg | None:
        return self.one(incident, "decision") if level == "L4" else self.one(incident, "escalation", level)

    def reached(self, incident: int, level: str) -> bool:
        """The incident's message at `level` or at a higher level is visible."""
        order = ["L2", "L3", "L4"]
        return any(self.level_message(incident, lv) for lv in order[order.index(level) :])

    def incident_titled(self, title: str) -> int | None:
        """The incident whose root message (or escalation) names `title`."""
        for m in self.messages:
            if m.kind in ("root", "escalation") and title in m.text and m.incident is not None:
                return m.incident
        return None

    def replies(self, parent: Msg) -> list[Msg]:
        return [m for m in self.messages if m.thread_ts == parent.ts and m.channel == parent.channel]
