"""A Job the bot posts, admitted as the API server does: checked, then given its uid, its controller
labels and selector, and the defaults it did not set."""

from __future__ import annotations

import copy
from typing import Any

from bot.sandbox.kube.errors import ApiError

_GENERATED_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


def posted_job(body: Any) -> tuple[dict[str, Any], list[str]]:
    """A copy of the posted Job, with `metadata` and `spec` present, and what is wrong with it (its name
    aside)."""
    if not isinstance(body, dict) or body.get("kind", "Job") != "Job":
        raise ApiError(400, "BadRequest", "the body of the request is not a batch/v1 Job")
    job = copy.deepcopy(body)
    job.setdefault("metadata", {})
    job["spec"] = spec = job.get("spec") or {}
    template = spec.get("template") or {}
    problems = []
    if spec.get("selector") and not spec.get("manualSelector"):
        problems.append("spec.selector: Invalid value: `selector` not auto-generated")
    labels = template.get("metadata", {}).get("labels", {})
    if any(key in labels for key in _GENERATED_LABELS):
        problems.append(
            "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"
        )
    if template.get("spec", {}).get("restartPolicy") not in ("Never", "OnFailure"):
        problems.append(
            'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
        )
    if not template.get("spec", {}).get("containers"):
        problems.append("spec.template.spec.containers: Required value")
    return job, problems


def admit(job: dict[str, Any], ns: str, name: str, uid: str, now: str, version: str) -> dict[str, str]:
    """Fill in what the server sets on a valid new Job; the labels it generated for the Job's pods."""
    spec = job["spec"]
    job["metadata"].update(
        name=name, namespace=ns, uid=uid, resourceVersion=version, generation=1, creationTimestamp=now
    )
    generated = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
    spec["template"].setdefault("metadata", {}).setdefault("labels", {}).update(generated)
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    job["apiVersion"], job["kind"] = "batch/v1", "Job"
    return generated
