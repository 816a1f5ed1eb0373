"""What an incident takes from app.yaml when it opens: the escalation policy it keeps for its whole life
(editing app.yaml never changes an escalation already in flight) and the rules that classify it."""

from __future__ import annotations

from bot.config import AppConfig
from bot.core.classify import Rule, with_custom
from bot.core.models import Category
from bot.core.policy import Policy


def policy_from_config(config: AppConfig, category: Category) -> Policy:
    """The snapshot an incident keeps for its whole life."""
    lv, ch = config.levels, config.slack.channels
    template = config.decisions.for_category(category.value)
    return Policy(
        channels={
            "alerts": ch.alerts,
            "coordinator": ch.coordinator,
            "tech_lead": ch.tech_lead,
            "decisions": ch.decisions,
            "admin": ch.admin or "",
        },
        mentions={"L2": [lv.l2.group], "L3": [lv.l3.group], "L4": list(lv.l4.deciders)},
        actors={"L2": list(lv.l2.actors), "L3": list(lv.l3.actors), "L4": list(lv.l4.deciders)},
        ack_deadline_s={"L2": lv.l2.ack_deadline.total_seconds(), "L3": lv.l3.ack_deadline.total_seconds()},
        reminder_after_s={
            "L2": lv.l2.reminder_after.total_seconds(),
            "L3": lv.l3.reminder_after.total_seconds(),
        },
        auto_escalate={"L2": lv.l2.auto_escalate, "L3": lv.l3.auto_escalate},
        decision_expiry_s=lv.l4.decision_expiry.total_seconds(),
        decision_reminder_s=lv.l4.reminder_after.total_seconds(),
        l1_max_attempts=lv.l1.max_attempts,
        l1_budget_s=lv.l1.budget.total_seconds(),
        check_timeout_s=lv.l1.check_timeout.total_seconds(),
        verify_poll_s=lv.l1.verify_poll_interval.total_seconds(),
        dry_run=config.remediation.dry_run,
        allowlist={k: dict(v) for k, v in config.remediation.allowlist.items()},
        namespaces=list(config.kubernetes.namespaces),
        decision_template=template.model_dump(),
    )


def rules_of(config: AppConfig) -> tuple[Rule, ...]:
    """The classification rules: app.yaml's own first, then the built-in ones."""
    return with_custom([(r.category, r.pattern, r.description) for r in config.classification.rules])
