"""What a person sees of a Slack message: the text of its sections and context lines, in order (its `text`
is only the notification: the header and one line)."""

from __future__ import annotations

from typing import Any


def shown(message: dict[str, Any]) -> str:
    """The message as Slack shows it, line by line: header, sections (text and fields), context lines."""
    out: list[str] = []
    for block in message.get("blocks") or []:
        kind = block.get("type")
        if kind in ("section", "header"):
            text = block.get("text") or {}
            out.extend([str(text.get("text", ""))] if text else [])
            out.extend(str(f.get("text", "")) for f in block.get("fields") or [])
        elif kind == "context":
            out.extend(str(e.get("text", "")) for e in block.get("elements") or [] if "text" in e)
    return "\n".join(out) if out else str(message.get("text", ""))


LABELS = ("Problem:", "Attempted:", "Impact:", "Infrastructure:", "Request:", "Trigger:")
L1_LABELS = ("Error:", "Attempted:", "Action:", "Result:")


def body(message: dict[str, Any]) -> str:
    """The text of the message's sections only (no context lines)."""
    return "\n".join(
        str(b["text"].get("text", ""))
        for b in message.get("blocks") or []
        if b.get("type") == "section" and isinstance(b.get("text"), dict)
    )


def field(message: dict[str, Any], label: str) -> str:
    """One field as shown ("Attempted:"): its own line and the bullet lines under it, up to the next field."""
    lines = body(message).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(label))
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith((*LABELS, *L1_LABELS))), len(lines)
    )
    return "\n".join(lines[start:end])


def step(message: dict[str, Any], name: str) -> str:
    """The bullet line of the check or remediation a person knows as `name` ("Pod logs")."""
    return next(line for line in body(message).splitlines() if line.startswith("• ") and f"*{name}*" in line)
