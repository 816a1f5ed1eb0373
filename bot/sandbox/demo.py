"""`escalation-bot demo`: the product end to end on loopback, with no token and no network.

Part 1: a failing pipeline step that Level 1 cannot fix goes to the data coordinator (L2), who escalates
to the tech lead (L3), who asks for a decision (L4); the decider chooses an option and says why.
Part 2: for each failure category Level 1 covers in the sandbox, one incident it fixes and one it
escalates (bot/sandbox/scenarios.py).
Part 3: alerts that name only their target: Level 1 reads the target first and classifies it from what
it finds (a bare KubeJobFailed whose pod was OOM-killed becomes a training crash and is re-run with more
memory), and a failed Argo Workflow is retried from its failed node with more memory.

Without a key the drafts are rule-based. With `llm_fixture`, Claude's stand-in (a loopback Messages API
answering from recorded fixtures, bot/sandbox/llm_fixtures.py) investigates each escalated incident, so
the messages show a cause grounded in that run's findings, and drafts the decision's options.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TextIO

from sqlmodel import Session, col, select

from bot.core.models import ActionId, Category
from bot.sandbox.anthropic_api import AnthropicServer
from bot.sandbox.llm_fixtures import claude_stand_in
from bot.sandbox.mlflow_api import SandboxMlflowAPI
from bot.sandbox.scenario_cluster import FeatureTables, demo_config, job_rule, load_cluster
from bot.sandbox.scenarios import SCENARIOS, TRIAGE_SCENARIOS
from bot.sandbox.slack_driver import select_value, text_value
from bot.sandbox.slack_text import readable
from bot.sandbox.world import (
    COORDINATOR,
    DECIDER,
    PIPELINE_ALERT,
    TECH_LEAD,
    SandboxWorld,
    alertmanager_payload,
)
from bot.store.tables import Decision, Incident, RemediationAttempt

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


def _sections(message: dict[str, Any]) -> str:
    """What the message shows above its context lines (its `text` is only the notification)."""
    shown = [
        str(b["text"].get("text", ""))
        for b in message.get("blocks", [])
        if b.get("type") in ("section", "header") and isinstance(b.get("text"), dict)
    ]
    return "\n".join(shown) or str(message.get("text", ""))


def names(world: SandboxWorld) -> tuple[dict[str, str], dict[str, str]]:
    """People and user groups of the workspace by id: what a mention of them shows."""
    directory = world.slack.workspace.directory
    users = {uid: str(u["name"]) for uid, u in directory.users.items()}
    groups = {gid: str(g["handle"]) for gid, g in directory.usergroups.items()}
    return users, groups


def show_channel(world: SandboxWorld, channel: str, out: TextIO) -> None:
    """The channel as the Slack client shows it: each message, its context lines, its buttons and the
    replies in its thread, with mentions by name, emoji, and long lines wrapped."""
    users, groups = names(world)

    def shown(text: str) -> str:
        return readable(text, users, groups)

    out.write(f"\n━━━━ {channel} ━━━━\n")
    messages = world.slack.messages(channel)
    if not messages:
        out.write("(no messages)\n")
    for message in messages:
        out.write(_indent(shown(_sections(message)), "│ ") + "\n")
        for line in _context(message):
            out.write(_indent(shown(line), "│   ") + "\n")
        if _buttons(message):
            out.write("│ " + "  ".join(f"[ {b} ]" for b in _buttons(message)) + "\n")
        for reply in world.slack.thread(channel, message["ts"]):
            out.write(_indent(shown(_sections(reply)), "│    ↳ ") + "\n")
            if _buttons(reply):
                out.write("│    ↳ " + "  ".join(f"[ {b} ]" for b in dict.fromkeys(_buttons(reply))) + "\n")
        out.write("│\n")


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def show_incidents(world: SandboxWorld, out: TextIO) -> None:
    assert world.bot is not None
    users, _ = names(world)
    with Session(world.bot.services.engine) as s:
        incidents = list(s.exec(select(Incident).order_by(col(Incident.id))))
        decisions = {d.incident_id: d for d in s.exec(select(Decision))}
    out.write("\n━━━━ incidents ━━━━\n")
    out.write(f"{'id':<7}{'category':<27}{'level':<7}{'status':<11}{'resolved by':<13}resolution\n")
    for inc in incidents:
        note = inc.resolution_note or ""
        dec = decisions.get(inc.id or 0)
        if dec and dec.chosen_label:
            why = f": {dec.rationale}" if dec.rationale else ""
            note = f"decided '{dec.chosen_label}' by @{users.get(str(dec.chosen_by), dec.chosen_by)}{why}"
        who = inc.resolved_by or (dec.chosen_by if dec and dec.chosen_label else None)
        by = f"@{users.get(who, who)}" if who else ("bot" if inc.status == "resolved" else "")
        out.write(f"INC-{inc.id:<3}{inc.category:<27}{inc.level:<7}{inc.status:<11}{by:<13}{note[:90]}\n")


def latest(world: SandboxWorld, channel: str) -> str:
    return str(world.slack.messages(channel)[-1]["ts"])


def run_escalation(world: SandboxWorld, say: Callable[[str], None]) -> None:
    """A failing pipeline step goes all the way: L1 → L2 → L3 → L4, where an option is chosen."""
    say("Part 1: one incident all the way to a decision")
    say("  Alertmanager reports a failed feature pipeline step (feature-build-daily)")
    world.post_alerts(alertmanager_payload([PIPELINE_ALERT], '{}:{alertname="KubeJobFailed"}'))
    world.settle()

    say("  the data coordinator (alice) escalates to the tech lead")
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

    say("  the tech lead (bob) asks for a decision")
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

    say("  the decider (carol) chooses an option and says why")
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


def run_level1(world: SandboxWorld, mlflow: SandboxMlflowAPI, say: Callable[[str], None]) -> None:
    """Part 2: per category, one incident Level 1 fixes and one it hands to the data coordinator."""
    say("\nPart 2: Level 1 across the failure categories")
    for scenario in SCENARIOS:
        if scenario.prepare is not None:
            scenario.prepare(mlflow)
        world.post_alerts(alertmanager_payload([scenario.alert], f"{{}}:{{scenario={scenario.title!r}}}"))
        world.settle()
        inc = incident_by_fingerprint(world, f"am:{scenario.alert['fingerprint']}")
        outcome = (
            "✅ fixed at L1"
            if inc.level == "L1" and inc.status == "resolved"
            else f"⬆️  {inc.level} {inc.status}"
        )
        category = Category(inc.category).label  # what the bot decided, not what the scenario expects
        say(f"  INC-{inc.id:<3}{category:<27}{scenario.title:<58}{outcome}")
        mlflow.up()


def run_triage(world: SandboxWorld, say: Callable[[str], None]) -> None:
    """Part 3: alerts that say only what failed; the category comes from the target's own evidence."""
    say("\nPart 3: alerts that name only their target")
    for scenario in TRIAGE_SCENARIOS:
        world.post_alerts(alertmanager_payload([scenario.alert], f"{{}}:{{scenario={scenario.title!r}}}"))
        world.settle()
        inc = incident_by_fingerprint(world, f"am:{scenario.alert['fingerprint']}")
        fixed = inc.level == "L1" and inc.status == "resolved"
        outcome = "✅ fixed at L1" if fixed else f"⬆️  {inc.level} {inc.status}"
        say(f"  INC-{inc.id:<3}{scenario.title:<58}{outcome}")
        was = Category(inc.reclassified_from).label if inc.reclassified_from else None
        how = f"re-classified from {was} to " if was else "classified as "
        say(f"         {how}{Category(inc.category).label}: {inc.classification_reason}")
        fixed_by = latest_fix(world, inc.id or 0)
        if fixed_by:
            say(f"         {fixed_by}")


