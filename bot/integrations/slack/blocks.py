"""Block Kit built in code with slack_sdk.models: messages, buttons and modals."""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.core.models import ActionId, IncidentStatus, Level, StrategicTrigger
from bot.render import escape

SECTION_LIMIT = 3000


def _sections(text: str) -> list[Block]:
    """Split long mrkdwn into sections under Slack's 3000-character limit, on line breaks."""
    blocks: list[Block] = []
    chunk = ""
    for line in text.split("\n"):
        while len(line) > SECTION_LIMIT:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=line[:SECTION_LIMIT], verbatim=True)))
            line = line[SECTION_LIMIT:]
        if len(chunk) + len(line) + 1 > SECTION_LIMIT:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=chunk, verbatim=True)))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=chunk, verbatim=True)))
    return blocks


MESSAGE_BLOCKS = 50  # Slack's limit for a message


def message(
    text: str,
    context: list[str] | None = None,
    buttons: list[ButtonElement] | None = None,
    block_id: str = "actions",
    *,
    sections: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Text sections (`sections`, each its own, or else `text`), a context line per entry, and an optional
    row of buttons; context lines past Slack's 50 blocks share the last context block."""
    blocks = [b for part in (sections if sections is not None else [text]) for b in _sections(part)]
    lines = [line[:3000] for line in context or [] if line]
    room = MESSAGE_BLOCKS - len(blocks) - (1 if buttons else 0)
    if len(lines) > room > 0:
        lines = [*lines[: room - 1], "\n".join(lines[room - 1 :])[:3000]]
    for line in lines[: max(room, 0)]:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=line, verbatim=True)]))
    if buttons:
        blocks.append(ActionsBlock(block_id=block_id, elements=buttons))
    return [b.to_dict() for b in blocks]


def _button(
    label: str, action: str, value: str, style: str | None = None, confirm: ConfirmObject | None = None
) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=label[:75]), action_id=action, value=value, style=style, confirm=confirm
    )


def details_button(incident_id: int, level: Level) -> ButtonElement:
    """Opens the evidence behind a message (every finding and attempt) in a modal."""
    return _button("Details", ActionId.DETAILS, f"{incident_id}:{level}")


def escalation_buttons(incident_id: int, level: Level, status: IncidentStatus) -> list[ButtonElement]:
    """Acknowledge / Resolved / Escalate to tech lead (L2) or Ask for a decision (L3), by state; Details
    always (the evidence stays worth reading once the incident moved on)."""
    buttons = []
    value = f"{incident_id}:{level}"
    if status in (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED):
        if status is IncidentStatus.OPEN:
            buttons.append(_button("Acknowledge", ActionId.ACK, value, "primary"))
        buttons.append(_button("Resolved", ActionId.RESOLVE, value))
        if level is Level.L2:
            buttons.append(_button("Escalate to tech lead", ActionId.ESCALATE_L3, value, "danger"))
        elif level is Level.L3:
            buttons.append(_button("Ask for a decision", ActionId.ASK_DECISION, value, "danger"))
        if status is IncidentStatus.OPEN:
            buttons.append(_button("Snooze", ActionId.SNOOZE, value))
    return [*buttons, details_button(incident_id, level)]


PROPOSED = " (Proposed by Claude.)"


def decision_buttons(decision_id: int, options: list[dict[str, Any]]) -> list[ButtonElement]:
    """One button per option, each behind a confirm dialog that repeats its trade-off (and says so when
    Claude proposed the option)."""
    buttons = []
    for i, option in enumerate(options):
        said = str(option["trade_off"])
        if option.get("does"):  # what the click does, whatever the label says
            does = str(option["does"])[:120]
            said = f"{does[:1].upper()}{does[1:]}. {said}"
        if option.get("proposed_by") == "claude":
            said = f"{said[: 300 - len(PROPOSED)]}{PROPOSED}"
        confirm = ConfirmObject(
            title=PlainTextObject(text=f"Choose “{option['label']}”?"[:100]),
            text=PlainTextObject(text=said[:300]),
            confirm=PlainTextObject(text="Choose"),
            deny=PlainTextObject(text="Cancel"),
        )
        buttons.append(
            _button(
                option["label"],
                f"{ActionId.DECISION_OPTION}_{i}",
                f"{decision_id}:{i}",
                option.get("style"),
                confirm,
            )
        )
    return buttons


def _modal(
    callback: str, title: str, submit: str, blocks: list[Block], private: dict[str, Any] | None
) -> dict[str, Any]:
    """A modal whose private_metadata is `private`: only the handle of the bot's record of the modal,
    never what it is about (see bot.services.views)."""
    view = View(
        type="modal",
        callback_id=callback,
        title=PlainTextObject(text=title[:24]),
        submit=PlainTextObject(text=submit[:24]),
        close=PlainTextObject(text="Cancel"),
        blocks=blocks,
        private_metadata=json.dumps(private or {})[:3000],
    )
    return view.to_dict()


def _text_input(
    block_id: str,
    label: str,
    multiline: bool = True,
    initial: str | None = None,
    optional: bool = False,
    hint: str | None = None,
) -> InputBlock:
    return InputBlock(
        block_id=block_id,
        label=PlainTextObject(text=label),
        element=PlainTextInputElement(
            action_id="value", multiline=multiline, initial_value=initial, max_length=3000
        ),
        optional=optional,
        hint=PlainTextObject(text=hint) if hint else None,
    )


