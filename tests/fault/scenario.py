"""The demo scenarios, driven from outside through the contracts only (webhooks, signed clicks and view
submissions), one after the other so the request sequence is the same from run to run:

A  an OOM-killed training job: Level 1 re-runs it with more memory and the thread says so;
B  a failed pipeline step all the way to a decision: L1 fails → L2 (reminder, Acknowledge, Escalate to
   tech lead + modal) → L3 (reminder, Ask for a decision + modal) → L4 (reminder, the option with an
   action, rationale modal) → the chosen action runs a Job;
C  the same failure left alone: the acknowledgement deadlines move it L2 → L3 → L4, with reminders.

Each step waits for what a person would see in Slack. After a kill the steps adapt to where the incident
got to (e.g. an escalation the deadline already made is not clicked again).
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from typing import Any

from bot.core.models import ActionId
from bot.sandbox.slack_driver import Response, select_value, text_value
from bot.sandbox.world import COORDINATOR, DECIDER, OOM_ALERT, PIPELINE_ALERT, TECH_LEAD, alertmanager_payload
from tests.fault.faults import Faults
from tests.fault.harness import app_config
from tests.fault.run import Interaction, Run
from tests.fault.slack_view import Msg, SlackView, is_refusal

ALERT_A: dict[str, Any] = copy.deepcopy(OOM_ALERT)
ALERT_B: dict[str, Any] = copy.deepcopy(PIPELINE_ALERT)
ALERT_C: dict[str, Any] = copy.deepcopy(PIPELINE_ALERT)
ALERT_C["fingerprint"] = "a1b2c3d4e5f60003"
# another Job than B's: alerts about the same Job join one incident, whatever their fingerprints
ALERT_C["labels"] = {**ALERT_C["labels"], "job_name": "feature-build-nightly"}
ALERT_C["annotations"] = {
    **ALERT_C["annotations"],
    "summary": "Nightly rerun of ml-pipelines/feature-build-nightly failed: BackoffLimitExceeded",
}
TITLE = {
    "A": ALERT_A["annotations"]["summary"],
    "B": ALERT_B["annotations"]["summary"],
    "C": ALERT_C["annotations"]["summary"],
}
RATIONALE = "A debug run tells us whether the partition is late or gone."
HARD = 100.0  # a step may wait out a dead process's 60 s claim (and Level 1's budget plus grace)
SOFT = 12.0  # pacing waits (a reminder before the click), which a restart may legitimately skip


def option_with_action(category: str = "pipeline_step_failed") -> tuple[int, str, str]:
    """The first L4 option in app.yaml whose action is a remediation: (index, label, action)."""
    config = app_config()
    options = config["decisions"]["templates"][category]["options"]
    for i, option in enumerate(options):
        if option.get("action") and option["action"] != "resolve":
            return i, option["label"], option["action"]
    raise LookupError(f"no option with a remediation for {category} in app.yaml")


class Scenario:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.slack = run.world.slack
        self.incidents: dict[str, int] = {}
        self.submitted_views: set[str] = set()
        self.option = option_with_action()
        self.faults = Faults(run)

    # -- looking -----------------------------------------------------------------------------------------
    def view(self) -> SlackView:
        return SlackView(self.slack)

    def wait(self, what: str, predicate: Callable[[SlackView], Any], timeout: float = HARD) -> Any:
        """Wait until what Slack shows satisfies `predicate`; TimeoutError naming `what` otherwise."""
        found: list[Any] = []

        def check() -> bool:
            value = predicate(self.view())
            if value:
                found[:] = [value]
            return bool(value)

        # the emulator wakes waiters on every call it receives, so this needs no polling
        if not self.slack.wait_for(check, timeout):
            raise TimeoutError(f"waiting {timeout:.0f}s for {what}")
        return found[0]

    def soft_wait(self, what: str, predicate: Callable[[SlackView], Any], timeout: float = SOFT) -> Any:
        try:
            return self.wait(what, predicate, timeout)
        except TimeoutError:
            self.run.note(f"did not see {what} within {timeout:.0f}s; went on")
            return None

    def incident(self, key: str) -> int:
        if key not in self.incidents:
            self.incidents[key] = self.wait(
                f"an incident for scenario {key}", lambda v: v.incident_titled(TITLE[key])
            )
        return self.incidents[key]

    # -- acting --------------------------------------------------------------------------------------------
    def alert(self, key: str, alert: dict[str, Any]) -> None:
        alert = {**alert, "labels": {**alert["labels"], **self.faults.alert_labels(key)}}
        payload = alertmanager_payload([alert], f'{{}}:{{alertname="{alert["labels"]["alertname"]}"}}')
        resp = self.run.webhook(payload, f"Alertmanager webhook for scenario {key}")
        assert resp.status == 202, resp.text
        opened = resp.json().get("opened") or resp.json().get("updated") or []
        if opened:
            self.incidents[key] = int(opened[0])
        self.faults.stage(f"{key} answered")

    def click(
        self, msg: Msg, action_id: str, user: str, what: str, effect: dict[str, Any]
    ) -> Response | None:
        """Click a button the message shows now (None when it no longer shows it)."""
        button = msg.buttons().get(action_id)
        if button is None:
            return None
        value, block_id = button
        message = self.slack.message(msg.channel, msg.ts)
        resp = self.run.send(
            "block_action",
            what,
            lambda url: self.run.driver(url).block_action(
                user, action_id, value, msg.channel, msg.ts, block_id=block_id, message=message
            ),
        )
        if resp.status == 200:
            self.run.interactions.append(
                Interaction("block_action", what, user, msg.channel, time.time(), effect)
            )
        return resp

    def new_view(self, callback_id: str, key: str, value: int) -> Callable[[SlackView], Any]:
        # a modal says what it is about in its first context line ("INC-2 · Level 2", "… · decision 1"),
        # never in private_metadata (which only holds the bot's handle for it)
        wanted = f"INC-{value}" if key == "incident_id" else f"decision {value}"

        def find(_view: SlackView) -> dict[str, Any] | None:
            for v in reversed(self.slack.views):
                about = " ".join(
                    e.get("text", "")
                    for b in v.get("blocks", [])
                    if b.get("type") == "context"
                    for e in b.get("elements", [])
                )
                if (
                    v["callback_id"] == callback_id
                    and re.search(rf"\b{re.escape(wanted)}\b", about)
                    and v["id"] not in self.submitted_views
                ):
                    return v
            return None

        return find

    def submit(
        self, view: dict[str, Any], user: str, values: dict[str, Any], what: str, effect: dict[str, Any]
    ) -> None:
        self.submitted_views.add(view["id"])
        channel = None  # the modal does not say; replies go to the person wherever they are
        resp = self.run.send(
            "view_submission",
            what,
            lambda url: self.run.driver(url).view_submission(
                user,
                view["callback_id"],
                values,
                private_metadata=view.get("private_metadata", ""),
                view_id=view["id"],
            ),
        )
        assert resp.status == 200, resp.text
        self.run.interactions.append(Interaction("view_submission", what, user, channel, time.time(), effect))

    def refusals(self, user: str, since: float) -> list[str]:
        """What the bot answered `user` since wall time `since` when it did not do what was asked."""
        return [
            e.get("text", "")
            for e in self.slack.ephemerals(user=user)
            if float(e["ts"]) >= since and is_refusal(e.get("text", ""))
        ]

    def through_modal(
        self,
        level_msg: Callable[[SlackView], Msg | None],
        action_id: str,
        user: str,
        callback_id: str,
        meta_key: str,
        meta_value: int,
        values: dict[str, Any],
        what: str,
        effect: dict[str, Any],
        done: Callable[[SlackView], Any],
    ) -> None:
        """Click the button that opens a modal and submit it; click again (as a person would) when nothing
        happens; stop as soon as `done` shows or the bot answers the click with a refusal."""
        for attempt in range(3):
            current = self.view()
            if done(current):
                return
            msg = level_msg(current)
            if msg is None or action_id not in msg.buttons():
                return  # the incident moved on without this click
            since = time.time()
            if self.click(msg, action_id, user, f"{what}: click", {}) is None:
                return
            modal = self.new_view(callback_id, meta_key, meta_value)

            def opened(v: SlackView, modal: Callable[[SlackView], Any] = modal, since: float = since) -> Any:
                return modal(v) or done(v) or self.refusals(user, since)

            found = self.soft_wait(f"the {callback_id} modal", opened, 10.0)
            if isinstance(found, dict):
                self.submit(found, user, values, f"{what}: submit", effect)
                return
            if found:
                said = self.refusals(user, since)
                if said and not done(self.view()):
                    self.run.note(f"{what}: the click was answered '{said[0][:100]}'; went on")
                return
            self.run.note(f"{what}: no modal opened after click {attempt + 1}; clicked again")
        raise TimeoutError(f"{what}: no modal opened after three clicks")

    # -- the scenarios ---------------------------------------------------------------------------------------
    def drive(self) -> None:
        self.faults.stage("start")
        try:
            self.scenario_a()
            self.scenario_b()
            self.faults.stage("B done")
            self.scenario_c()
        finally:
            self.faults.stage("end")

    def scenario_a(self) -> None:
        self.alert("A", ALERT_A)
        a = self.incident("A")
        self.wait(
            f"INC-{a}'s Level 1 report (or its escalation)",
            lambda v: v.one(a, "l1_report") or v.reached(a, "L2"),
        )

    def scenario_b(self) -> None:
        self.alert("B", ALERT_B)
        b = self.incident("B")
        self.wait(f"INC-{b} at Level 2", lambda v: v.reached(b, "L2"))
        self.faults.stage("B at L2")
        if not self.view().reached(b, "L3"):
            self.soft_wait(
                f"the L2 reminder for INC-{b}", lambda v: v.one(b, "reminder", "L2") or v.reached(b, "L3")
            )
            l2 = self.view().level_message(b, "L2")
            if l2 is not None and not self.view().reached(b, "L3"):
                since = time.time()
                self.click(
                    l2, ActionId.ACK.value, COORDINATOR, f"Acknowledge INC-{b} at L2", {"ack": (b, "L2")}
                )
                self.soft_wait(
                    f"INC-{b}'s L2 message to say it was acknowledged",
                    lambda v: (
                        "Acknowledged by" in ((v.level_message(b, "L2") or l2).context())
                        or v.reached(b, "L3")
                        or self.refusals(COORDINATOR, since)
                    ),
                )
            self.through_modal(
                lambda v: v.level_message(b, "L2"),
                ActionId.ESCALATE_L3.value,
                COORDINATOR,
                ActionId.ESCALATE_L3_VIEW.value,
                "incident_id",
                b,
                {
                    "trigger": {"value": select_value("tool_stack")},
                    "reason": {"value": text_value("Move off the legacy scheduler")},
                },
                f"Escalate INC-{b} to the tech lead",
                {"escalated": (b, "L3", COORDINATOR)},
                lambda v: v.reached(b, "L3"),
            )
        self.wait(f"INC-{b} at Level 3", lambda v: v.reached(b, "L3"))
        if not self.view().reached(b, "L4"):
            self.soft_wait(
                f"the L3 reminder for INC-{b}", lambda v: v.one(b, "reminder", "L3") or v.reached(b, "L4")
            )
            self.through_modal(
                lambda v: v.level_message(b, "L3"),
                ActionId.ASK_DECISION.value,
                TECH_LEAD,
                ActionId.ASK_DECISION_VIEW.value,
                "incident_id",
                b,
                {
                    "question": {
                        "value": text_value("The daily feature build is blocked. How do we proceed?")
                    },
                    "context": {"value": text_value("Churn and fraud models retrain tonight.")},
                },
                f"Ask for a decision on INC-{b}",
                {"decision_requested": (b, TECH_LEAD)},
                lambda v: v.reached(b, "L4"),
            )
        decision = self.wait(f"INC-{b}'s decision request", lambda v: v.level_message(b, "L4"))
        self.soft_wait(f"the L4 reminder for INC-{b}", lambda v: v.one(b, "reminder", "L4"))
        index, label, _action = self.option
        decision = self.view().level_message(b, "L4") or decision
        action_id = f"{ActionId.DECISION_OPTION.value}_{index}"
        decision_id = int(decision.buttons().get(action_id, ("0:0", ""))[0].split(":")[0])
        clicked = self.click(
            decision, action_id, DECIDER, f"Choose '{label}' for INC-{b}", {"decided": (b, index, DECIDER)}
        )
        if clicked is not None:
            view = self.soft_wait(
                f"the rationale modal for decision {decision_id}",
                self.new_view(ActionId.RATIONALE_VIEW.value, "decision_id", decision_id),
            )
            if view:
                self.submit(
                    view,
                    DECIDER,
                    {"rationale": {"value": text_value(RATIONALE)}},
                    f"Say why for decision {decision_id}",
                    {"rationale": (decision_id, RATIONALE)},
                )
        self.wait(
            f"the chosen action's result in INC-{b}'s decision thread",
            lambda v: any(m.kind == "action_failed" for m in v.replies(v.level_message(b, "L4") or decision)),
        )

    def scenario_c(self) -> None:
        self.alert("C", ALERT_C)
        c = self.incident("C")
        self.wait(f"INC-{c} at Level 2", lambda v: v.reached(c, "L2"))
        self.faults.stage("C at L2")
        self.wait(
            f"INC-{c}'s decision request after two missed deadlines", lambda v: v.level_message(c, "L4")
        )
        self.wait(f"the L4 reminder for INC-{c}", lambda v: v.one(c, "reminder", "L4"))