def latest_fix(world: SandboxWorld, incident_id: int) -> str | None:
    """What fixed the incident at Level 1: the remediation and its verified outcome."""
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        query = select(RemediationAttempt).where(
            RemediationAttempt.incident_id == incident_id, RemediationAttempt.status == "fixed"
        )
        attempt = s.exec(query).first()
    return f"{attempt.name}: {attempt.summary}" if attempt else None


def incident_by_fingerprint(world: SandboxWorld, fingerprint: str) -> Incident:
    assert world.bot is not None
    with Session(world.bot.services.engine) as s:
        return s.exec(select(Incident).where(Incident.fingerprint == fingerprint)).one()


STAND_IN_KEY = "sk-ant-demo-stand-in"


def main(out: TextIO, channel: str | None = None, as_json: bool = False, llm_fixture: bool = False) -> int:
    """Run the demo; print what every channel shows (only `channel`, when given; the raw messages with
    their blocks and threads as JSON, with `as_json`). 2 for a channel the demo does not post to. With
    `llm_fixture`, Claude's stand-in answers the bot's requests to the Messages API."""
    if channel is not None and f"#{channel.removeprefix('#')}" not in CHANNELS:
        print(
            f"escalation-bot demo: no channel {channel}; the demo posts to {', '.join(CHANNELS)}",
            file=sys.stderr,
        )
        return 2
    shown = [f"#{channel.removeprefix('#')}"] if channel else list(CHANNELS)
    started = time.monotonic()

    def say(line: str) -> None:
        if not as_json:
            print(line, file=out)

    with tempfile.TemporaryDirectory(prefix="escalation-bot-demo-") as tmp:
        features = FeatureTables(f"sqlite:///{Path(tmp) / 'features.db'}")
        stand_in = claude_stand_in(STAND_IN_KEY) if llm_fixture else None
        with (
            stand_in or nullcontext(),
            SandboxMlflowAPI() as mlflow,
            SandboxWorld(
                config=demo_config(features),
                job_rule=job_rule(features),
                mlflow_url=mlflow.url,
                anthropic_url=stand_in.url if stand_in else None,
                anthropic_key=STAND_IN_KEY,
            ) as world,
        ):
            load_cluster(world.kube, mlflow)
            say("escalation-bot demo: SQLite, the local Slack emulator and the sandbox cluster (no network)")
            say(drafts_line(stand_in) + "\n")
            run_escalation(world, say)
            run_level1(world, mlflow, say)
            run_triage(world, say)
            if as_json:
                json.dump(
                    {name: raw_channel(world, name) for name in shown}, out, indent=2, ensure_ascii=False
                )
                out.write("\n")
            else:
                for name in shown:
                    show_channel(world, name, out)
                if channel is None:
                    show_incidents(world, out)
                if stand_in is not None:
                    out.write(
                        f"\nClaude's stand-in answered {len(stand_in.received)} Messages API request(s)\n"
                    )
        features.engine.dispose()
    if not as_json:
        out.write(f"\nfinished in {time.monotonic() - started:.1f}s\n")
    return 0


def raw_channel(world: SandboxWorld, channel: str) -> list[dict[str, Any]]:
    """The channel's messages as Slack stores them (text, blocks), each with the replies in its thread."""
    keep = ("ts", "user", "text", "blocks")
    return [
        {
            **{k: m[k] for k in keep if k in m},
            "replies": [{k: r[k] for k in keep if k in r} for r in world.slack.thread(channel, m["ts"])],
        }
        for m in world.slack.messages(channel)
    ]


def drafts_line(stand_in: AnthropicServer | None) -> str:
    """Who drafts the demo's prose: Claude's stand-in, or the rule-based drafts."""
    if stand_in is None:
        return "Drafts are rule-based: no ANTHROPIC_API_KEY is set (--llm-fixture runs Claude's stand-in)"
    return "Claude's stand-in investigates and drafts: a loopback Messages API answering from fixtures"
