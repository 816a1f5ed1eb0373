"""`escalation-bot demo`: the product end to end on loopback, with no token and no network.

Scenario 1: an OOM-killed training job is re-run with more memory and fixed at Level 1.
Scenario 2: a failing pipeline step that Level 1 cannot fix goes to the data coordinator (L2), who
escalates to the tech lead (L3), who asks for a decision (L4); the decider chooses an option.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

from sqlmodel import Session, select

from bot.core.models import ActionId
from bot.sandbox.slack_driver import select_value, text_value
from bot.sandbox.world import (
    COORDINATOR,
    DECIDER,
    OOM_ALERT,
    PIPELINE_ALERT,
    TECH_LEAD,
    SandboxWorld,
    alertmanager_payload,
)
from bot.store.tables import Decision, Incident

CHANNELS = ("#ml-alerts", "#data-coordinator", "#tech-leads", "#ml-decisions")


def _buttons(message: dict[str, Any]) -> list[str]:
    return [
        str(e.get("text", {}).get("text"))
        for b in message.get("blocks", [])
        if b.get("type") == "actions"
        for e in b.get("elements", [])
    ]


def _context(message: dict[str, Any]) -> list[str]:
    return [
        str(e.get("text"))
        for b in message.get("blocks", [])
        if b.get("type") == "context"
        for e in b.get("elements", [])
    ]


def show_channel(world: SandboxWorld, channel: str, out: TextIO) -> None:
    out.write(f"\n━━━━ {channel} ━━━━\n")
    messages = world.slack.messages(channel)
    if not messages:
        out.write("(no messages)\n")
    for message in messages:
        out.write(_indent(message["text"], "│ ") + "\n")
        for line in _context(message):
            out.write(_indent(line, "│   ") + "\n")
        if _buttons(message):
            out.write("│ " + "  ".join(f"[ {b} ]" for b in _buttons(message)) + "\n")
        for reply in world.slack.thread(channel, message["ts"]):
            out.write(_indent(reply["text"], "│    ↳ ") + "\n")
        out.write("│\n")


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def show_incidents(world: SandboxWorld, out: TextIO) -> None:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        incidents = list(s.exec(select(Incident).order_by(Incident.id)))  # type: ignore[arg-type]
        decisions = {d.incident_id: d for d in s.exec(select(Decision))}
    out.write("\n━━━━ incidents ━━━━\n")
    out.write(f"{'id':<7}{'category':<22}{'level':<7}{'status':<11}{'resolved by':<13}resolution\n")
    for inc in incidents:
        note = inc.resolution_note or ""
        dec = decisions.get(inc.id or 0)
        if dec and dec.chosen_label:
            note = f"decided '{dec.chosen_label}' by {dec.chosen_by}" + (
                f": {dec.rationale}" if dec.rationale else ""
            )
        out.write(
            f"INC-{inc.id:<3}{inc.category:<22}{inc.level:<7}{inc.status:<11}{inc.resolved_by or 'bot':<13}"
            f"{note[:90]}\n"
        )


def latest(world: SandboxWorld, channel: str) -> str:
    return str(world.slack.messages(channel)[-1]["ts"])


def run_scenarios(world: SandboxWorld, say: Callable[[str], None]) -> None:
    say("1. Alertmanager reports an OOM-killed training job")
    world.post_alerts(alertmanager_payload([OOM_ALERT], '{}:{alertname="TrainingJobOOMKilled"}'))
    world.settle()

    say("2. Alertmanager reports a failed feature pipeline step")
    world.post_alerts(alertmanager_payload([PIPELINE_ALERT], '{}:{alertname="KubeJobFailed"}'))
    world.settle()

    say("   the data coordinator (alice) escalates to the tech lead")
    world.click(COORDINATOR, ActionId.ESCALATE_L3, "#data-coordinator", latest(world, "#data-coordinator"))
    world.settle()
    world.submit_latest_view(
        COORDINATOR,
        {
            "trigger": {"value": select_value("architecture_redesign")},
            "reason": {
                "value": text_value(
                    "The step reads a partition that upstream no longer writes daily; "
                    "the pipeline's data contract needs redesign."
                )
            },
        },
    )
    world.settle()

    say("   the tech lead (bob) asks for a decision")
    world.click(TECH_LEAD, ActionId.ASK_DECISION, "#tech-leads", latest(world, "#tech-leads"))
    world.settle()
    world.submit_latest_view(
        TECH_LEAD,
        {
            "question": {
                "value": text_value(
                    "The daily feature build is blocked by a missing upstream partition. How do we proceed?"
                )
            },
            "context": {"value": text_value("Churn and fraud models retrain tonight.")},
        },
    )
    world.settle()

    say("   the decider (carol) chooses an option and says why")
    world.click(DECIDER, f"{ActionId.DECISION_OPTION}_1", "#ml-decisions", latest(world, "#ml-decisions"))
    world.settle()
    world.submit_latest_view(
        DECIDER,
        {
            "rationale": {
                "value": text_value("Tonight's retrain matters more than a day of feature freshness.")
            }
        },
    )
    world.settle()


def main(out: TextIO) -> int:
    started = time.monotonic()
    with SandboxWorld() as world:
        out.write(
            "escalation-bot demo: SQLite, the local Slack emulator and the sandbox cluster (no network)\n\n"
        )
        run_scenarios(world, lambda line: print(line, file=out))
        for channel in CHANNELS:
            show_channel(world, channel, out)
        show_incidents(world, out)
    out.write(f"\nfinished in {time.monotonic() - started:.1f}s\n")
    return 0
