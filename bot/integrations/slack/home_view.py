"""The bot's App Home tab in Block Kit: what waits on the person who opened it, the open incidents by
level, and this week's level rates against the protocol's targets, each incident with a Details button.

Built to stay inside Slack's limits (100 blocks a view, 3000 characters a section, 150 a header): each
list shows its first few and says how many more there are. Ages are Slack date tokens, which each
reader's client shows as "3 hours ago", so the view only changes when what it shows changes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.core.models import ActionId
from bot.core.targets import TARGETS
from bot.core.untrusted import neutralise

DETAILS = ActionId.DETAILS.value  # the Details button's action id (its modal is handlers/actions.py's)
WAITING_SHOWN = 15  # incidents waiting on the person, oldest first
OLDEST_SHOWN = 3  # open incidents shown per level
TEXT_MAX = 200  # characters of an incident's title or a decision's question
LEVEL_NAMES = {
    "L1": "the bot is on it",
    "L2": "data coordinator",
    "L3": "tech lead",
    "L4": "decision",
}


@dataclass(frozen=True)
class HomeIncident:
    """One incident as the Home tab lists it: `since` is when it began waiting (`event` says for what)."""

    id: int
    level: str
    category: str
    title: str
    since: datetime
    event: str = "opened"  # opened / escalated / asked
    question: str = ""  # the decision asked, at L4


@dataclass(frozen=True)
class LevelCount:
    level: str
    count: int
    oldest: list[HomeIncident] = field(default_factory=list)


@dataclass(frozen=True)
class HomeBoard:
    """Everything one person's Home tab shows."""

    waiting: list[HomeIncident]  # all of them, oldest first; the view shows the first WAITING_SHOWN
    levels: list[LevelCount]
    week: Mapping[str, int]  # IncidentQueries.stats of the last seven days


def home_view(board: HomeBoard) -> dict[str, Any]:
    """The Home tab view for `board` (validated against Slack's limits by slack_sdk)."""
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text="Escalations"))]
    blocks += _waiting(board.waiting)
    blocks.append(DividerBlock())
    blocks += _open(board.levels)
    blocks.append(DividerBlock())
    blocks += _week(board.week)
    return View(type="home", blocks=blocks).to_dict()


def _waiting(waiting: list[HomeIncident]) -> list[Block]:
    if not waiting:
        return [_text("*Waiting on you*\nNothing is waiting on you right now.")]
    blocks: list[Block] = [_text(f"*Waiting on you* · {len(waiting)}, oldest first")]
    blocks += [_incident(item) for item in waiting[:WAITING_SHOWN]]
    more = len(waiting) - WAITING_SHOWN
    if more > 0:
        blocks.append(_context(f"…and {more} more waiting on you."))
    return blocks


def _open(levels: list[LevelCount]) -> list[Block]:
    total = sum(row.count for row in levels)
    if not total:
        return [_text("*Open incidents*\nNo open incidents.")]
    counts = [
        MarkdownTextObject(text=f"*{row.level}* · {LEVEL_NAMES.get(row.level, row.level)}\n{row.count}")
        for row in levels
    ]
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f"*Open incidents* · {total}"), fields=counts)
    ]
    for row in levels:
        if not row.count:
            continue
        shown = (
            f"the oldest {OLDEST_SHOWN} of {row.count}" if row.count > OLDEST_SHOWN else f"{row.count} open"
        )
        blocks.append(_context(f"*{row.level}* · {shown}"))
        blocks += [_incident(item) for item in row.oldest[:OLDEST_SHOWN]]
    return blocks


def _week(stats: Mapping[str, int]) -> list[Block]:
    total, resolved = stats.get("total", 0), stats.get("resolved", 0)
    heading = (
        f"*This week* (the last 7 days) · {total} incident{'' if total == 1 else 's'}, {resolved} resolved"
    )
    if not total:
        return [_text(f"{heading}\nNo incidents this week."), _targets_note()]
    fields = []
    for target in TARGETS:
        rate, met = target.rate(stats), target.met(stats)
        mark = "–" if met is None else ":white_check_mark:" if met else ":warning:"
        shown = "no incidents to measure" if rate is None else f"{rate}%"
        fields.append(MarkdownTextObject(text=f"*{target.label}*\n{shown} {mark} {target.wording}"))
    return [SectionBlock(text=MarkdownTextObject(text=heading), fields=fields), _targets_note()]


def _targets_note() -> Block:
    return _context(
        "Rates of the incidents opened in the last 7 days, against the escalation protocol's targets."
    )


def _incident(item: HomeIncident) -> Block:
    when = _ago(item.since)
    line = f"*INC-{item.id}* · {item.level} · {_cut(item.category)} · {item.event} {when}"
    text = f"{line}\n{_cut(item.title)}"
    if item.question:
        text += f"\nDecision: {_cut(item.question)}"
    # the same value as the Details button on the incident's messages: "<id>:<level>"
    details = ButtonElement(
        text=PlainTextObject(text="Details"), action_id=DETAILS, value=f"{item.id}:{item.level}"
    )
    return SectionBlock(text=MarkdownTextObject(text=text, verbatim=True), accessory=details)


def _ago(at: datetime) -> str:
    """`at` as each reader's client shows it relative to now ("3 hours ago"), with a UTC fallback."""
    return f"<!date^{int(at.timestamp())}^{{ago}}|at {at:%Y-%m-%d %H:%M} UTC>"


def _cut(text: str) -> str:
    """Untrusted text on one line, shown and not acted on (no mention or link), of a readable length."""
    one_line = " ".join(text.split())
    return neutralise(one_line if len(one_line) <= TEXT_MAX else one_line[: TEXT_MAX - 1] + "…")


def _text(text: str) -> Block:
    return SectionBlock(text=MarkdownTextObject(text=text))


def _context(text: str) -> Block:
    return ContextBlock(elements=[MarkdownTextObject(text=text)])
