"""A cause several incidents can share, read from what Level 1 found: the MLflow tracking server they all
report to is failing, the node their pods ran on went away, or the upstream Job they wait on failed.

Incidents with one cause escalate together (bot/services/grouping.py): one message names the cause and
how many incidents it broke, instead of one message each. A cause is a short key ("node:ip-10-0-1-7")
stored on the incident; `describe` turns it into words for a person.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from bot.core.models import CheckResult, CheckStatus

__all__ = ["NODE_REASONS", "cause_of", "describe", "tracking_address"]

# Warning events Kubernetes records on a pod when its node, not its own code, ended it
NODE_REASONS = frozenset(
    {"Evicted", "NodeNotReady", "NodeLost", "NodeShutdown", "TaintManagerEviction", "NodeAffinity"}
)
MAX_KEY = 255


def tracking_address(uri: str) -> str:
    """The tracking server's address without credentials, path or query (what two incidents compare)."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # a port out of range: the address as written, without credentials
        port = None
    if port:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, "", "", "")) if parts.scheme else uri.split("?")[0]


def _failed(findings: Iterable[CheckResult], name: str) -> CheckResult | None:
    return next((f for f in findings if f.name == name and f.status is CheckStatus.FAIL), None)


def cause_of(findings: Iterable[CheckResult]) -> str | None:
    """The cause Level 1's findings point at, strongest first; None when they name none."""
    found = list(findings)
    tracking = _failed(found, "tracking_health")
    if tracking is not None and tracking.facts.get("tracking_address"):
        return f"tracking:{tracking.facts['tracking_address']}"[:MAX_KEY]
    for f in found:
        nodes = f.facts.get("lost_nodes") if f.name == "warning_events" else None
        if isinstance(nodes, list) and len(nodes) == 1 and isinstance(nodes[0], str) and nodes[0]:
            return f"node:{nodes[0]}"[:MAX_KEY]
    upstream = _failed(found, "upstream_jobs")
    broken = upstream.facts.get("failed_upstream") if upstream is not None else None
    if isinstance(broken, list) and broken and all(isinstance(b, str) for b in broken):
        return f"upstream:{sorted(broken)[0]}"[:MAX_KEY]
    return None


def describe(key: str) -> str:
    """A cause key in words, e.g. "node ip-10-0-1-7 went away under their pods"."""
    kind, _, value = key.partition(":")
    if kind == "tracking":
        return f"the MLflow tracking server at {value} is failing"
    if kind == "node":
        return f"node {value} went away under their pods (evicted or not ready)"
    if kind == "upstream":
        return f"the upstream Job {value} they wait on failed"
    return key
