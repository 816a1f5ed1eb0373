"""Prometheus metrics, one registry per bot instance (nothing global, so tests can run several bots)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.alerts_received = Counter(
            "escalation_alerts_received", "Alerts accepted", ["source"], registry=r
        )
        self.alerts_rejected = Counter(
            "escalation_alerts_rejected", "Alert deliveries refused", ["source", "reason"], registry=r
        )
        self.incidents_opened = Counter(
            "escalation_incidents_opened", "Incidents opened", ["category"], registry=r
        )
        self.incidents_resolved = Counter(
            "escalation_incidents_resolved", "Incidents resolved", ["level"], registry=r
        )
        self.escalations = Counter("escalation_escalations", "Escalations posted", ["level"], registry=r)
        self.l1_runs = Counter("escalation_l1_runs", "Level 1 runs", ["category", "outcome"], registry=r)
        self.remediations = Counter(
            "escalation_remediations", "Remediation attempts", ["name", "status"], registry=r
        )
        self.slack_messages = Counter(
            "escalation_slack_writes", "Slack writes delivered", ["kind"], registry=r
        )
        self.slack_retries = Counter(
            "escalation_slack_retries", "Slack writes retried", ["reason"], registry=r
        )
        self.slack_undeliverable = Counter(
            "escalation_slack_undeliverable", "Slack writes given up", ["error"], registry=r
        )
        self.outbox_errors = Counter(
            "escalation_outbox_errors",
            "Slack writes given up on an error in the bot itself",
            ["kind", "exception"],
            registry=r,
        )
        self.timer_errors = Counter("escalation_timer_errors", "Timers that raised", ["kind"], registry=r)
        self.outbox_pending = Gauge("escalation_outbox_pending", "Slack writes waiting", registry=r)
        self.polls = Counter("escalation_polls", "Poller runs", ["poller", "outcome"], registry=r)
        self.poll_errors = Counter(
            "escalation_poll_errors", "Polls that failed after their retries", ["poller"], registry=r
        )
        self.llm_requests = Counter(
            "escalation_llm_requests",
            "Requests to Claude by what they were for and how they ended (answer, or a fallback's reason)",
            ["purpose", "outcome"],
            registry=r,
        )
        self.llm_tokens = Counter(
            "escalation_llm_tokens",
            "Tokens Claude used, by kind: input, output, cache_read, cache_creation",
            ["purpose", "kind"],
            registry=r,
        )
        self.llm_api_attempts = Counter(
            "escalation_llm_api_attempts",
            "HTTP attempts to the Messages API by status",
            ["status"],
            registry=r,
        )
        self.llm_tokens_today = Gauge(
            "escalation_llm_tokens_today", "Tokens counted against today's budget (UTC)", registry=r
        )
        self.retention_pruned = Counter(
            "escalation_retention_pruned", "Rows deleted by retention", ["table"], registry=r
        )

        # the protocol's targets (bot.core.targets) as measured over the last 7, 30 and 90 days, refreshed
        # when /metrics is scraped (bot.services.stats_gauges); NaN while a window has nothing to measure
        self.rate_resolved_l1 = Gauge(
            "escalation_rate_resolved_l1",
            "Share of the incidents opened in the window that were resolved at Level 1 (0..1)",
            ["window"],
            registry=r,
        )
        self.rate_resolved_l2 = Gauge(
            "escalation_rate_resolved_l2",
            "Of the incidents opened in the window that left Level 1, the share resolved at Level 2 (0..1)",
            ["window"],
            registry=r,
        )
        self.rate_reached_l4 = Gauge(
            "escalation_rate_reached_l4",
            "Share of the incidents opened in the window that reached Level 4, a decision (0..1)",
            ["window"],
            registry=r,
        )
        self.target = Gauge(
            "escalation_target",
            "The protocol's target for each rate (0..1): at least it, or under it for reached_l4",
            ["rate"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
