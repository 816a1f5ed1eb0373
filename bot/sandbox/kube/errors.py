"""The API server's failures as the client sees them: `Status` objects, including the 403 and 500 a test
can inject on any path; and the paths and resources served."""

from __future__ import annotations

import re
from typing import Any

API_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>batch|apps|argoproj\.io)/(?P<version>v1|v1alpha1))"
    r"/namespaces/(?P<ns>[^/]+)/(?P<resource>[a-z]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>log))?$"
)
# resource -> (kind, API group, qualified name used in Status messages)
RESOURCES = {
    "pods": ("Pod", None, "pods"),
    "events": ("Event", None, "events"),
    "jobs": ("Job", "batch", "jobs.batch"),
    "cronjobs": ("CronJob", "batch", "cronjobs.batch"),
    "deployments": ("Deployment", "apps", "deployments.apps"),
    "workflows": ("Workflow", "argoproj.io", "workflows.argoproj.io"),
}
# The one version served of each API group
VERSIONS = {"batch": "v1", "apps": "v1", "argoproj.io": "v1alpha1"}


class ApiError(Exception):
    """A request the server refuses, answered with a `Status` of `code` and `reason`."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def injected(code: int, method: str, path: str) -> ApiError:
    """The failure an injected fault gives: RBAC's wording for 403, an etcd timeout otherwise."""
    if code != 403:
        return ApiError(code, "InternalError", "Internal error occurred: etcdserver: request timed out")
    match = API_PATH.match(path)
    resource, ns, name = (match["resource"], match["ns"], match["name"]) if match else ("", "", None)
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    verb = verbs.get(method, "get" if name else "list")
    _, group, qualified = RESOURCES.get(resource, ("", None, resource))
    subject = f'{qualified} "{name}"' if name else qualified
    return ApiError(
        403,
        "Forbidden",
        f'{subject} is forbidden: User "system:serviceaccount:ml-platform:'
        f'escalation-bot" cannot {verb} resource "{resource}" in API group "{group or ""}" '
        f'in the namespace "{ns}"',
    )
