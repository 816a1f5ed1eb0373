"""Workflows written through the API as the server takes them: a POST admitted (a name from generateName,
uid, resourceVersion, generation), a PUT checked as a replace of the stored object (names, namespace,
optimistic concurrency through resourceVersion), nulls pruned, and the Status wording of each refusal."""

from __future__ import annotations

import copy
from typing import Any

from bot.sandbox.kube import workflow_names as wn
from bot.sandbox.kube.errors import ApiError


def _invalid(name: str, problem: str) -> ApiError:
    return ApiError(422, "Invalid", f'Workflow.{wn.GROUP} "{name}" is invalid: {problem}')


def _checked(body: Any, ns: str) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("kind", "Workflow") != "Workflow":
        raise ApiError(400, "BadRequest", f"the body of the request is not an {wn.API_VERSION} Workflow")
    if body.get("apiVersion", wn.API_VERSION) != wn.API_VERSION:
        raise ApiError(
            400,
            "BadRequest",
            f"the API version in the data ({body['apiVersion']}) does not match the expected API version "
            f"({wn.API_VERSION})",
        )
    # The Workflow schema has no nullable field, so the server prunes every null it is sent.
    workflow: dict[str, Any] = _without_nulls(body)
    meta = workflow.setdefault("metadata", {})
    if meta.get("namespace", ns) != ns:
        raise ApiError(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        )
    if not isinstance(workflow.get("spec"), dict):
        raise _invalid(meta.get("name") or "", "spec: Required value")
    workflow["apiVersion"], workflow["kind"] = wn.API_VERSION, "Workflow"
    meta["namespace"] = ns
    return workflow


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def posted(body: Any, ns: str) -> dict[str, Any]:
    """A copy of a posted Workflow, checked; its name may still be to generate."""
    workflow = _checked(body, ns)
    meta = workflow["metadata"]
    if not meta.get("name") and not meta.get("generateName"):
        raise _invalid("", "metadata.name: Required value: name or generateName is required")
    for key in ("uid", "resourceVersion", "creationTimestamp", "generation"):
        meta.pop(key, None)
    return workflow


def admit(workflow: dict[str, Any], name: str, uid: str, now: str, version: str) -> None:
    """Fill in what the server sets on a new Workflow."""
    workflow["metadata"].update(
        name=name, uid=uid, resourceVersion=version, generation=1, creationTimestamp=now
    )


def already_exists(name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{wn.QUALIFIED} "{name}" already exists')


def replaced(current: dict[str, Any], body: Any, ns: str, name: str, version: str) -> dict[str, Any]:
    """The object a PUT of `body` over `current` stores; 400, 409 or 422 as the API server refuses it."""
    workflow = _checked(body, ns)
    meta = workflow["metadata"]
    if meta.get("name", name) != name:
        raise ApiError(
            400,
            "BadRequest",
            f"the name of the object ({meta['name']}) does not match the name on the URL ({name})",
        )
    # A custom resource has no unconditional update: the writer must say which version it replaces.
    if not meta.get("resourceVersion"):
        raise _invalid(name, "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update")
    if str(meta["resourceVersion"]) != str(current["metadata"].get("resourceVersion")):
        raise ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {wn.QUALIFIED} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
        )
    kept = {k: current["metadata"][k] for k in ("uid", "creationTimestamp") if k in current["metadata"]}
    meta.update(kept, name=name, resourceVersion=version)
    meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
    return workflow


def running(workflow: dict[str, Any], now: str, version: str) -> dict[str, Any]:
    """The Workflow as the controller shows it while its nodes run."""
    shown = copy.deepcopy(workflow)
    shown["metadata"]["resourceVersion"] = version
    shown["metadata"]["generation"] = int(shown["metadata"].get("generation", 1)) + 1
    shown["metadata"].setdefault("labels", {})[wn.PHASE_LABEL] = "Running"
    status = shown.setdefault("status", {})
    status.update(phase="Running", startedAt=status.get("startedAt") or now)
    return shown
