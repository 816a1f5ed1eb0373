"""Rules that decide how a Workflow node the sandbox controller runs ends: the rule is given the Workflow
and the node's template as the Workflow's spec has it now, and answers like a Job rule does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.config import parse_memory
from bot.sandbox.kube.job_rules import Outcome, OutcomeKind

WorkflowRule = Callable[[dict[str, Any], dict[str, Any]], Outcome | OutcomeKind]


def main_container(template: dict[str, Any]) -> dict[str, Any]:
    """The user's container of a template (`container` or `script`), or an empty dict."""
    found = template.get("container") or template.get("script") or {}
    return found if isinstance(found, dict) else {}


def workflow_always(result: OutcomeKind, log: str = "") -> WorkflowRule:
    """A rule that ends every node the same way."""
    return lambda workflow, template: Outcome(result, log)


def workflow_succeeds_if_memory_at_least(quantity: str, *templates: str) -> WorkflowRule:
    """A rule that OOM-kills a node whose `main` container has a memory limit below `quantity`; a container
    without a memory limit is not capped, so it succeeds. With `templates` named, only nodes of those
    templates are judged and every other node succeeds."""
    needed = parse_memory(quantity)

    def rule(workflow: dict[str, Any], template: dict[str, Any]) -> Outcome:
        if templates and template.get("name") not in templates:
            return Outcome("succeeded")
        limit = (main_container(template).get("resources") or {}).get("limits", {}).get("memory")
        if limit is None or parse_memory(str(limit)) >= needed:
            return Outcome("succeeded")
        return Outcome("oom_killed")

    return rule
