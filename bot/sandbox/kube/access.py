"""Access reviews: the loopback API server answers a SelfSubjectAccessReview from a set of granted RBAC
rules (by default everything is allowed) and records every review it was asked."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from bot.sandbox.kube.errors import ApiError

REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@dataclass(frozen=True)
class Rule:
    """One RBAC rule, as a Role (a namespace) or a ClusterRole (namespace None) grants it; "*" matches all."""

    verbs: tuple[str, ...]
    resources: tuple[str, ...]  # a subresource is written "pods/log"
    api_groups: tuple[str, ...] = ("*",)
    namespace: str | None = None
    names: tuple[str, ...] = ()  # resourceNames; empty: every object

    def allows(self, attrs: dict[str, Any]) -> bool:
        resource = attrs.get("resource", "") + (
            f"/{attrs['subresource']}" if attrs.get("subresource") else ""
        )
        return (
            _matches(self.verbs, attrs.get("verb", ""))
            and _matches(self.resources, resource)
            and _matches(self.api_groups, attrs.get("group", ""))
            and self.namespace in (None, attrs.get("namespace"))
            and (not self.names or attrs.get("name") in self.names)
        )


def _matches(allowed: tuple[str, ...], value: str) -> bool:
    return "*" in allowed or value in allowed


class AccessReviews:
    """The rules granted to whoever calls (None: everything allowed) and the reviews answered."""

    def __init__(self) -> None:
        self.granted: list[Rule] | None = None
        self.asked: list[dict[str, Any]] = []  # each review's spec.resourceAttributes
        self._lock = threading.Lock()

    def grant_only(self, *rules: Rule) -> None:
        """From now on allow only what `rules` grant."""
        with self._lock:
            self.granted = list(rules)

    def review(self, body: Any) -> dict[str, Any]:
        """The SelfSubjectAccessReview `body` with its status filled in, as the API server returns it."""
        spec = body.get("spec") if isinstance(body, dict) else None
        attrs = spec.get("resourceAttributes") if isinstance(spec, dict) else None
        if not isinstance(attrs, dict):
            raise ApiError(400, "BadRequest", "spec.resourceAttributes: Required value")
        with self._lock:
            self.asked.append(dict(attrs))
            allowed = self.granted is None or any(rule.allows(attrs) for rule in self.granted)
        status = {
            "allowed": allowed,
            "reason": 'RBAC: allowed by RoleBinding "escalation-bot"' if allowed else "",
        }
        return {
            **body,
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "status": status,
        }
