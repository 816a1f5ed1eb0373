"""Rules that decide how a Job the bot creates ends: succeeded, OOM-killed or failed, and with what log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bot.config import parse_memory

OutcomeKind = Literal["succeeded", "oom_killed", "failed"]


@dataclass(frozen=True)
class Outcome:
    """How a Job the bot created ends; `pending_reads` reads of the Job see it running first."""

    result: OutcomeKind
    log: str = ""
    pending_reads: int = 0


JobRule = Callable[[dict[str, Any]], Outcome | OutcomeKind]


def always(result: OutcomeKind, log: str = "") -> JobRule:
    """A rule that ends every created Job the same way."""
    return lambda job: Outcome(result, log)


def succeed_if_memory_at_least(quantity: str) -> JobRule:
    """A rule that OOM-kills a created Job unless every container's memory limit is at least `quantity`."""
    needed = parse_memory(quantity)

    def rule(job: dict[str, Any]) -> Outcome:
        containers = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        limits = [c.get("resources", {}).get("limits", {}).get("memory") for c in containers]
        if limits and all(limit and parse_memory(limit) >= needed for limit in limits):
            return Outcome("succeeded")
        return Outcome("oom_killed")

    return rule


def default_log(job: str, result: OutcomeKind) -> str:
    """What the Job's container printed, when the rule gives no log of its own."""
    if result == "succeeded":
        return f"{job}: starting\n{job}: finished successfully\n"
    if result == "oom_killed":
        return f"{job}: starting\n{job}: loading data into memory\n"
    return (
        f"{job}: starting\nTraceback (most recent call last):\n"
        f'  File "/app/main.py", line 42, in <module>\n    main()\n'
        f"RuntimeError: {job} failed\n"
    )
