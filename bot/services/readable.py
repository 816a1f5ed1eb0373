"""The parts of an incident's messages a person reads first, kept short: how urgent it is, the problem in
one sentence, one line per check or remediation with its status mark and human name, and links."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.core.evidence import SHED_ORDER, Link, Step, StepKind
from bot.core.models import Category
from bot.core.policy import is_urgent
from bot.diagnostics.names import remediation_name
from bot.render import Trusted, escape, link, tidy
from bot.store.tables import Incident

LINES = 10  # Attempted lines in a message; the rest are counted and shown in Details
LINE_CHARS = 150  # one line's summary
FIELD_CHARS = 300  # Problem, Impact, Infrastructure, Request, Error, Result
FALLBACK_CHARS = 600  # an Attempted field someone wrote, or one stored before steps were recorded


@dataclass(frozen=True)
class Line:
    mark: str
    name: str
    summary: str


def urgency(inc: Incident) -> str:
    """How urgent the incident is, in the protocol's terms ("time matters" when a deployment is at risk)."""
    labels = inc.labels or {}
    severity = str(labels.get("severity") or inc.severity or "").strip()
    if not is_urgent(labels):
        return f"not urgent (severity {severity})" if severity else "not urgent"
    if str(labels.get("deployment_at_risk", "")).lower() in {"true", "yes", "1"}:
        return ":rotating_light: urgent: a model deployment is at risk"
    return f":rotating_light: urgent (severity {severity})"


def problem(inc: Incident, fields: dict[str, Any]) -> str:
    """The problem in one sentence: what the alert says broke. Level 1's findings are in Attempted, so a
    Problem Level 1 wrote (its category, the title and what it found) is shown as the title alone."""
    stored = str(fields.get("problem") or "")
    written_by_level1 = stored.startswith(f"{Category(inc.category).label.capitalize()}: {inc.title}")
    return tidy(inc.title if written_by_level1 or not stored else stored, FIELD_CHARS)


def field(fields: dict[str, Any], key: str) -> str:
    """A stored one-line field (Impact, Infrastructure, Request), short and readable."""
    return tidy(str(fields.get(key) or "not known"), FIELD_CHARS)


def lines(steps: list[Step], limit: int = LINES) -> tuple[list[Line], str | None]:
    """One line per step, in order; past `limit`, the checks that found least are left for Details (what
    was skipped, then what was fine, then warnings), and a last line says how many."""
    keep = set(range(len(steps)))
    checks = [i for i, s in enumerate(steps) if s.kind is StepKind.CHECK]
    for i in sorted(checks, key=lambda i: (SHED_ORDER.get(steps[i].status, 3), -i)):
        if len(keep) <= limit:
            break
        keep.discard(i)
    shown_at = sorted(keep)[:limit]
    hidden = [s for i, s in enumerate(steps) if i not in keep or i not in set(shown_at)]
    shown = [Line(steps[i].mark, steps[i].name, tidy(steps[i].summary, LINE_CHARS)) for i in shown_at]
    return shown, _more(hidden)


def _more(hidden: list[Step]) -> str | None:
    if not hidden:
        return None
    kinds = {s.kind for s in hidden}
    what = "checks" if kinds == {StepKind.CHECK} else "attempts" if StepKind.CHECK not in kinds else "steps"
    if len(hidden) == 1:
        what = what[:-1]
    return f"… {len(hidden)} more {what} in Details"


def links_line(links: list[Link]) -> Trusted | None:
    """The links as one context line: pages as links, a Job or Workflow by its name."""
    parts: list[str] = []
    for each in links:
        shown = link(each.url, each.label) if each.url else None
        parts.append(shown or f"`{escape(tidy(each.label, 120))}`")
    return Trusted(":link: " + " · ".join(parts)) if parts else None


def with_effects(options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each L4 option with what choosing it does, in words (`does`): the action it runs, or that it only
    closes the incident. The decider reads it beside the label, whoever wrote the label."""
    shown = []
    for option in options:
        action = option.get("action")
        if action and action not in ("resolve", "none"):
            does = f"runs {remediation_name(str(action))}, then closes the incident if that fixed it"
        else:
            does = "closes the incident; nothing is run"
        shown.append({**option, "does": does})
    return shown