def _about(meta: dict[str, Any]) -> list[Block]:
    """A context line saying which incident (and decision) the modal is about."""
    parts = [f"INC-{meta['incident_id']}"] if meta.get("incident_id") else []
    if meta.get("level"):
        parts.append(f"Level {str(meta['level']).removeprefix('L')}")
    if meta.get("decision_id"):
        parts.append(f"decision {meta['decision_id']}")
    if not parts:
        return []
    return [ContextBlock(elements=[MarkdownTextObject(text=" · ".join(parts), verbatim=True)])]


def resolve_modal(meta: dict[str, Any], private: dict[str, Any] | None = None) -> dict[str, Any]:
    return _modal(
        ActionId.RESOLVE_VIEW,
        f"Resolve INC-{meta['incident_id']}",
        "Resolve",
        [
            *_about(meta),
            _text_input(
                "note",
                "Resolution note",
                hint="What fixed it? It is offered the next time a similar incident appears.",
            ),
        ],
        private,
    )


SNOOZE_CHOICES = (
    ("30m", "30 minutes"),
    ("1h", "1 hour"),
    ("4h", "4 hours"),
    ("tomorrow", "Until tomorrow 09:00 (your time)"),
)


def snooze_modal(meta: dict[str, Any], private: dict[str, Any] | None = None) -> dict[str, Any]:
    """How long to snooze: the reminder and the deadline wait that long; it resumes by itself."""
    options = [Option(text=PlainTextObject(text=label), value=value) for value, label in SNOOZE_CHOICES]
    until = InputBlock(
        block_id="until",
        label=PlainTextObject(text="Snooze for"),
        element=StaticSelectElement(
            action_id="value", options=options, placeholder=PlainTextObject(text="Choose how long")
        ),
        hint=PlainTextObject(text="Reminders and the escalation deadline wait; it resumes by itself."),
    )
    return _modal(
        ActionId.SNOOZE_VIEW, f"Snooze INC-{meta['incident_id']}", "Snooze", [*_about(meta), until], private
    )


def escalate_l3_modal(meta: dict[str, Any], private: dict[str, Any] | None = None) -> dict[str, Any]:
    options = [Option(text=PlainTextObject(text=t.label), value=t.value) for t in StrategicTrigger]
    trigger = InputBlock(
        block_id="trigger",
        label=PlainTextObject(text="Strategic trigger"),
        element=StaticSelectElement(
            action_id="value", options=options, placeholder=PlainTextObject(text="Choose one")
        ),
    )
    return _modal(
        ActionId.ESCALATE_L3_VIEW,
        "Escalate to tech lead",
        "Escalate",
        [*_about(meta), trigger, _text_input("reason", "Why does this need the tech lead?")],
        private,
    )


def ask_decision_modal(
    meta: dict[str, Any],
    question: str,
    options: list[dict[str, Any]],
    private: dict[str, Any] | None = None,
) -> dict[str, Any]:
    listing = "\n".join(f"*{i + 1}. {o['label']}*: {o['trade_off']}" for i, o in enumerate(options))
    return _modal(
        ActionId.ASK_DECISION_VIEW,
        "Ask for a decision",
        "Ask",
        [
            *_about(meta),
            _text_input("question", "Question for the deciders", initial=question),
            SectionBlock(text=MarkdownTextObject(text=f"Options offered:\n{listing}"[:3000])),
            _text_input("context", "Context for the deciders", optional=True),
        ],
        private,
    )


def rationale_modal(
    meta: dict[str, Any], choice: str, private: dict[str, Any] | None = None
) -> dict[str, Any]:
    return _modal(
        ActionId.RATIONALE_VIEW,
        "Why this option?",
        "Save",
        [
            *_about(meta),
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"You chose *{escape(choice)}*. Record why, for whoever meets this next."
                )
            ),
            _text_input("rationale", "Reason"),
        ],
        private,
    )


ESCALATE_FIELDS = (
    ("problem", "Problem", "What is wrong (the MLOps infrastructure issue)"),
    ("attempted", "Attempted", "What was tried already"),
    ("impact", "Impact", "Model training / serving availability"),
    ("infrastructure", "Infrastructure", "Kubeflow/MLflow/… setup, scale, tools"),
    ("request", "Request", "The specific guidance needed"),
)


def escalate_modal(
    meta: dict[str, Any], problem: str = "", private: dict[str, Any] | None = None
) -> dict[str, Any]:
    blocks: list[Block] = [
        _text_input(
            key,
            label,
            initial=problem if key == "problem" and problem else None,
            optional=key != "problem",
            hint=hint,
        )
        for key, label, hint in ESCALATE_FIELDS
    ]
    return _modal(ActionId.ESCALATE_VIEW, "Escalate a problem", "Escalate", blocks, private)


def view_value(values: dict[str, Any], block_id: str) -> str:
    """The submitted value of an input block ('' when empty or malformed), for text inputs and selects."""
    block = values.get(block_id)
    element = block.get("value") if isinstance(block, dict) else None
    if not isinstance(element, dict):
        return ""
    selected = element.get("selected_option")
    if isinstance(selected, dict):
        return str(selected.get("value") or "")[:3000]
    value = element.get("value")
    return value.strip()[:3000] if isinstance(value, str) else ""


def notice_modal(title: str, text: str) -> dict[str, Any]:
    """A modal that only says something (it replaces a form that cannot be accepted)."""
    view = View(
        type="modal",
        title=PlainTextObject(text=title[:24]),
        close=PlainTextObject(text="Close"),
        blocks=[SectionBlock(text=PlainTextObject(text=text[:3000]))],
    )
    return view.to_dict()
